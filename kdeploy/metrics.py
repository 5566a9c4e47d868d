"""Classification metrics computed here, offline (`evaluate.load` needs the network).

The export gate and the benchmark use these same functions, so their numbers agree.
"""
from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    pred, labels = np.asarray(pred), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no examples to score")
    return float((pred == labels).mean())


def macro_f1(pred: np.ndarray, labels: np.ndarray, num_labels: int | None = None) -> float:
    """Mean F1 over classes present in labels or predictions (sklearn's 'macro' with zero_division=0)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    classes = np.union1d(pred, labels) if num_labels is None else np.arange(num_labels)
    scores = []
    for c in classes:
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    return float((np.asarray(pred_a) == np.asarray(pred_b)).mean())


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = np.asarray(logits).argmax(-1)
    return {"accuracy": accuracy(pred, labels), "macro_f1": macro_f1(pred, labels)}
