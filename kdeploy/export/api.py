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
from ..console import say
from ..data import FALLBACK_TEXTS, DataConfig, TaskData, data_still_there, load_task_data
from ..errors import KdeployError
from ..fsutil import atomic_dir, claimed_output
from ..metrics import TITLES
from ..modelio.exported import KEY as EXPORTED_KEY, ExportedModel
from ..modelio.inputs import set_truncation, tokenize, truncation_of_tokenizer
from ..modelio.record import (ModelRecord, as_model_task, check_data_kind, pairs_of_model, resolve_max_length,
                              task_of_model)
from ..modelio.sizes import onnx_mib
from ..tasks import kind_of_config, task_kind
from ..truncation import refit
from .config import ExportSettings
from .errors import AccuracyGateError, InvarianceGateError  # noqa: F401  (re-exported: the stage's refusals)
from .files import FP16, FP32, INT8, OPENVINO, OPTIMISED, role_of
from .result import ExportAccuracy, ExportFile, ExportResult, GatedScores


def _suggestion(s: ExportSettings) -> str:
    if s.quantize == "int8-dynamic" and not s.per_channel:
        return "try --per-channel, or --quantize int8 (calibrated)"
    if s.quantize == "int8-dynamic":
        return "try --quantize int8 (calibrated activation ranges)"
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
    noted_calibration: bool = False
    how: str | None = None  # how the chosen int8 file was made (dynamic, frozen, qdq)
    invariance_texts: list = field(default_factory=list)
    rejected: list = field(default_factory=list)  # candidates that failed the invariance pre-check
    sessions: dict = field(default_factory=dict)
    session_settings: dict = field(default_factory=dict)  # file name -> {"disabled_optimizers": [...]}
    kind: object = None  # the task kind's entry (kdeploy.tasks), from the model's config
    thresholds: dict | None = None  # multi-label: each label's decision threshold, from the model's record
    torch_ref: np.ndarray | None = None  # PyTorch's logits on the evaluation split (the accuracy step)
    fp32_logits: np.ndarray | None = None  # the fp32 export's, which derived files are compared with

    @property
    def threshold_array(self) -> np.ndarray | None:
        from ..tasks.base import thresholds_of

        return thresholds_of(self.thresholds, [str(self.model.config.id2label[i])
                                               for i in range(self.model.config.num_labels)])

    def session(self, name: str):
        """One onnxruntime session per file, shared by the parity, calibration and accuracy checks."""
        from ..modelio.onnx_session import create_session

        if name not in self.sessions and role_of(name) is OPENVINO:
            from ..modelio.openvino_session import OpenVINOSession

            self.sessions[name] = OpenVINOSession(self.tmp / name)
        if name not in self.sessions:
            disabled = (self.session_settings.get(Path(name).name) or {}).get("disabled_optimizers")
            self.sessions[name] = create_session(self.tmp / name, disabled_optimizers=disabled)
        return self.sessions[name]

    def forget(self, name: str) -> None:
        self.sessions.pop(name, None)

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
    if settings.openvino:
        import importlib.util

        if importlib.util.find_spec("openvino") is None:  # before any work, not after the export
            raise KdeployError("--openvino needs OpenVINO, which is not installed: pip install openvino "
                               "(or drop --openvino)")
    record = ModelRecord.of(model_dir)
    if record.retention is not None:  # before any work: a student that learned little is not exported silently
        say(record.retention.line())
        record.retention.check(settings.allow_low_retention, str(model_dir))
    data = data or data_still_there(record.data_config)
    if settings.gated and data is None:
        raise KdeployError("quantised or fp16 exports are accuracy-gated: give labelled data (--data FILE, --test, "
                           "--dataset), export a model whose kdeploy.json records its data, or pass --quantize none")
    task = task_of_model(model_dir)
    with claimed_output(out, [model_dir, *(data.files() if data else [])], overwrite, "kdeploy export"):
        if task is not None and task_kind(task).sentence_vectors:  # a vector per text: its own graph and gates
            from .embedding import export_embedding

            return export_embedding(settings, model_dir, Path(out), data, record, overwrite, task)
        if task is not None and task_kind(task).word_labels:  # a tag per word: per-token graph, word-level gates
            from .tokens import export_tokens

            return export_tokens(settings, model_dir, Path(out), data, record, overwrite, task)
        return _export(settings, model_dir, Path(out), data, record, overwrite)


def _export(settings: ExportSettings, model_dir: Path, out: Path, data_cfg: DataConfig | None, record: ModelRecord,
            overwrite: bool) -> ExportResult:
    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer

    model = load_classifier(str(model_dir), trust_remote_code=settings.trust_remote_code).eval()
    tokenizer = load_tokenizer(str(model_dir), settings.trust_remote_code)
    max_length = resolve_max_length(settings.max_length, model_dir,
                                     getattr(model.config, "max_position_embeddings", None),
                                     getattr(tokenizer, "model_max_length", None))
    from ..modelio.torch_infer import check_reloaded

    reloaded = check_reloaded(record.reference, model, tokenizer, str(model_dir))  # the model as trained?
    asked = data_cfg.truncation if data_cfg is not None else None  # --truncation here overrides the record's
    set_truncation(tokenizer, refit(asked or truncation_of_tokenizer(tokenizer), max_length))
    label_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    kind = kind_of_config(model.config)
    data = load_task_data(as_model_task(data_cfg, kind.name)) if data_cfg else None
    if data is not None:
        check_data_kind(model_dir, data.pairs, "data")
        data = data.aligned_to(label_names_of(model), "model")
    pairs = bool(data.pairs) if data is not None else bool(pairs_of_model(model_dir))
    texts = _parity_texts(data)
    result = ExportResult(model=str(model_dir), config={"settings": to_dict(settings)}, max_length=max_length,
                          label_names=label_names)
    started = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        job = _Job(settings, model_dir, model, tokenizer, max_length, data, texts, tmp, kind=kind,
                   thresholds=record.thresholds)
        _fp32(job, result)
        base, gated = _fastest(job, result)
        if settings.fp16:
            gated += _fp16(job, result, base)
        if settings.openvino:
            gated += _openvino_ir(job, result, label_names)
        if data is not None:
            result.accuracy = _accuracy(job, result, gated)
        _invariances(job, result)
        if data is not None:
            _gate_or_fall_back(job, result, gated, base)
        _gate_invariance(job, result)
        tokenizer.save_pretrained(tmp)
        setattr(model.config, EXPORTED_KEY, ExportedModel(
            max_length=max_length, label_names=label_names, opset=settings.opset, pairs=pairs,
            inputs=sorted(i.name for i in job.session(FP32.file).get_inputs()),
            task=kind.name, thresholds=record.thresholds,
            pair_truncation=data.pair_truncation if data is not None else "longest_first",
            truncation=None if pairs else truncation_of_tokenizer(tokenizer),
            session={n: s for n, s in job.session_settings.items() if n in result.files}).to_json())
        model.config.save_pretrained(tmp)
        if reloaded is not None:
            result.provenance["reload_max_abs_diff"] = reloaded  # the model on disk vs as training left it
        result.finish(record, data.fingerprint if data is not None else None, started, tmp)
    return result


def _parity_texts(data: TaskData | None) -> list[str]:
    if data is None:
        return FALLBACK_TEXTS
    split = "validation" if "validation" in data.splits else data.eval_split
    return data.texts(split)[:256]


def _fp32(job: _Job, result: ExportResult) -> str:
    from .onnx import to_onnx
    from .parity import reference_logits

    t0 = time.perf_counter()
    result.exporter = to_onnx(job.model, job.model_dir, job.tmp / FP32.file, job.settings.opset,
                              job.settings.trust_remote_code)
    result.timings["export_seconds"] = round(time.perf_counter() - t0, 2)
    job.reference = reference_logits(job.model, job.tokenizer, job.texts, job.max_length)
    result.parity[FP32.file] = job.parity(FP32.file, job.settings.atol)
    result.files[FP32.file] = ExportFile(mib=onnx_mib(job.tmp / FP32.file), dtype="fp32", opset=job.settings.opset)
    return FP32.file


def _fastest(job: _Job, result: ExportResult) -> tuple[str, list[str]]:
    """Optimise with every fusion plan worth trying, quantise each way worth trying, time the
    files a bundle would ship on this machine, and keep the fastest that passes the gates.
    Returns the base (fp32 file the derived ones come from) and the accuracy-gated files."""
    from .choose import feeds, time_candidates

    s = job.settings
    t0 = time.perf_counter()
    candidates = [_candidate(job, plan, how) for plan, how in _ways(job)]
    if s.static:  # a candidate whose answers move with the batch is never the calibrated default
        candidates = _invariant_only(job, candidates)
    main = INT8.file if s.quantize else OPTIMISED.file if s.optimize else FP32.file
    peers = _runtime_peers(job, main)
    if len(candidates) + len(peers) > 1:
        time_candidates(candidates + peers, main, *feeds(job.tokenizer, job.texts, job.max_length))
    ranked = sorted(candidates, key=lambda c: c.timing.score if c.timing else 0.0)
    if s.static:
        ranked = _fully_invariant_first(job, ranked)
    winner = _keep(job, ranked[0])
    result.timings["choose_seconds"] = round(time.perf_counter() - t0, 2)
    result.choice = {"chosen": winner.name, "measured_on": main, "candidates": [
        {"name": c.name, "session": c.session, **(to_dict(c.timing) if c.timing else {}),
         **({"invariance": to_dict(c.info["invariance"])} if "invariance" in c.info else {})} for c in ranked],
        "rejected": job.rejected, "why": _why(ranked, main), "other_runtimes": _versus(winner, peers)}
    base = OPTIMISED.file if OPTIMISED.file in winner.files else FP32.file
    if base == OPTIMISED.file:
        from .optimize import TOLERANCE

        level = s.optimize
        result.parity[base] = job.parity(base, max(TOLERANCE.get(level) or s.atol, s.atol))
        result.files[base] = ExportFile(mib=onnx_mib(job.tmp / base), dtype="fp16" if level == "O4" else "fp32",
                                        optimization=winner.info["optimization"])
    gated = []
    if s.quantize:
        _record_int8(job, result, base, winner.info["quantization"])
        if s.static:  # measured on the whole evaluation split already (_fully_invariant_first)
            result.files[INT8.file].invariance = winner.info["invariance"]
        gated.append(INT8.file)
    return base, gated


def _ways(job: _Job) -> list[tuple[str | None, str | None]]:
    """(fusion plan, quantisation) pairs to build. Calibrated int8 comes two ways: onnxruntime's
    integer operators on the fused graph with frozen scales (reaches the fused Attention), and
    QDQ on the unfused graph (the portable form OpenVINO and other runtimes read)."""
    from .optimize import plans_for

    s = job.settings
    plans = plans_for(job.model.config) if s.optimize else [None]
    if not s.quantize:
        return [(p, None) for p in plans]
    if not s.static:
        return [(p, "dynamic") for p in plans]
    # the integer form freezes MinMax ranges; percentile/entropy calibration is onnxruntime's, on QDQ
    integer = s.int8_format == "integer" or (s.int8_format == "auto" and s.calibration_method == "minmax")
    ways = [(p, "frozen") for p in plans] if integer else []
    return ways + ([(None, "qdq")] if s.int8_format in ("auto", "qdq") else [])


QUANT_LABEL = {None: None, "dynamic": "int8-dynamic", "frozen": "int8", "qdq": "int8-qdq"}


def _candidate(job: _Job, plan: str | None, how: str | None):
    from .choose import Candidate

    s = job.settings
    folder = job.tmp / f".candidate-{plan or 'plain'}-{how or 'fp32'}"
    folder.mkdir()
    name = "+".join(x for x in (f"{s.optimize}-{plan}" if plan else ("plain" if how else None), QUANT_LABEL[how]) if x)
    c = Candidate(name=name or "fp32", files={FP32.file: job.tmp / FP32.file})
    if plan:
        from .optimize import optimize

        info = optimize(job.tmp / FP32.file, folder / OPTIMISED.file, s.optimize, job.model.config, plan)
        c.files[OPTIMISED.file], c.session, c.info["optimization"] = folder / OPTIMISED.file, info["session"], info
    if how:
        src = c.files.get(OPTIMISED.file, job.tmp / FP32.file)
        c.info["quantization"] = _quantise(job, src, folder / INT8.file, s.per_channel, how=how)
        c.files[INT8.file] = folder / INT8.file
        if s.static:
            c.info["invariance"] = _candidate_invariance(job, c.files[INT8.file], c.session)
    return c


def _keep(job: _Job, winner):
    """The winner's files move into the export folder; the other candidates are removed."""
    import shutil

    for name, path in winner.files.items():
        if path.parent != job.tmp:
            shutil.move(str(path), job.tmp / name)
        job.session_settings[name] = winner.session
    for folder in job.tmp.glob(".candidate-*"):
        shutil.rmtree(folder, ignore_errors=True)
    job.how = (winner.info.get("quantization") or {}).get("how")
    return winner


def _runtime_peers(job: _Job, main: str) -> list:
    """Another runtime timed on the same inputs, for the report (OpenVINO bf16 on the fp32
    file, when installed): which runtime wins here, and by how much."""
    import importlib.util

    from .choose import Candidate

    if importlib.util.find_spec("openvino") is None or job.model.config.model_type.startswith("kdeploy-"):
        return []
    return [Candidate(name="openvino-bf16 (fp32 model.onnx)", files={main: job.tmp / FP32.file},
                      info={"runtime": "openvino-bf16"})]


def _versus(winner, peers) -> list[dict]:
    out = []
    for p in peers:
        if "not_timed" in p.info:
            out.append({"name": p.name, "not_timed": p.info["not_timed"]})
        elif p.timing and winner.timing:
            out.append({"name": p.name, **to_dict(p.timing),
                        "chosen_is_faster_at_batch_1": round(p.timing.bs1_p50_ms / winner.timing.bs1_p50_ms, 3),
                        "chosen_is_faster_at_batch_32": round(winner.timing.bs32_per_s / p.timing.bs32_per_s, 3)})
    return out


def _why(ranked, main: str) -> str:
    if len(ranked) == 1 or not ranked[0].timing:
        return "one candidate"
    best, other = ranked[0], ranked[1]
    return (f"{best.name} is the fastest {main} here: batch-1 p50 {best.timing.bs1_p50_ms:.2f} ms vs "
            f"{other.timing.bs1_p50_ms:.2f} ms, batch-32 {best.timing.bs32_per_s:.0f} vs "
            f"{other.timing.bs32_per_s:.0f} texts/s ({other.name})")


def _quantise(job: _Job, src: Path, dst: Path, per_channel: bool, exclude: list[str] | None = None,
              method: str | None = None, how: str | None = None) -> dict:
    """`how`: dynamic, frozen (integer operators, calibrated scales) or qdq (calibrated QDQ);
    a fallback re-quantises the way the chosen candidate was made."""
    from .quantize import detect_isa, quantize_dynamic_int8, quantize_frozen_int8, quantize_static_int8

    s = job.settings
    how = how or job.how or ("frozen" if s.static else "dynamic")
    isa = detect_isa() if s.isa == "auto" else s.isa
    t0 = time.perf_counter()
    if how == "dynamic":
        info = quantize_dynamic_int8(src, dst, isa, per_channel, exclude)
    elif how == "frozen":
        batches, calibration = _calibration_batches(job, src, fixed_length=False)
        info = quantize_frozen_int8(src, dst, isa, per_channel, lambda: batches, exclude, calibration)
    else:
        method = method or s.calibration_method
        batches, calibration = _calibration_batches(job, src, fixed_length=method != "minmax")
        info = quantize_static_int8(src, dst, isa, per_channel, method, lambda: batches, exclude, calibration)
    info["how"] = how
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return info


def _candidate_invariance(job: _Job, path: Path, session: dict):
    """The cheap pre-check on the parity texts (the full check runs on the evaluation split)."""
    from ..modelio.invariance import longest_first
    from ..modelio.onnx_session import create_session

    sess = create_session(path, disabled_optimizers=session.get("disabled_optimizers"))
    return _invariance_of(job, sess, longest_first(job.texts, 64))


def _invariance_of(job: _Job, session, texts: list):
    from ..modelio.invariance import check_invariance
    from ..modelio.onnx_session import onnx_runner

    run = onnx_runner(session, job.tokenizer, job.max_length)
    return check_invariance(lambda batch: job.kind.outputs(run(list(batch))), texts, job.kind.name,
                            thresholds=job.threshold_array)


def _invariant_only(job: _Job, candidates: list) -> list:
    kept = [c for c in candidates if c.info["invariance"].passed]
    job.rejected = [{"name": c.name, "invariance": to_dict(c.info["invariance"])} for c in candidates if c not in kept]
    if not kept:
        worst = min(candidates, key=lambda c: c.info["invariance"].max_abs_diff)
        raise InvarianceGateError(
            f"no calibrated int8 candidate is batch-invariant ({worst.name}: {worst.info['invariance'].summary()}); "
            "export with --quantize int8-dynamic (answers move with the batch) or --quantize none")
    return kept


def _fully_invariant_first(job: _Job, ranked: list) -> list:
    """The fastest candidate that is invariant on the whole evaluation split (the pre-check saw
    64 texts: a BiLSTM's integer form passed it and moved by 1.7e-4 on the full test split)."""
    from ..modelio.invariance import longest_first
    from ..modelio.onnx_session import create_session

    texts = longest_first(_eval_split(job)[1] if job.data is not None else job.texts, INVARIANCE_TEXTS)
    for i, c in enumerate(ranked):
        session = create_session(c.files[INT8.file], disabled_optimizers=c.session.get("disabled_optimizers"))
        c.info["invariance"] = inv = _invariance_of(job, session, texts)
        if inv.passed:
            return [c] + [x for x in ranked if x is not c]
        job.rejected.append({"name": c.name, "invariance": to_dict(inv)})
    raise InvarianceGateError(f"no calibrated int8 candidate is batch-invariant on {len(texts)} evaluation texts "
                              f"({ranked[0].name}: {ranked[0].info['invariance'].summary()}); export with "
                              "--quantize int8-dynamic (answers move with the batch) or --quantize none")


def _record_int8(job: _Job, result: ExportResult, base: str, info: dict) -> None:
    dst = job.tmp / INT8.file
    job.forget(INT8.file)
    job.session_settings[INT8.file] = job.session_settings.get(base, {})
    result.timings["quantize_seconds"] = info.get("seconds")
    result.files[INT8.file] = ExportFile(
        mib=onnx_mib(dst), dtype="int8", quantization=info, source=base,
        size_ratio_to_fp32=round(onnx_mib(dst) / onnx_mib(job.tmp / FP32.file), 4))
    result.parity[INT8.file] = job.parity(INT8.file, None)


def _calibration_batches(job: _Job, src: Path, fixed_length: bool) -> tuple[list[dict], dict]:
    """Tokenised text for static calibration — a seeded sample of the training text, or of the
    evaluation text when only that was given (activation ranges only; the gate still scores
    it) — and the record of what was used (split, seed, count, digest of the texts)."""
    import hashlib

    from ..console import note
    from ..modelio.onnx_session import create_session, feed

    data, s = job.data, job.settings
    split = "train" if "train" in data.splits else data.eval_split
    if split != "train" and not job.noted_calibration:
        note(f"no training text for calibration: using a sample of the {split} split's text")
        job.noted_calibration = True
    every = data.texts(split)
    order = np.random.default_rng(s.calibration_seed).permutation(len(every))[:s.calibration_samples]
    texts = [every[i] for i in order]
    session = create_session(src)
    # percentile/entropy histograms need one shape across batches (onnxruntime's collector stacks them)
    length, padding = job.max_length, True
    if fixed_length:  # padded to the longest calibration text (not max_length: all-padding tensors have no range)
        length = max(len(ids) for ids in tokenize(job.tokenizer, texts, job.max_length, padding=False)["input_ids"])
        padding = "max_length"
    out = [feed(session, tokenize(job.tokenizer, texts[i:i + 16], length, padding=padding, return_tensors="np"))
           for i in range(0, len(texts), 16)]
    digest = hashlib.sha256("\x1e".join(map(str, texts)).encode("utf-8", "surrogatepass")).hexdigest()
    return out, {"calibration_split": split, "calibration_samples": len(texts),
                 "calibration_seed": s.calibration_seed, "calibration_texts_sha256": digest}


def _fp16(job: _Job, result: ExportResult, base: str) -> list[str]:
    from .optimize import to_fp16
    from .result import Parity

    dst = job.tmp / FP16.file
    info = to_fp16(job.tmp / base, dst)
    result.files[FP16.file] = ExportFile(mib=onnx_mib(dst), dtype=info["dtype"], source=base,
                                                 advice="run on the CUDA execution provider")
    try:
        result.parity[FP16.file] = job.parity(FP16.file, None)
        return [FP16.file]
    except KdeployError as exc:
        result.parity[FP16.file] = Parity(skipped=f"cannot run on the CPU provider here: {exc}")
        return []


def _openvino_ir(job: _Job, result: ExportResult, labels: list[str]) -> list[str]:
    """The fp32 model as an OpenVINO IR: the runtime that won at large batches on Intel CPUs
    with AMX bf16 in our measurements; gated like the int8 file."""
    from ..modelio.openvino_session import to_openvino

    info = to_openvino(job.tmp / FP32.file, job.tmp / OPENVINO.file, labels)
    result.files[OPENVINO.file] = ExportFile(mib=round(((job.tmp / OPENVINO.file).stat().st_size
                                                         + (job.tmp / OPENVINO.companions[0]).stat().st_size) / 2**20, 3),
                                              dtype="bf16", source=FP32.file, runtime=OPENVINO.runtime,
                                              advice="OpenVINO on Intel CPUs; fp16 weights, bf16 compute",
                                              optimization=info)
    result.parity[OPENVINO.file] = job.parity(OPENVINO.file, None)
    return [OPENVINO.file]


def _eval_split(job: _Job):
    data = job.data
    split = job.settings.eval_split if job.settings.eval_split in data.splits else data.eval_split
    return split, data.texts(split), np.asarray(data.splits[split]["label"])


def _logits(job: _Job, name: str, texts) -> np.ndarray:
    from ..modelio.batching import batched_logits
    from ..modelio.onnx_session import onnx_runner

    return batched_logits(onnx_runner(job.session(name), job.tokenizer, job.max_length), texts)


def _accuracy(job: _Job, result: ExportResult, gated: list[str]) -> ExportAccuracy:
    """Every file scored on the evaluation split; derived files against the fp32 export."""
    from ..modelio.batching import batched_logits
    from ..modelio.torch_infer import torch_logits

    split, texts, labels = _eval_split(job)
    t0 = time.perf_counter()
    torch_ref = batched_logits(lambda t: torch_logits(job.model, job.tokenizer, t, job.max_length), texts)
    accuracy = ExportAccuracy(split=split, examples=len(labels), pytorch=job.kind.score(torch_ref, labels, thresholds=job.threshold_array))
    job.fp32_logits, job.torch_ref = None, torch_ref
    for name in result.files:
        if result.parity.get(name) and result.parity[name].skipped:
            continue
        logits = _logits(job, name, texts)
        if name == FP32.file:
            job.fp32_logits = logits
        accuracy.files[name] = _scored(job, accuracy, name, logits, labels, name in gated)
    result.timings["accuracy_seconds"] = round(time.perf_counter() - t0, 2)
    return accuracy


def _scored(job: _Job, accuracy: ExportAccuracy, name: str, logits, labels, derived: bool) -> GatedScores:
    base = job.kind.score(logits, labels, job.fp32_logits if derived else job.torch_ref, job.threshold_array)
    scored = GatedScores(**to_dict(base), agreement_with=FP32.file if derived else "pytorch",
                         max_abs_diff_vs_pytorch=float(np.abs(logits - job.torch_ref).max()))
    if derived:
        scored.drop_points = accuracy.files[FP32.file].points(scored)
        scored.gate_passed = scored.drop_points <= job.settings.max_accuracy_drop
        scored.paired_test = job.kind.paired_test(job.fp32_logits, logits, labels, job.threshold_array)
    return scored


def _gate_or_fall_back(job: _Job, result: ExportResult, gated: list[str], base: str) -> None:
    """When the default int8 file fails its gate, try the next quantisation candidates
    (per-channel scales, the last layers kept in fp32, static calibration) before giving up."""
    s = job.settings
    acc = result.accuracy
    attempts = []
    if INT8.file in gated and not acc.files[INT8.file].gate_passed:
        _, texts, labels = _eval_split(job)
        first = acc.files[INT8.file]
        attempts.append({"variant": dict(result.files[INT8.file].quantization), "drop_points": first.drop_points})
        for variant in _fallbacks(job, base):
            info = _quantise(job, job.tmp / base, job.tmp / INT8.file, **variant)
            _record_int8(job, result, base, info)
            acc.files[INT8.file] = scored = _scored(job, acc, INT8.file,
                                                            _logits(job, INT8.file, texts), labels, True)
            attempts.append({"variant": dict(info), "drop_points": scored.drop_points})
            if scored.gate_passed:  # a new file: its invariance is measured again
                inv = _invariance_of(job, job.session(INT8.file), job.invariance_texts)
                result.files[INT8.file].invariance = inv
                scored.gate_passed = inv.passed or not s.static
            if scored.gate_passed:
                break
        result.files[INT8.file].quantization["attempts"] = attempts
    failed = [n for n in gated if not acc.files[n].gate_passed]
    if failed:
        n = failed[0]
        f = acc.files[n]
        test = f.paired_test or {}
        lo, hi = test.get("drop_ci95_points", [None, None])
        certainty = (f"; on {acc.examples} examples it gets {test.get('reference_only_correct')} wrong that the fp32 "
                     f"file gets right and {test.get('candidate_only_correct')} the other way ({test.get('test')} p="
                     f"{test.get('p_value')}, drop 95% CI {lo:+.2f}..{hi:+.2f} points)") if test else ""
        tried = ", ".join(dict.fromkeys(_variant_name(a["variant"]) for a in attempts[1:]))
        advice = (f"the {len(attempts) - 1} other int8 variants tried ({tried}) lose too "
                  "much as well: export with --quantize none, or accept a larger --max-accuracy-drop"
                  if attempts else _suggestion(s))
        what = TITLES[f.metric] + (" (x100)" if not f.percent else "")
        raise AccuracyGateError(
            f"{n} loses {f.drop_points:.2f} {what} points on {acc.split} "
            f"({100 * acc.files[FP32.file].main:.2f} → {100 * f.main:.2f}), "
            f"more than --max-accuracy-drop {s.max_accuracy_drop:g}{certainty}; {advice}")


INVARIANCE_TEXTS = 2000  # evaluation texts the invariance gate runs on (the longest always among them)


def _invariances(job: _Job, result: ExportResult) -> None:
    """Each ONNX file's answers alone vs in batches of 32 vs beside the longest texts, on the
    evaluation split (up to 2,000 texts, the longest kept) or the parity texts."""
    from ..modelio.invariance import longest_first

    texts = _eval_split(job)[1] if job.data is not None else job.texts
    job.invariance_texts = longest_first(texts, INVARIANCE_TEXTS)
    for name, info in result.files.items():
        if info.invariance is None and name.endswith(".onnx") and not (result.parity.get(name)
                                                                       and result.parity[name].skipped):
            info.invariance = _invariance_of(job, job.session(name), job.invariance_texts)


def _gate_invariance(job: _Job, result: ExportResult) -> None:
    info = result.files.get(INT8.file)
    if not job.settings.static or info is None or info.invariance is None or info.invariance.passed:
        return
    raise InvarianceGateError(f"{INT8.file} is not batch-invariant on {info.invariance.texts} texts "
                              f"({info.invariance.summary()}, tolerance {info.invariance.tolerance:.0e}; worst: "
                              f"{info.invariance.worst!r}); export with --quantize int8-dynamic (answers move with "
                              "the batch) or --quantize none")


def _variant_name(info: dict) -> str:
    return ("partly fp32" if info.get("kept_fp32") else
            f"{info.get('calibration_method')} calibration" if info.get("calibration_method", "minmax") != "minmax"
            else "per-channel" if info.get("per_channel") else "per-tensor")


def _fallbacks(job: _Job, base: str) -> list[dict]:
    import onnx

    graph = onnx.load(str(job.tmp / base), load_external_data=False).graph
    dense = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.name]
    variants = [{"per_channel": not job.settings.per_channel}]  # the other weight-scale granularity first
    if job.how == "qdq" and job.settings.calibration_method == "minmax":  # outliers stretch MinMax ranges
        variants.append({"per_channel": True, "method": "percentile"})
    if dense:  # the classifier, the pooler and the last layer's output projection stay fp32
        variants.append({"per_channel": True, "exclude": dense[-3:]})
    return variants
