"""Classification metrics computed here, offline (`evaluate.load` needs the network).

The export gate, the benchmark and training all use these functions, so their numbers agree.
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


@dataclass
class Scores:
    """A model's scores on one labelled split."""

    accuracy: float
    macro_f1: float
    examples: int | None = None
    agreement: float | None = None  # with a reference model's predictions
    loss: float | None = None
    seconds: float | None = None


def score(logits: np.ndarray, labels: np.ndarray, reference_logits: np.ndarray | None = None) -> Scores:
    pred = np.asarray(logits).argmax(-1)
    return Scores(accuracy=accuracy(pred, labels), macro_f1=macro_f1(pred, labels), examples=int(len(labels)),
                  agreement=agreement(pred, reference_logits.argmax(-1)) if reference_logits is not None else None)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The Trainer's compute_metrics shape."""
    s = score(logits, labels)
    return {"accuracy": s.accuracy, "macro_f1": s.macro_f1}
