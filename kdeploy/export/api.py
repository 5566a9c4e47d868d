"""`export(ExportSettings(...), model=..., out=..., data=...)`: the export stage's Python API.

model.onnx (fp32, parity-gated) → model.opt.onnx (fusions, parity-gated) →
model.int8.onnx / model.fp16.onnx (accuracy-gated), with tokenizer, config and
export_report.json, written into a temporary folder and renamed into place.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import FALLBACK_TEXTS, DataConfig, TaskData, load_task_data, recorded_data
from ..errors import KdeployError
from ..fsutil import atomic_dir, claimed_output
from ..modelio.record import read_record, resolve_max_length
from ..modelio.sizes import onnx_mib
from .config import ExportSettings
from .result import REPORT, ExportAccuracy, ExportFile, ExportResult, GatedScores


class AccuracyGateError(KdeployError):
    pass


def _suggestion(s: ExportSettings) -> str:
    if s.quantize == "int8" and not s.per_channel:
        return "try --per-channel, or --quantize int8-static"
    if s.quantize == "int8":
        return "try --quantize int8-static (calibrated activation ranges)"
    if s.calibration_method == "minmax":
        return "try --calibration-method percentile or entropy, or more --calibration-samples"
    return "quantise fewer layers (keep the classifier in fp32) or accept a larger --max-accuracy-drop"


@dataclass
class _Job:
    """What every step of one export shares: the model, its inputs, and one session per file."""

    settings: ExportSettings
    model_dir: Path
    model: object
    tokenizer: object
    max_length: int
    data: TaskData | None
    texts: list[str]
    tmp: Path
    reference: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)

    def session(self, name: str):
        """One onnxruntime session per file, shared by the parity, calibration and accuracy checks."""
        from ..modelio.onnx_session import create_session

        if name not in self.sessions:
            self.sessions[name] = create_session(self.tmp / name)
        return self.sessions[name]

    def parity(self, name: str, atol: float | None):
        from .parity import check_parity

        return check_parity(self.session(name), self.model, self.tokenizer, self.texts, self.max_length, atol, name,
                            self.reference)


def export(settings: ExportSettings, model: str | Path, out: str | Path, data: DataConfig | None = None,
           overwrite: bool = False) -> ExportResult:
    model_dir = Path(model)
    if not model_dir.is_dir():
        raise KdeployError(f"{model_dir}: not a model folder (give a kdeploy distill/finetune output or a "
                           "save_pretrained folder)")
    record = read_record(model_dir)
    data = data or recorded_data(record)
    if settings.gated and data is None:
        raise KdeployError("quantised or fp16 exports are accuracy-gated: give labelled data (--data FILE, --test, "
                           "--dataset), export a model whose kdeploy.json records its data, or pass --quantize none")
    with claimed_output(out, [model_dir, *(data.files() if data else [])], overwrite, "kdeploy export"):
        return _export(settings, model_dir, Path(out), data, record, overwrite)


def _export(settings: ExportSettings, model_dir: Path, out: Path, data_cfg: DataConfig | None, record: dict,
            overwrite: bool) -> ExportResult:
    from ..environment import library_versions, machine
    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer

    model = load_classifier(str(model_dir), trust_remote_code=settings.trust_remote_code).eval()
    tokenizer = load_tokenizer(str(model_dir), settings.trust_remote_code)
    max_length = resolve_max_length(settings.max_length, model_dir,
                                     getattr(model.config, "max_position_embeddings", None),
                                     getattr(tokenizer, "model_max_length", None))
    label_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    data = load_task_data(data_cfg).aligned_to(label_names_of(model), "model") if data_cfg else None
    texts = _parity_texts(data)
    result = ExportResult(model=str(model_dir), config={"settings": to_dict(settings)}, max_length=max_length,
                          label_names=label_names)
    started = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        job = _Job(settings, model_dir, model, tokenizer, max_length, data, texts, tmp)
        base = _fp32(job, result)
        if settings.optimize:
            base = _optimised(job, result)
        gated = []
        if settings.quantize:
            gated.append(_quantised(job, result, base))
        if settings.fp16:
            gated += _fp16(job, result, base)
        if data is not None:
            result.accuracy = _accuracy(job, result, gated)
            _gate(result, gated, settings)
        tokenizer.save_pretrained(tmp)
        model.config.kdeploy = {"max_length": max_length, "label_names": label_names,
                                "inputs": sorted(i.name for i in job.session("model.onnx").get_inputs()),
                                "outputs": ["logits"], "opset": settings.opset}
        model.config.save_pretrained(tmp)
        result.timings["total_seconds"] = round(time.perf_counter() - started, 2)
        result.provenance = {k: record.get(k) for k in ("stage", "teacher", "model", "alpha", "temperature")
                             if record.get(k) is not None}
        result.data_fingerprint = data.fingerprint if data is not None else None
        result.versions, result.machine = library_versions(), machine()
        result.save(tmp / REPORT)
    return result


def _parity_texts(data: TaskData | None) -> list[str]:
    if data is None:
        return FALLBACK_TEXTS
    split = "validation" if "validation" in data.splits else data.eval_split
    return list(data.splits[split]["text"][:256])


def _fp32(job: _Job, result: ExportResult) -> str:
    from .onnx import to_onnx
    from .parity import reference_logits

    t0 = time.perf_counter()
    result.exporter = to_onnx(job.model, job.model_dir, job.tmp / "model.onnx", job.settings.opset,
                              job.settings.trust_remote_code)
    result.timings["export_seconds"] = round(time.perf_counter() - t0, 2)
    job.reference = reference_logits(job.model, job.tokenizer, job.texts, job.max_length)
    result.parity["model.onnx"] = job.parity("model.onnx", job.settings.atol)
    result.files["model.onnx"] = ExportFile(mib=onnx_mib(job.tmp / "model.onnx"), dtype="fp32", opset=job.settings.opset)
    return "model.onnx"


def _optimised(job: _Job, result: ExportResult) -> str:
    from .optimize import TOLERANCE, optimize

    level = job.settings.optimize
    t0 = time.perf_counter()
    info = optimize(job.tmp / "model.onnx", job.tmp / "model.opt.onnx", level, job.model.config)
    result.timings["optimize_seconds"] = round(time.perf_counter() - t0, 2)
    result.parity["model.opt.onnx"] = job.parity("model.opt.onnx", max(TOLERANCE.get(level) or job.settings.atol,
                                                                       job.settings.atol))
    result.files["model.opt.onnx"] = ExportFile(mib=onnx_mib(job.tmp / "model.opt.onnx"),
                                                dtype="fp16" if level == "O4" else "fp32", optimization=info)
    return "model.opt.onnx"


def _quantised(job: _Job, result: ExportResult, base: str) -> str:
    from .quantize import detect_isa, quantize_dynamic_int8, quantize_static_int8

    s = job.settings
    isa = detect_isa() if s.isa == "auto" else s.isa
    src, dst = job.tmp / base, job.tmp / "model.int8.onnx"
    t0 = time.perf_counter()
    if s.quantize == "int8":
        info = quantize_dynamic_int8(src, dst, isa, s.per_channel)
    else:
        info = quantize_static_int8(src, dst, isa, s.per_channel, s.calibration_method,
                                    lambda: _calibration_batches(job, base))
    result.timings["quantize_seconds"] = round(time.perf_counter() - t0, 2)
    result.files["model.int8.onnx"] = ExportFile(
        mib=onnx_mib(dst), dtype="int8", quantization=info, source=base,
        size_ratio_to_fp32=round(onnx_mib(dst) / onnx_mib(job.tmp / "model.onnx"), 4))
    result.parity["model.int8.onnx"] = job.parity("model.int8.onnx", None)
    return "model.int8.onnx"


def _calibration_batches(job: _Job, base: str) -> list[dict]:
    """Tokenised text for static calibration: training text, or the evaluation text when
    only that was given (activation ranges only; the gate still scores it)."""
    from ..console import note
    from ..modelio.onnx_session import feed

    data = job.data
    split = "train" if "train" in data.splits else data.eval_split
    if split != "train":
        note(f"no training text for calibration: using the {split} split's text")
    texts = data.splits[split].shuffle(seed=0)["text"][:job.settings.calibration_samples]
    session = job.session(base)
    out = []
    for i in range(0, len(texts), 16):
        enc = job.tokenizer(texts[i:i + 16], truncation=True, max_length=job.max_length, padding=True,
                            return_tensors="np")
        out.append(feed(session, enc))
    return out


def _fp16(job: _Job, result: ExportResult, base: str) -> list[str]:
    from .optimize import to_fp16
    from .result import Parity

    dst = job.tmp / "model.fp16.onnx"
    info = to_fp16(job.tmp / base, dst)
    result.files["model.fp16.onnx"] = ExportFile(mib=onnx_mib(dst), dtype=info["dtype"], source=base,
                                                 advice="run on the CUDA execution provider")
    try:
        result.parity["model.fp16.onnx"] = job.parity("model.fp16.onnx", None)
        return ["model.fp16.onnx"]
    except KdeployError as exc:
        result.parity["model.fp16.onnx"] = Parity(skipped=f"cannot run on the CPU provider here: {exc}")
        return []


def _accuracy(job: _Job, result: ExportResult, gated: list[str]) -> ExportAccuracy:
    """Every file scored on the evaluation split; derived files against the fp32 export."""
    from ..metrics import score
    from ..modelio.batching import batched_logits
    from ..modelio.onnx_session import onnx_runner
    from ..modelio.torch_infer import torch_logits

    data = job.data
    split = job.settings.eval_split if job.settings.eval_split in data.splits else data.eval_split
    texts, labels = data.splits[split]["text"], np.asarray(data.splits[split]["label"])
    t0 = time.perf_counter()
    torch_ref = batched_logits(lambda t: torch_logits(job.model, job.tokenizer, t, job.max_length), texts)
    accuracy = ExportAccuracy(split=split, examples=len(labels), pytorch=score(torch_ref, labels))
    fp32_logits = None
    for name in result.files:
        if result.parity.get(name) and result.parity[name].skipped:
            continue
        logits = batched_logits(onnx_runner(job.session(name), job.tokenizer, job.max_length), texts)
        if name == "model.onnx":
            fp32_logits = logits
        derived = name in gated
        base = score(logits, labels, fp32_logits if derived else torch_ref)
        scored = GatedScores(**to_dict(base), agreement_with="model.onnx" if derived else "pytorch",
                             max_abs_diff_vs_pytorch=float(np.abs(logits - torch_ref).max()))
        if derived:
            scored.drop_points = round(100 * (accuracy.files["model.onnx"].accuracy - scored.accuracy), 3)
            scored.gate_passed = scored.drop_points <= job.settings.max_accuracy_drop
        accuracy.files[name] = scored
    result.timings["accuracy_seconds"] = round(time.perf_counter() - t0, 2)
    return accuracy


def _gate(result: ExportResult, gated: list[str], settings: ExportSettings) -> None:
    acc = result.accuracy
    failed = [n for n in gated if not acc.files[n].gate_passed]
    if failed:
        n = failed[0]
        raise AccuracyGateError(
            f"{n} loses {acc.files[n].drop_points:.2f} accuracy points on {acc.split} "
            f"({100 * acc.files['model.onnx'].accuracy:.2f}% → {100 * acc.files[n].accuracy:.2f}%), "
            f"more than --max-accuracy-drop {settings.max_accuracy_drop:g}; {_suggestion(settings)}")
