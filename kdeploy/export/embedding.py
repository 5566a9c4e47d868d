"""Export a sentence embedder: one ONNX graph from token ids to the sentence vector, with the
model's own pooling and L2 normalisation *inside* (output `sentence_embedding`), so any
runtime gets the vector sentence-transformers gives without re-implementing either.

model.onnx (fp32, parity-gated against sentence-transformers: max |Δ| ≤ atol on every
evaluated text) → model.int8.onnx (calibrated static int8: fixed activation ranges, so a text's
vector does not depend on its batchmates), gated on the task's main metric (Spearman ρ of
cosine on scored pairs, a paired bootstrap beside the drop) and on batch invariance (each text
alone vs batched vs beside the longest: max |Δ| ≤ 1e-5). A file that fails is not shipped; a
calibrated file that fails the accuracy gate gives way to dynamic int8 only where that one
passes both gates.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..console import note, say
from ..data import FALLBACK_TEXTS, DataConfig
from ..errors import KdeployError
from ..fsutil import atomic_dir
from ..modelio.exported import KEY as EXPORTED_KEY, ExportedModel
from ..modelio.invariance import check_invariance, longest_first
from ..modelio.record import ModelRecord, as_model_task
from ..modelio.sizes import onnx_mib
from ..tasks import task_kind
from .config import ExportSettings
from .files import FP32, INT8
from .result import ExportAccuracy, ExportFile, ExportResult, GatedScores, Parity

OUTPUT = "sentence_embedding"
INVARIANCE_TEXTS = 64
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def export_embedding(settings: ExportSettings, model_dir: Path, out: Path, data_cfg: DataConfig | None,
                     record: ModelRecord, overwrite: bool, task: str) -> ExportResult:
    from ..data.embedding import load_embedding_data
    from ..modelio.embedder import encoder_of, load_embedder, pooling_of

    kind = task_kind(task)
    model = load_embedder(str(model_dir), settings.trust_remote_code)
    max_length = int(settings.max_length or model.max_seq_length or 128)
    model.max_seq_length = max_length
    data = load_embedding_data(as_model_task(data_cfg, kind.name)) if data_cfg else None
    if settings.quantize and (data is None or not data.scored):
        raise KdeployError("an int8 embedder is accuracy-gated on scored pairs: give --validation/--test files of "
                           "sentence1, sentence2, score (STS-B's), or pass --quantize none")
    texts = (data.scored.get("validation") or next(iter(data.scored.values())))[0][:256] \
        if data is not None and data.scored else list(FALLBACK_TEXTS)
    pooling = pooling_of(model)
    result = ExportResult(model=str(model_dir), config={"settings": to_dict(settings)}, max_length=max_length,
                          label_names=[OUTPUT], exporter="torch.onnx (pooling and normalisation in the graph)")
    if settings.optimize:
        note(f"--optimize {settings.optimize}: onnxruntime's transformer fusions are not applied to a sentence embedder's graph "
             "yet; its files are the unfused graph (--optimize none says so quietly)")
    started = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        from ..modelio.embedder import embedding_graph
        from ..modelio.onnx_export import export_transformer

        encoder = encoder_of(model)
        export_transformer(encoder, tmp / FP32.file, settings.opset,
                           graph=lambda names: embedding_graph(model, names), output=OUTPUT)
        result.files[FP32.file] = ExportFile(mib=onnx_mib(tmp / FP32.file), dtype="fp32", opset=settings.opset)
        job = _Runs(model, tmp, max_length)
        result.parity[FP32.file] = job.parity(FP32.file, texts, settings.atol)
        if not result.parity[FP32.file].passed:
            raise KdeployError(f"{FP32.file} differs from sentence-transformers by "
                               f"{result.parity[FP32.file].max_abs_diff:.1e} (> {settings.atol:g}); not exported")
        gated = []
        if settings.quantize:
            gated = _int8(job, settings, data, result)
            result.parity[INT8.file] = job.parity(INT8.file, texts, None)  # measured; int8 is gated on accuracy
        if data is not None and data.scored:
            result.accuracy = _accuracy(job, kind, data, settings, result, gated)
        for name in result.files:
            result.files[name].invariance = check_invariance(job.runner(name), longest_first(texts, INVARIANCE_TEXTS),
                                                             kind.name)
        _gate(job, settings, result, gated)
        model.tokenizer.save_pretrained(tmp)
        _module_files(model, tmp)
        encoder.config.update({EXPORTED_KEY: ExportedModel(
            max_length=max_length, label_names=[OUTPUT], opset=settings.opset, pairs=False, task=kind.name,
            inputs=sorted(i.name for i in job.session(FP32.file).get_inputs()), outputs=[OUTPUT],
            pooling=pooling).to_json()})
        encoder.config.save_pretrained(tmp)
        result.finish(record, data.fingerprint if data is not None else None, started, tmp)
    return result


class _Runs:
    """One onnxruntime session per file and the PyTorch model, run on the same tokenised texts."""

    def __init__(self, model, folder: Path, max_length: int):
        self.model, self.folder, self.max_length, self.sessions = model, folder, max_length, {}

    def session(self, name: str):
        from ..modelio.onnx_session import create_session

        if name not in self.sessions:
            self.sessions[name] = create_session(self.folder / name)
        return self.sessions[name]

    def runner(self, name: str):
        from ..modelio.onnx_session import onnx_runner

        return onnx_runner(self.session(name), self.model.tokenizer, self.max_length)

    def vectors(self, name: str, texts: list[str]) -> np.ndarray:
        from ..modelio.batching import batched_logits

        return batched_logits(self.runner(name), texts)

    def reference(self, texts: list[str]) -> np.ndarray:
        from ..modelio.embedder import embed

        return embed(self.model, texts)

    def parity(self, name: str, texts: list[str], atol: float | None) -> Parity:
        diff = float(np.abs(self.vectors(name, texts) - self.reference(texts)).max())
        return Parity(max_abs_diff=diff, tolerance=atol, passed=None if atol is None else diff <= atol,
                      cases=[{"texts": len(texts), "max_abs_diff": diff}])


def _int8(job: _Runs, settings: ExportSettings, data, result: ExportResult) -> list[str]:
    """model.int8.onnx: calibrated static int8 (dynamic int8 when asked), from the fp32 graph."""
    from ..modelio.inputs import tokenize
    from ..modelio.onnx_session import feed
    from .quantize import detect_isa, quantize_dynamic_int8, quantize_static_int8

    isa = detect_isa() if settings.isa == "auto" else settings.isa
    src, dst = job.folder / FP32.file, job.folder / INT8.file
    if settings.quantize == "int8-dynamic":
        info = quantize_dynamic_int8(src, dst, isa, settings.per_channel)
    else:
        pool = data.train or data.scored[next(iter(data.scored))][0]
        if not data.train:
            note("no training text for calibration: using a sample of the scored pairs' text")
        order = np.random.default_rng(settings.calibration_seed).permutation(len(pool))[:settings.calibration_samples]
        sample = [pool[i] for i in order]
        session = job.session(FP32.file)

        def batches():
            return [feed(session, tokenize(job.model.tokenizer, sample[i:i + 16], job.max_length, return_tensors="np"))
                    for i in range(0, len(sample), 16)]
        info = quantize_static_int8(src, dst, isa, settings.per_channel, settings.calibration_method, batches,
                                    calibration={"calibration_samples": len(sample),
                                                 "calibration_seed": settings.calibration_seed})
    result.files[INT8.file] = ExportFile(mib=onnx_mib(dst), dtype="int8", opset=settings.opset, source=FP32.file,
                                         quantization=info,
                                         size_ratio_to_fp32=round(onnx_mib(dst) / result.files[FP32.file].mib, 3))
    return [INT8.file]


def _accuracy(job: _Runs, kind, data, settings: ExportSettings, result: ExportResult, gated: list[str]):
    """Every file scored on the evaluation split's pairs; int8 against the fp32 export."""
    split = settings.eval_split if settings.eval_split in data.scored else data.eval_split
    rows, scores = data.scored[split]
    t0 = time.perf_counter()
    reference = job.reference(rows)
    accuracy = ExportAccuracy(split=split, examples=len(scores) // 2, pytorch=kind.score(reference, scores))
    fp32 = None
    for name in result.files:
        vectors = job.vectors(name, rows)
        derived = name in gated
        base = kind.score(vectors, scores, fp32 if derived else reference)
        scored = GatedScores(**to_dict(base), agreement_with=FP32.file if derived else "pytorch",
                             max_abs_diff_vs_pytorch=float(np.abs(vectors - reference).max()))
        if name == FP32.file:
            fp32 = vectors
        if derived:
            scored.drop_points = accuracy.files[FP32.file].points(scored)
            scored.gate_passed = scored.drop_points <= settings.max_accuracy_drop
            scored.paired_test = kind.paired_test(fp32, vectors, scores)
        accuracy.files[name] = scored
    result.timings["accuracy_seconds"] = round(time.perf_counter() - t0, 2)
    return accuracy


def _gate(job: _Runs, settings: ExportSettings, result: ExportResult, gated: list[str]) -> None:
    """An int8 file that loses more than --max-accuracy-drop, or moves with its batchmates, is refused."""
    from .errors import AccuracyGateError, InvarianceGateError

    for name in gated:
        scored = result.scores(name)
        if scored is not None and not scored.gate_passed:
            raise AccuracyGateError(f"{name}: Spearman ρ {scored.main:.4f} is {scored.drop_points:.2f} points below "
                                    f"the fp32 export's (gate: {settings.max_accuracy_drop:g}); try --quantize "
                                    "int8-dynamic, --calibration-method percentile, or --quantize none")
        invariance = result.files[name].invariance
        if invariance is not None and not invariance.passed:
            raise InvarianceGateError(f"{name}: a text's vector moves with its batchmates ({invariance.summary()}); "
                                      "a server that batches would answer by who else asked; use --quantize int8 "
                                      "(calibrated)")
    for name, info in result.files.items():
        scored = result.scores(name)
        say(f"{name}: {info.mib:.1f} MiB" + (f", Spearman ρ {scored.main:.4f}" if scored else "")
            + (f" ({scored.drop_points:.2f} points below fp32)" if scored and scored.drop_points is not None else "")
            + (f", batch {'invariant' if info.invariance.passed else 'VARIANT'} (max |Δ| "
               f"{info.invariance.max_abs_diff:.1e} over {info.invariance.texts} texts)" if info.invariance else ""))


def _module_files(model, folder: Path) -> None:
    """sentence-transformers' module configs (pooling, normalisation, prompts) beside the graph,
    without its weights: the bundle reads the pooling from them, as sentence-transformers would."""
    with tempfile.TemporaryDirectory(prefix=".kdeploy-st-", dir=folder.parent) as scratch:
        model.save(scratch, safe_serialization=True)
        for name in ST_FILES:
            if (Path(scratch) / name).is_file():
                shutil.copy2(Path(scratch) / name, folder / name)
        for sub in Path(scratch).iterdir():
            if sub.is_dir() and sub.name[:1].isdigit():
                shutil.copytree(sub, folder / sub.name)
