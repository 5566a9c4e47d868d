"""Export an entity tagger: one ONNX graph from token ids to per-token logits.

model.onnx (fp32, parity-gated against PyTorch per token: max |Δlogit| ≤ atol at every real token
of the evaluated sentences, batched by length) → model.int8.onnx (calibrated static int8: fixed
activation ranges, so a word's tag does not depend on its batchmates), gated on entity F1 (drop
≤ --max-accuracy-drop points against the fp32 file, a paired bootstrap over sentences beside it)
and on batch invariance per word (each sentence alone vs batched vs beside the longest: 0 words
whose tag changes, max |Δp| ≤ 1e-5). Every runner is scored word by word (`kdeploy.modelio.words`:
a word's tag is its first sub-token's; a word past the window reads O and counts against it).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..console import note, say
from ..data import DataConfig, load_task_data
from ..errors import KdeployError
from ..fsutil import atomic_dir
from ..modelio.exported import KEY as EXPORTED_KEY, ExportedModel
from ..modelio.invariance import TOLERANCE, Invariance
from ..modelio.record import ModelRecord, as_model_task, resolve_max_length
from ..modelio.sizes import onnx_mib
from ..tasks import task_kind
from ..tasks.tokens import softmax
from .config import ExportSettings
from .files import FP32, INT8
from .result import ExportAccuracy, ExportFile, ExportResult, GatedScores, Parity

BATCH = 32
PARITY_SENTENCES = 256
INVARIANCE_SENTENCES = 64
BESIDE = 8


def export_tokens(settings: ExportSettings, model_dir: Path, out: Path, data_cfg: DataConfig | None,
                  record: ModelRecord, overwrite: bool, task: str) -> ExportResult:
    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer
    from ..modelio.onnx_export import export_transformer

    kind = task_kind(task)
    model = load_classifier(str(model_dir), trust_remote_code=settings.trust_remote_code,
                            model_class=kind.model_class).eval()
    tokenizer = load_tokenizer(str(model_dir), settings.trust_remote_code)
    names = label_names_of(model)  # None: transformers' placeholders (LABEL_0, …), the data's order is taken
    max_length = resolve_max_length(settings.max_length, model_dir, getattr(model.config, "max_position_embeddings", None),
                                    getattr(tokenizer, "model_max_length", None))
    data = load_task_data(as_model_task(data_cfg, kind.name)) if data_cfg else None
    if data is not None and names:
        data = data.aligned_to(names, "the model")
    names = names or (data.label_names if data is not None else [str(model.config.id2label[i])
                                                                 for i in range(model.config.num_labels)])
    if settings.gated and data is None:
        raise KdeployError("an int8 tagger is accuracy-gated on tagged sentences: give --test/--validation files of "
                           "words and tags, or pass --quantize none")
    words = _sentences(data)
    job = _Runs(model, tokenizer, max_length)
    result = ExportResult(model=str(model_dir), config={"settings": to_dict(settings)}, max_length=max_length,
                          label_names=names, exporter="torch.onnx (per-token logits)")
    if settings.optimize:
        note(f"--optimize {settings.optimize}: onnxruntime's transformer fusions are not applied to an entity tagger's graph "
             "yet; its files are the unfused graph (--optimize none says so quietly)")
    started = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        job.folder = tmp
        export_transformer(model, tmp / FP32.file, settings.opset, per_token=True)
        result.files[FP32.file] = ExportFile(mib=onnx_mib(tmp / FP32.file), dtype="fp32", opset=settings.opset)
        result.parity[FP32.file] = job.parity(FP32.file, words[:PARITY_SENTENCES], settings.atol)
        if not result.parity[FP32.file].passed:
            raise KdeployError(f"{FP32.file} differs from PyTorch by {result.parity[FP32.file].max_abs_diff:.1e} per "
                               f"token (> {settings.atol:g}); not exported")
        gated = _int8(job, settings, data) if settings.quantize else []
        for name in gated:
            result.files[name] = ExportFile(mib=onnx_mib(tmp / name), dtype="int8", opset=settings.opset,
                                            source=FP32.file, quantization=job.quantization,
                                            size_ratio_to_fp32=round(onnx_mib(tmp / name) / result.files[FP32.file].mib, 3))
            result.parity[name] = job.parity(name, words[:PARITY_SENTENCES], None)  # measured; gated on F1
        if data is not None:
            result.accuracy = _accuracy(job, kind, data, settings, result, gated, names)
        for name in result.files:
            result.files[name].invariance = invariance(job, name, _longest(words, INVARIANCE_SENTENCES))
        _gate(settings, result, gated)
        tokenizer.save_pretrained(tmp)
        model.config.update({EXPORTED_KEY: ExportedModel(
            max_length=max_length, label_names=names, opset=settings.opset, pairs=False, task=kind.name,
            inputs=sorted(i.name for i in job.session(FP32.file).get_inputs()), outputs=["logits"]).to_json()})
        model.config.save_pretrained(tmp)
        result.finish(record, data.fingerprint if data is not None else None, started, tmp)
    return result


def _sentences(data) -> list[list[str]]:
    """Sentences to check parity and invariance on: validation's (else the data's first split's),
    else a few fixed ones."""
    if data is not None:
        split = "validation" if "validation" in data.splits else next(iter(data.splits))
        return [list(w) for w in data.splits[split]["words"]]
    return [s.split() for s in ("John Smith lives in New York .", "Apple opened an office in Berlin last May .",
                                "Nothing to see here .")]


def _longest(words: list[list[str]], n: int) -> list[list[str]]:
    """The n longest sentences (where a window or padding would show), then the shortest."""
    order = sorted(range(len(words)), key=lambda i: -len(words[i]))
    pick = order[: n - n // 4] + order[-(n // 4):] if len(order) > n else order
    return [words[i] for i in pick]


class _Runs:
    """The PyTorch model and one onnxruntime session per file, on the same encoded sentences."""

    def __init__(self, model, tokenizer, max_length: int):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.folder: Path | None = None
        self.sessions: dict = {}
        self.quantization: dict | None = None

    def session(self, name: str):
        from ..modelio.onnx_session import create_session

        if name not in self.sessions:
            self.sessions[name] = create_session(self.folder / name)
        return self.sessions[name]

    def encode(self, words: list[list[str]], tensors: str = "np"):
        from ..modelio.words import encode_words

        enc, _ = encode_words(self.tokenizer, words, self.max_length, padding=True, return_tensors=tensors)
        return enc

    def token_logits(self, name: str | None, words: list[list[str]]) -> list[np.ndarray]:
        """Per-token logits of each sentence (its real tokens), one call for the sentences given."""
        enc = self.encode(words, "np" if name else "pt")
        if name is None:
            import torch

            from ..modelio.inputs import select_inputs

            with torch.inference_mode():
                logits = self.model(**select_inputs(enc)).logits.float().numpy()
        else:
            from ..modelio.onnx_session import feed

            logits = self.session(name).run(["logits"], feed(self.session(name), enc))[0].astype(np.float64)
        lengths = np.asarray(enc["attention_mask"]).sum(1)
        return [row[:n] for row, n in zip(logits, lengths)]

    def word_logits(self, name: str | None, words: list[list[str]]) -> list[np.ndarray]:
        """One row per word per sentence, batched by length."""
        from ..modelio.words import word_rows

        out: list = [None] * len(words)
        order = np.argsort([len(w) for w in words], kind="stable")
        for start in range(0, len(order), BATCH):
            rows = [int(i) for i in order[start:start + BATCH]]
            chunk = [words[i] for i in rows]
            enc = self.tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=self.max_length)
            for k, (i, logits) in enumerate(zip(rows, self.token_logits(name, chunk))):
                out[i] = word_rows(logits, enc.word_ids(k), len(words[i]))
        return out

    def parity(self, name: str, words: list[list[str]], atol: float | None) -> Parity:
        """Max |Δlogit| over every real token, the file against PyTorch, in length-sorted batches."""
        diff, agree, total = 0.0, 0, 0
        order = np.argsort([len(w) for w in words], kind="stable")
        for start in range(0, len(order), BATCH):
            chunk = [words[int(i)] for i in order[start:start + BATCH]]
            for a, b in zip(self.token_logits(name, chunk), self.token_logits(None, chunk)):
                diff = max(diff, float(np.abs(a - b).max()) if len(a) else 0.0)
                agree += int((a.argmax(-1) == b.argmax(-1)).sum())
                total += len(a)
        return Parity(max_abs_diff=diff, argmax_agreement=agree / max(total, 1), tolerance=atol,
                      passed=None if atol is None else diff <= atol,
                      cases=[{"sentences": len(words), "tokens": total, "max_abs_diff": diff}])


def _int8(job: _Runs, settings: ExportSettings, data) -> list[str]:
    """model.int8.onnx: calibrated static int8 (dynamic int8 when asked) from the fp32 graph."""
    from ..modelio.onnx_session import feed
    from .quantize import detect_isa, quantize_dynamic_int8, quantize_static_int8

    isa = detect_isa() if settings.isa == "auto" else settings.isa
    src, dst = job.folder / FP32.file, job.folder / INT8.file
    if settings.quantize == "int8-dynamic":
        job.quantization = quantize_dynamic_int8(src, dst, isa, settings.per_channel)
        return [INT8.file]
    split = "train" if "train" in data.splits else next(iter(data.splits))
    pool = [list(w) for w in data.splits[split]["words"]]
    order = np.random.default_rng(settings.calibration_seed).permutation(len(pool))[:settings.calibration_samples]
    sample = [pool[i] for i in order]
    session = job.session(FP32.file)

    def batches():
        return [feed(session, job.encode(sample[i:i + 16])) for i in range(0, len(sample), 16)]
    job.quantization = quantize_static_int8(src, dst, isa, settings.per_channel, settings.calibration_method, batches,
                                            calibration={"calibration_samples": len(sample),
                                                         "calibration_seed": settings.calibration_seed,
                                                         "calibration_split": split})
    return [INT8.file]


def _accuracy(job: _Runs, kind, data, settings: ExportSettings, result: ExportResult, gated: list[str],
              names: list[str]) -> ExportAccuracy:
    """Every file scored word by word on the evaluated split; int8 against the fp32 export."""
    split = settings.eval_split if settings.eval_split in data.splits else data.eval_split
    words = [list(w) for w in data.splits[split]["words"]]
    gold = [list(x) for x in data.splits[split]["label"]]
    t0 = time.perf_counter()
    reference = job.word_logits(None, words)
    accuracy = ExportAccuracy(split=split, examples=len(words), pytorch=kind.score(reference, gold, label_names=names))
    fp32 = None
    for name in result.files:
        rows = job.word_logits(name, words)
        derived = name in gated
        base = kind.score(rows, gold, fp32 if derived else reference, label_names=names)
        scored = GatedScores(**to_dict(base), agreement_with=FP32.file if derived else "pytorch",
                             max_abs_diff_vs_pytorch=max(float(np.abs(a - b).max()) if len(a) else 0.0
                                                         for a, b in zip(rows, reference)))
        if name == FP32.file:
            fp32 = rows
        if derived:
            scored.drop_points = accuracy.files[FP32.file].points(scored)
            scored.gate_passed = scored.drop_points <= settings.max_accuracy_drop
            scored.paired_test = kind.paired_test(fp32, rows, gold, label_names=names)
        accuracy.files[name] = scored
    result.timings["accuracy_seconds"] = round(time.perf_counter() - t0, 2)
    return accuracy


def invariance(job: _Runs, name: str, words: list[list[str]]) -> Invariance:
    """Each sentence alone vs in length-sorted batches vs beside the longest: the largest move of
    a word's tag probabilities, and how many words' tags change (`flips` counts words here)."""
    if not words:
        return Invariance(texts=0, max_abs_diff=0.0, flips=0)
    alone = [softmax(job.word_logits(name, [w])[0]) for w in words]
    batched = [softmax(r) for r in job.word_logits(name, words)]
    longest = max(words, key=len)
    beside = []
    for start in range(0, len(words), BESIDE - 1):
        chunk = words[start:start + BESIDE - 1]
        beside += [softmax(r) for r in job.word_logits(name, chunk + [longest])[:len(chunk)]]
    diff, flips, worst = 0.0, 0, 0
    for i, a in enumerate(alone):
        if not len(a):
            continue
        moved = max(float(np.abs(batched[i] - a).max()), float(np.abs(beside[i] - a).max()))
        if moved > diff:
            diff, worst = moved, i
        flips += int(((batched[i].argmax(-1) != a.argmax(-1)) | (beside[i].argmax(-1) != a.argmax(-1))).sum())
    text = " ".join(words[worst])
    return Invariance(texts=len(words), max_abs_diff=diff, flips=flips, tolerance=TOLERANCE,
                      worst=text if len(text) <= 80 else text[:77] + "...")


def _gate(settings: ExportSettings, result: ExportResult, gated: list[str]) -> None:
    """An int8 file that loses more than --max-accuracy-drop of entity F1, or whose words change
    tag with their batchmates, is refused."""
    from .errors import AccuracyGateError, InvarianceGateError

    for name in gated:
        scored = result.scores(name)
        if scored is not None and not scored.gate_passed:
            raise AccuracyGateError(f"{name}: entity F1 {100 * scored.main:.2f} is {scored.drop_points:.2f} points below "
                                    f"the fp32 export's (gate: {settings.max_accuracy_drop:g}); try --quantize "
                                    "int8-dynamic, --calibration-method percentile, or --quantize none")
        inv = result.files[name].invariance
        if inv is not None and not inv.passed:
            raise InvarianceGateError(f"{name}: {inv.flips} words change tag with their batchmates (max |Δp| "
                                      f"{inv.max_abs_diff:.1e}); a server that batches would tag by who else asked; "
                                      "use --quantize int8 (calibrated)")
    for name, info in result.files.items():
        scored = result.scores(name)
        inv = info.invariance
        say(f"{name}: {info.mib:.1f} MiB" + (f", entity F1 {100 * scored.main:.2f}" if scored else "")
            + (f" ({scored.drop_points:.2f} points below fp32)" if scored and scored.drop_points is not None else "")
            + (f", batch {'invariant' if inv.passed else 'VARIANT'} ({inv.flips} word flips, max |Δp| "
               f"{inv.max_abs_diff:.1e} over {inv.texts} sentences)" if inv else ""))
