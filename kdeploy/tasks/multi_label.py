"""Any number of labels per text (moderation, routing, emotions): one sigmoid per label, each a
yes/no of its own, decided by a threshold per label tuned on validation and carried with the
model into every export, bundle and the server.

KD formulation: each label's output is an independent Bernoulli, so the soft target is the
teacher's per-label probability softened by temperature, σ(t/T), and the student is pulled to
it by the binary KL, averaged over labels and examples and scaled by T² (as Hinton's is):

    α·T²·mean KL(Bern(σ(t/T)) ‖ Bern(σ(s/T))) + (1-α)·BCE(y, σ(s))

A softmax over the labels (what TEI and Infinity apply to every multi-output head) would make
the labels compete for one unit of probability, which is wrong when several hold at once.

Metrics: macro-F1 (the main one: rare labels count as much as common ones), micro-F1, subset
accuracy (the whole label set right) and F1 per label. The trivial answer is every label,
always: the best constant answer for F1 (each label's F1 is then 2p/(1+p) at prevalence p,
where never predicting it gives 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .base import TaskKind, mixed
from .predictions import LabelsPrediction

DEFAULT_THRESHOLD = 0.5
GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # thresholds tried per label on validation
MIN_POSITIVES = 5  # a label with fewer validation examples keeps the default (a threshold fit to 2 texts is noise)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # σ without overflow for large |x|


def f1_per_label(pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1 per label, whether the label occurs in gold or predictions) for 0/1 matrices."""
    pred, gold = np.asarray(pred, dtype=bool), np.asarray(gold) > 0.5
    tp = (pred & gold).sum(0)
    fp = (pred & ~gold).sum(0)
    fn = (~pred & gold).sum(0)
    seen = (tp + fp + fn) > 0
    return np.where(seen, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0), seen


def multilabel_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    pred, gold = np.asarray(pred, dtype=bool), np.asarray(gold) > 0.5
    if len(gold) == 0:
        raise ValueError("no examples to score")
    f1, seen = f1_per_label(pred, gold)
    tp, fp, fn = (pred & gold).sum(), (pred & ~gold).sum(), (~pred & gold).sum()
    return {"macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
            "micro_f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0,
            "subset_accuracy": float((pred == gold).all(-1).mean())}


def _thresholds(thresholds, width: int) -> np.ndarray:
    if thresholds is None:
        return np.full(width, DEFAULT_THRESHOLD)
    return np.asarray(thresholds, dtype=np.float64)


@dataclass(frozen=True)
class MultiLabel(TaskKind):
    def outputs(self, logits):
        return sigmoid(logits)

    def logits_of(self, outputs):
        p = np.clip(np.asarray(outputs, dtype=np.float64), 1e-12, 1 - 1e-12)
        return np.log(p) - np.log1p(-p)

    def decisions(self, outputs, thresholds=None):
        outputs = np.asarray(outputs)
        return outputs >= _thresholds(thresholds, outputs.shape[-1])

    def score(self, logits, labels, reference=None, thresholds=None, label_names=None):
        from ..metrics import Scores

        logits, gold = np.asarray(logits), np.asarray(labels, dtype=np.float64)
        pred = self.decisions(sigmoid(logits), thresholds)
        f1, _ = f1_per_label(pred, gold)
        agreement = None
        if reference is not None:
            agreement = float((self.decisions(sigmoid(reference), thresholds) == pred).all(-1).mean())
        return Scores(multilabel_metrics(pred, gold), examples=int(len(gold)), agreement=agreement,
                      per_label=[round(float(v), 6) for v in f1])

    def trivial_score(self, train_labels, eval_labels, label_names):
        gold = np.asarray(eval_labels, dtype=np.float64)
        if gold.size == 0:
            raise KdeployError("no labels to find the trivial answer with")
        return multilabel_metrics(np.ones_like(gold, dtype=bool), gold)["macro_f1"], "every label, always"

    def prediction(self, row, label_names, thresholds=None):
        thresholds = thresholds or {}
        scores = {n: float(v) for n, v in zip(label_names, row)}
        limits = {n: float(thresholds.get(n, DEFAULT_THRESHOLD)) for n in label_names}
        chosen = sorted((n for n in label_names if scores[n] >= limits[n]), key=lambda n: -scores[n])
        return LabelsPrediction(chosen, scores, limits)

    def hard_loss(self, logits, labels):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())

    def kd_loss(self, student, teacher, labels, alpha, temperature):
        """(1-α)·BCE(y, s) + α·T²·mean KL(Bern(σ(t/T)) ‖ Bern(σ(s/T))) (see the module)."""
        import torch.nn.functional as F

        from .base import check_teacher

        def soft():
            check_teacher(student, teacher)
            t = temperature
            target = (teacher.detach().float() / t).sigmoid()
            cross = F.binary_cross_entropy_with_logits(student.float() / t, target, reduction="none")
            entropy = F.binary_cross_entropy(target, target, reduction="none")  # so that a perfect match is 0
            return (t * t) * (cross - entropy).mean()

        return mixed(self, student, labels, alpha, soft)

    def label_feature(self, label_names):
        import datasets

        return datasets.Sequence(datasets.Value("float32"), length=len(label_names))

    def no_label(self, label_names):
        return [float("nan")] * len(label_names)

    def encode_labels(self, parsed, label_names_given, class_names, cfg):
        from .labels import label_sets, looks_like_scores

        space_split = "train" if "train" in parsed else next(iter(parsed))
        where = parsed[space_split][3]
        sets = {split: label_sets(labels, cfg.label_separator, label_names_given or class_names, where)
                for split, (_, _, labels, where) in parsed.items()}
        if looks_like_scores([v for v in parsed[space_split][2] if not isinstance(v, (list, tuple))]):
            raise KdeployError(f"{where}: the labels look like scores ({', '.join(map(str, parsed[space_split][2][:3]))}"
                               ", …); for a score task use --task regression")
        train_sets = sets[space_split]
        if space_split == "train" and len(train_sets) >= 20 and all(len(s) == 1 for s in train_sets):
            raise KdeployError(f"{where}: every row has exactly one label; that is a one-class-per-text task "
                               "(use --task classification), or join a row's labels with "
                               f"{cfg.label_separator!r}")
        seen = {n for s in train_sets for n in s}
        if label_names_given:
            names = list(label_names_given)
            unknown = sorted(seen - set(names))
            if unknown:
                raise KdeployError(f"{where}: labels {unknown} are not among --label-names {names}")
            never = [n for n in names if n not in seen]
            if never and space_split == "train":
                from ..console import note

                note(f"{where}: label {', '.join(map(repr, never))} never occurs in train; the model cannot learn it "
                     f"and its threshold stays {DEFAULT_THRESHOLD} (recorded)")
        else:
            names = sorted(seen)
        if len(names) < 2:
            raise KdeployError(f"{where}: {len(names)} label name(s) in train; a multi-label task needs at least two")
        index = {n: i for i, n in enumerate(names)}
        encoded = {}
        for split, rows in sets.items():
            w = parsed[split][3]
            matrix = []
            for i, s in enumerate(rows):
                row = [0.0] * len(names)
                for n in s:
                    if n not in index:
                        raise KdeployError(f"{w}: label {n!r} (row {i + 1}) never occurs in train "
                                           f"(train labels: {', '.join(names)})")
                    row[index[n]] = 1.0
                matrix.append(row)
            empty = sum(not s for s in rows)
            if empty:
                from ..console import note

                note(f"{w}: {empty} row(s) have no label (read as: none of the labels applies)")
            encoded[split] = matrix
        return names, encoded, False

    def carve(self, train, cfg, where):
        if len(train) < 10:
            raise KdeployError(f"{where}: too little training data to carve a validation split; give --validation")
        return super().carve(train, cfg, where)

    def tune(self, logits, labels, label_names):
        """Per label, the threshold on the grid with the best F1 on validation (ties: nearest
        0.5); a label with fewer than MIN_POSITIVES validation examples keeps 0.5. Macro-F1
        is the mean of per-label F1, so tuning each label alone maximises it."""
        probs, gold = sigmoid(logits), np.asarray(labels) > 0.5
        out = {}
        for j, name in enumerate(label_names):
            if gold[:, j].sum() < MIN_POSITIVES:
                out[name] = DEFAULT_THRESHOLD
                continue
            best = max(GRID, key=lambda t: (f1_per_label(probs[:, j:j + 1] >= t, gold[:, j:j + 1])[0][0],
                                            -abs(t - DEFAULT_THRESHOLD)))
            out[name] = float(best)
        return out

    def describe_outputs(self, label_names):
        return f"{len(label_names)} labels (any number per text)"

    def paired_test(self, reference, candidate, labels, thresholds=None, label_names=None):
        """A paired bootstrap of the macro-F1 drop (macro-F1 is not a mean over examples, so
        McNemar's count of right and wrong does not measure it)."""
        from ..metrics import paired_bootstrap

        gold = np.asarray(labels) > 0.5
        macro = lambda p, g: multilabel_metrics(p, g)["macro_f1"]  # noqa: E731
        return paired_bootstrap(macro, self.decisions(sigmoid(reference), thresholds),
                                self.decisions(sigmoid(candidate), thresholds), gold)


MULTI_LABEL = MultiLabel(
    name="multi-label",
    doc="any number of labels per text (moderation, routing, emotions): sigmoid per label, thresholds tuned on "
        "validation, macro/micro-F1",
    labels="label names joined by a separator (--label-separator, default ','), a JSON list, or several 0/1 columns "
           "(--label-column a,b,c)",
    problem_type="multi_label_classification",
    activation="sigmoid",
    metrics=("macro_f1", "micro_f1", "subset_accuracy"),
    trivial="every label, always",
    thresholds=True,
    routes=("/predict",),  # no single relevance to rank passages by
    empty_labels=True,
    serve_type="multi-label classifier",
    title="Multi-label tagger",
    baselines=frozenset({"tfidf-lr", "fasttext"}),  # one-vs-rest LR; fastText -loss ova
)
