"""Task metrics computed here, offline (`evaluate.load` needs the network): accuracy and
macro-F1 for classes; Pearson and Spearman correlation for a score (regression) task.

The export gate, the benchmark and training all use these functions, so their numbers agree.
A score task reports Pearson r where a classifier reports accuracy (and Spearman ρ for
macro-F1), with `metric` saying which: every gate, drop and retention then reads one field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    pred, labels = np.asarray(pred), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no examples to score")
    return float((pred == labels).mean())


def macro_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean F1 over classes present in labels or predictions (sklearn's 'macro' with zero_division=0)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    scores = []
    for c in np.union1d(pred, labels):
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    return float((np.asarray(pred_a) == np.asarray(pred_b)).mean())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return pearson(_ranks(a), _ranks(b))


@dataclass
class Scores:
    """A model's scores on one labelled split. `accuracy` holds the task's main metric and
    `macro_f1` its second (Pearson r and Spearman ρ for a score task), named by `metric`."""

    accuracy: float
    macro_f1: float
    examples: int | None = None
    agreement: float | None = None  # with a reference model's predictions (their correlation, for scores)
    loss: float | None = None
    seconds: float | None = None
    metric: str = "accuracy"  # or "pearson"
    mse: float | None = None

    @property
    def names(self) -> tuple[str, str]:
        return ("Pearson r", "Spearman ρ") if self.metric == "pearson" else ("accuracy", "macro-F1")


def score(logits: np.ndarray, labels: np.ndarray, reference_logits: np.ndarray | None = None) -> Scores:
    logits = np.asarray(logits)
    if logits.ndim == 2 and logits.shape[-1] == 1:  # one output: a score
        pred, gold = logits[:, 0], np.asarray(labels, dtype=np.float64)
        return Scores(accuracy=pearson(pred, gold), macro_f1=spearman(pred, gold), examples=int(len(gold)),
                      agreement=pearson(pred, np.asarray(reference_logits)[:, 0]) if reference_logits is not None
                      else None, metric="pearson", mse=float(np.mean((pred - gold) ** 2)))
    pred = logits.argmax(-1)
    return Scores(accuracy=accuracy(pred, labels), macro_f1=macro_f1(pred, labels), examples=int(len(labels)),
                  agreement=agreement(pred, reference_logits.argmax(-1)) if reference_logits is not None else None)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The Trainer's compute_metrics shape ("accuracy" is the main metric either way, for
    checkpoint selection; a score task also reports "pearson" and "spearman")."""
    s = score(logits, labels)
    out = {"accuracy": s.accuracy, "macro_f1": s.macro_f1}
    if s.metric == "pearson":
        out.update(pearson=s.accuracy, spearman=s.macro_f1, mse=s.mse)
    return out
