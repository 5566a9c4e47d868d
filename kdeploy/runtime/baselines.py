"""The baselines a pragmatic engineer tries before distilling, as bench candidates: trained on
the same train split, scored on the same test split and timed in the same interleaved run as
every model, so the front shows plainly whether a student earns its keep.

    tfidf-lr   scikit-learn: TF-IDF over word 1-2-grams + logistic regression, C chosen on validation
    fasttext   fastText (bigrams), the library's supervised classifier
    model2vec  a static model distilled from the teacher's base encoder (model2vec.distill, PCA to at
               most 256 dimensions: a narrower encoder keeps its width)
               and its own classifier (StaticModelForClassification.fit, early stopping on validation)

Each is optional: absent its package, it is skipped with a note. Each is timed from text to
probabilities, as the bundles are. Pairs are read as one text ("first | second"); a score
task has no baseline here (each task kind's registry entry names the baselines it has). A user who picks a baseline still has to ship it, so each
is exported to ONNX where its library can (tfidf-lr by skl2onnx, text in; model2vec by its own
`model2vec.onnx`, token ids in beside its tokenizer.json; fastText has no exporter), checked
against the library on the validation texts, and the files land in the report's `baselines/<name>/`
(the library's own files there when there is no ONNX file: fastText's model.bin).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KdeployError
from ..names import TOKENIZER_FILE
from ..registry import Registry

PAIR_JOIN = " | "
M2V_FILE = "model.onnx"  # what model2vec.onnx names the file it writes
PCA_DIMS = 256  # model2vec's width cap for the distilled token vectors


@dataclass
class Baseline:
    fit: Callable  # (train texts, train ids, validation texts, validation ids, labels, FitContext) -> Fitted
    needs: tuple[str, ...]  # importable modules
    doc: str


@dataclass
class Fitted:
    proba: Callable  # texts -> probabilities [n, labels], in label-id order
    how: str  # how it was fitted, for the report's notes
    export: Callable | None = None  # folder -> (probabilities fn over texts from the written ONNX file, what it is)
    not_exported: str = ""  # why there is no ONNX file, when export is None
    thresholds: np.ndarray | None = None  # multi-label: each label's threshold, tuned on validation as a student's


BASELINES = Registry("baseline")


def register_baseline(name: str, needs: tuple[str, ...]):
    def deco(fn):
        BASELINES.register(name, Baseline(fn, needs, (fn.__doc__ or "").strip().splitlines()[0]))
        return fn
    return deco


@dataclass
class FitContext:
    folder: Path  # where the fitted baseline is saved (its size is measured there)
    seed: int
    threads: int
    encoder: str | None  # model2vec: the encoder to distil from


def _columns(proba: np.ndarray, classes: list[int], num_labels: int) -> np.ndarray:
    """Probabilities in label-id order, a zero column for a class the training split lacked."""
    out = np.zeros((proba.shape[0], num_labels), dtype=np.float64)
    out[:, classes] = proba
    return out


@register_baseline("tfidf-lr", needs=("sklearn",))
def _tfidf_lr(x, y, vx, vy, num_labels, ctx: FitContext):
    """TF-IDF (word 1-2-grams, sublinear tf) + logistic regression; C picked on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    train, val = vec.fit_transform(x), vec.transform(vx)
    best = None
    for c in (0.25, 1.0, 4.0, 16.0, 64.0):
        lr = LogisticRegression(C=c, max_iter=2000, random_state=ctx.seed).fit(train, y)
        acc = float((lr.predict(val) == np.asarray(vy)).mean())
        if best is None or acc > best[0]:
            best = (acc, c, lr)
    _, c, lr = best
    classes = [int(k) for k in lr.classes_]
    np.save(ctx.folder / "coef.npy", lr.coef_.astype(np.float32))  # what a deployment keeps: weights, idf,
    np.save(ctx.folder / "idf.npy", vec.idf_.astype(np.float32))  # and the n-gram vocabulary
    (ctx.folder / "vocabulary.txt").write_text("\n".join(vec.vocabulary_), encoding="utf-8")

    def proba(texts):
        return _columns(lr.predict_proba(vec.transform(texts)), classes, num_labels)

    def export(folder: Path):
        return _tfidf_onnx(vec, lr, folder, classes, num_labels)
    return Fitted(proba, f"C {c} (of 0.25-64, on validation), {len(vec.vocabulary_):,} n-grams", export,
                  "skl2onnx is not installed (pip install skl2onnx)" if importlib.util.find_spec("skl2onnx") is None
                  else "")


def _tfidf_onnx(vec, lr, folder: Path, classes: list[int], num_labels: int):
    """The vectorizer and the classifier as one ONNX graph, text in, probabilities out (skl2onnx).
    Its tokenizer op is given scikit-learn's own pattern, and its lower-casing the C.UTF-8 locale:
    onnxruntime's default (en_US.UTF-8) is missing on many machines and fails at load."""
    import onnxruntime as ort
    from onnx import helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import Pipeline

    graph = convert_sklearn(Pipeline([("tfidf", vec), ("lr", lr)]), initial_types=[("text", StringTensorType([None, 1]))],
                            options={id(lr): {"zipmap": False}, id(vec): {"tokenexp": vec.token_pattern.replace("(?u)", "")}},
                            target_opset=17)
    for node in graph.graph.node:
        if node.op_type == "StringNormalizer":
            node.attribute.append(helper.make_attribute("locale", "C.UTF-8"))
    from ..export.files import FP32

    folder.mkdir(parents=True, exist_ok=True)
    (folder / FP32.file).write_bytes(graph.SerializeToString())
    session = ort.InferenceSession(str(folder / FP32.file), providers=["CPUExecutionProvider"])

    def proba(texts):
        out = session.run(["probabilities"], {"text": np.asarray(list(texts), dtype=object).reshape(-1, 1)})[0]
        return _columns(out, classes, num_labels)
    return proba, "model.onnx: text in, probabilities out (skl2onnx; onnxruntime's Tokenizer/TfIdfVectorizer ops)"


@register_baseline("fasttext", needs=("fasttext",))
def _fasttext(x, y, vx, vy, num_labels, ctx: FitContext):
    """fastText supervised (word bigrams, 25 epochs): the library's own classifier."""
    import fasttext

    train = ctx.folder / "train.txt"
    train.write_text("".join(f"__label__{label} {' '.join(t.split())}\n" for t, label in zip(x, y)), encoding="utf-8")
    model = fasttext.train_supervised(input=str(train), wordNgrams=2, epoch=25, lr=0.5, seed=ctx.seed,
                                      thread=ctx.threads, verbose=0)
    train.unlink()
    model.save_model(str(ctx.folder / "model.bin"))
    order = {f"__label__{k}": k for k in range(num_labels)}

    def proba(texts):
        out = np.zeros((len(texts), num_labels), dtype=np.float64)
        labels, probs = model.predict([" ".join(t.split()) for t in texts], k=-1)
        for row, (names, ps) in enumerate(zip(labels, probs)):
            for name, p in zip(names, ps):
                out[row, order[name]] = p
        return out
    return Fitted(proba, "wordNgrams 2, 25 epochs, lr 0.5, the library's other defaults",
                  not_exported="fastText has no ONNX exporter; it ships as its own model.bin")


@register_baseline("model2vec", needs=("model2vec", "torch"))
def _model2vec(x, y, vx, vy, num_labels, ctx: FitContext):
    """model2vec: a static model distilled from the teacher's base encoder, and its own classifier."""
    from model2vec.distill import distill
    from model2vec.train import StaticModelForClassification

    if not ctx.encoder:
        raise KdeployError("model2vec needs an encoder to distil from; give --baseline-encoder")
    with _quiet():
        static = distill(model_name=ctx.encoder, pca_dims=PCA_DIMS)
        clf = StaticModelForClassification.from_static_model(model=static, out_dim=num_labels)
        clf = clf.fit(list(x), [str(k) for k in y], X_val=list(vx), y_val=[str(k) for k in vy],
                      random_seed=ctx.seed)
    static.save_pretrained(str(ctx.folder / "static"))  # its size: the token vectors (the head is small)
    classes = [int(k) for k in clf.classes]

    def proba(texts):
        return _columns(np.asarray(clf.predict_proba(list(texts)), dtype=np.float64), classes, num_labels)

    def export(folder: Path):
        return _model2vec_onnx(clf, folder, classes, num_labels)
    return Fitted(proba, f"distilled from {'/'.join(Path(ctx.encoder).parts[-2:])} ({_dims(static.dim)}), classifier "
                  "early-stopped on validation", export,
                  "" if importlib.util.find_spec("skeletoken") else "model2vec's ONNX export needs its extra: "
                  "pip install 'model2vec[onnx]'")


def _dims(dim: int) -> str:
    """model2vec reduces to PCA_DIMS only an encoder wider than that; a narrower one keeps its width."""
    return (f"PCA to {dim} dimensions" if dim == PCA_DIMS
            else f"{dim} dimensions, the encoder's own width (PCA only above {PCA_DIMS})")


def _model2vec_onnx(clf, folder: Path, classes: list[int], num_labels: int):
    """model2vec's own export (`model2vec.onnx`): token ids and mask in, probabilities out, with the
    tokenizer.json it reads them by (no special tokens, at most its max_length tokens)."""
    import onnxruntime as ort
    from model2vec.onnx import export_model_to_onnx
    from tokenizers import Tokenizer

    pipeline = clf.to_pipeline()
    with _quiet():
        export_model_to_onnx(pipeline, folder)
    session = ort.InferenceSession(str(folder / M2V_FILE), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    limit = pipeline.model.max_length or 512

    def proba(texts):
        ids = [e.ids[:limit] for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        width = max([1] + [len(i) for i in ids])  # an empty text: one masked slot, a zero vector as in the library
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, i in enumerate(ids):
            input_ids[row, :len(i)], mask[row, :len(i)] = i, 1
        out = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return _columns(out, classes, num_labels)
    return proba, "model.onnx + tokenizer.json: token ids in (no special tokens), probabilities out (model2vec.onnx)"


@contextlib.contextmanager
def _quiet():
    """model2vec trains through Lightning, whose progress bars would flood the bench's output."""
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def missing(name: str) -> str | None:
    return next((m for m in BASELINES.lookup(name).needs if importlib.util.find_spec(m) is None), None)


def as_text(example) -> str:
    return PAIR_JOIN.join(example) if isinstance(example, (tuple, list)) else example


class _WordTokens:
    """Words per text, answering like a tokenizer (numpy) for the bench's padding accounting."""

    def __call__(self, texts, text_pair=None, truncation=True, max_length=None, padding=True, return_tensors="np"):
        items = [f"{a}{PAIR_JOIN}{b}" for a, b in zip(texts, text_pair)] if text_pair is not None else list(texts)
        counts = [max(1, len(as_text(t).split())) for t in items]
        longest = max(counts, default=1)
        mask = np.zeros((len(items), longest), dtype=np.int64)
        for i, n in enumerate(counts):
            mask[i, :n] = 1
        return {"input_ids": np.zeros_like(mask), "attention_mask": mask}


def train_baseline(name: str, task, split_for_choice: str, ctx: FitContext) -> tuple[Fitted, float]:
    """(the fitted baseline, seconds to fit) on the task's train split."""
    task.kind.refuse("baseline", name, task.kind.baselines)
    if task.kind.thresholds:
        return _multi_label(name, task, split_for_choice, ctx)
    x = [as_text(t) for t in task.texts("train")]
    y = [int(k) for k in task.splits["train"]["label"]]
    vx = [as_text(t) for t in task.texts(split_for_choice)]
    vy = [int(k) for k in task.splits[split_for_choice]["label"]]
    ctx.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fitted = BASELINES[name].fit(x, y, vx, vy, task.num_labels, ctx)
    return fitted, time.perf_counter() - t0


def _multi_label(name: str, task, split_for_choice: str, ctx: FitContext) -> tuple[Fitted, float]:
    """A multi-label task: the baseline's multi-label form, its thresholds tuned on validation the
    way a student's are (so the comparison is fair)."""
    x = [as_text(t) for t in task.texts("train")]
    y = np.asarray(task.splits["train"]["label"], dtype=np.float64)
    vx = [as_text(t) for t in task.texts(split_for_choice)]
    vy = np.asarray(task.splits[split_for_choice]["label"], dtype=np.float64)
    ctx.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fitted = MULTI_LABEL_BASELINES[name](x, y, vx, vy, ctx)
    tuned = task.kind.tune(task.kind.logits_of(fitted.proba(vx)), vy, task.label_names)
    fitted.thresholds = np.asarray([tuned[n] for n in task.label_names])
    return fitted, time.perf_counter() - t0


def _tfidf_ovr(x, y, vx, vy, ctx: FitContext) -> Fitted:
    """TF-IDF (word 1-2-grams) + one logistic regression per label (one-vs-rest); C picked on
    validation macro-F1 at 0.5."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from ..tasks.multi_label import multilabel_metrics

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    train, val = vec.fit_transform(x), vec.transform(vx)
    present = y.sum(0) > 0  # a label with no training example gets probability 0
    best = None
    for c in (1.0, 4.0, 16.0):
        clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=ctx.seed), n_jobs=1)
        clf.fit(train, y[:, present])
        f1 = multilabel_metrics(clf.predict_proba(val) >= 0.5, vy[:, present])["macro_f1"]
        if best is None or f1 > best[0]:
            best = (f1, c, clf)
    _, c, clf = best
    np.save(ctx.folder / "coef.npy", np.stack([e.coef_[0] for e in clf.estimators_]).astype(np.float32))
    np.save(ctx.folder / "idf.npy", vec.idf_.astype(np.float32))
    (ctx.folder / "vocabulary.txt").write_text("\n".join(vec.vocabulary_), encoding="utf-8")

    def proba(texts):
        out = np.zeros((len(texts), y.shape[1]), dtype=np.float64)
        out[:, present] = clf.predict_proba(vec.transform(texts))
        return out
    return Fitted(proba, f"one-vs-rest, C {c} (of 1-16, on validation), {len(vec.vocabulary_):,} n-grams",
                  not_exported="the one-vs-rest baseline ships as its weights (coef.npy, idf.npy, vocabulary.txt)")


def _fasttext_ova(x, y, vx, vy, ctx: FitContext) -> Fitted:
    """fastText supervised with -loss ova (one-vs-all: a sigmoid per label), as its docs advise
    for multi-label."""
    import fasttext

    train = ctx.folder / "train.txt"
    train.write_text("".join(" ".join(f"__label__{j}" for j in np.flatnonzero(row)) + f" {' '.join(t.split())}\n"
                             for t, row in zip(x, y)), encoding="utf-8")
    model = fasttext.train_supervised(input=str(train), wordNgrams=2, epoch=25, lr=0.5, seed=ctx.seed, loss="ova",
                                      thread=ctx.threads, verbose=0)
    train.unlink()
    model.save_model(str(ctx.folder / "model.bin"))

    def proba(texts):
        out = np.zeros((len(texts), y.shape[1]), dtype=np.float64)
        labels, probs = model.predict([" ".join(t.split()) for t in texts], k=-1, threshold=0.0)
        for row, (names, ps) in enumerate(zip(labels, probs)):
            for name, p in zip(names, ps):
                out[row, int(name.removeprefix("__label__"))] = p
        return out
    return Fitted(proba, "-loss ova, wordNgrams 2, 25 epochs, lr 0.5",
                  not_exported="fastText has no ONNX exporter; it ships as its own model.bin")


MULTI_LABEL_BASELINES = {"tfidf-lr": _tfidf_ovr, "fasttext": _fasttext_ova}


def export_baseline(fitted: Fitted, folder: Path, texts: list[str]) -> str:
    """Write the baseline's ONNX file into `folder` and check it against the library on `texts`:
    one line for the report (or why there is no file)."""
    if fitted.export is None or fitted.not_exported:
        return f"not exported to ONNX: {fitted.not_exported}"
    ours_to_remove = not Path(folder).exists()  # a folder that was there before is not the export's to delete
    try:  # an optional file: a converter that fails costs the file, not the bench
        onnx_proba, what = fitted.export(folder)
        ours, theirs = onnx_proba(texts), fitted.proba(texts)
    except Exception as exc:  # noqa: BLE001 - any converter or runtime error, reported in one line
        import shutil

        if ours_to_remove:
            shutil.rmtree(folder, ignore_errors=True)  # the half-written folder this export made
        return f"not exported to ONNX: the exporter failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    if not len(texts):
        return f"exported to ONNX ({what}), not checked: no validation texts"
    agree = float((ours.argmax(1) == theirs.argmax(1)).mean())
    return (f"exported to ONNX ({what}): max |Δp| {float(np.abs(ours - theirs).max()):.1e}, labels "
            f"{100 * agree:.2f}% the same as the library's on {len(texts):,} validation texts")


def baseline_candidate(name: str, task, choice_split: str, ctx: FitContext, exports: Path | None = None):
    """A bench candidate: text in, log-probabilities out (logits up to a constant per row); its
    ONNX file, when its library can write one, goes to `exports`."""
    from ..modelio.sizes import mib
    from .candidates import Candidate

    fitted, seconds = train_baseline(name, task, choice_split, ctx)
    size = mib(ctx.folder)  # what the library saves, before the ONNX file is added beside it
    exported = export_baseline(fitted, exports, [as_text(t) for t in task.texts(choice_split)]) if exports else ""
    notes = [f"trained on the train split in {seconds:.1f} s ({fitted.how})"]
    if exported.startswith("exported"):
        notes.append(f"{exported} (in the report's baselines/{name}/)")
    elif exported:
        import shutil

        shutil.copytree(ctx.folder, exports, dirs_exist_ok=True)  # what ships instead: the library's own files
        notes.append(f"{exported}; its library's own files are in the report's baselines/{name}/")

    def run(enc: dict) -> np.ndarray:  # its probabilities read back as logits, the task kind's way
        return task.kind.logits_of(fitted.proba([as_text(t) for t in enc["texts"]]))

    return Candidate(f"{name} (baseline)", f"baseline-{name}", ctx.folder, size, _WordTokens(), 1 << 20,
                     run, provider=name, threads=ctx.threads, precision="fp32", origin=f"baseline:{name}",
                     end_to_end=True, notes=notes, train_seconds=round(seconds, 2), thresholds=fitted.thresholds)
