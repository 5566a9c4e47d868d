"""Metric functions computed here, offline (`evaluate.load` needs the network), and `Scores`,
a split's named metrics. Which metrics a task reports, and which is its main one, is the task
entry's (`kdeploy.tasks`): the export gate, the benchmark and training all score through it,
so their numbers agree, and every gate, drop and retention reads `Scores.main`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def mcnemar(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> dict:
    """Paired comparison of two classifiers on the same examples: how many each gets right that
    the other does not, the exact two-sided McNemar p-value, and a 95% interval for the
    accuracy drop in points (Wald interval of the paired difference)."""
    ref, cand = np.asarray(reference_correct, bool), np.asarray(candidate_correct, bool)
    n = len(ref)
    b = int((ref & ~cand).sum())  # only the reference right
    c = int((~ref & cand).sum())  # only the candidate right
    k, m = min(b, c), b + c
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m) if m else 1.0
    diff = (b - c) / n if n else 0.0
    se = math.sqrt(max(m - (b - c) ** 2 / n, 0.0)) / n if n else 0.0
    return {"test": "McNemar", "reference_only_correct": b, "candidate_only_correct": c, "p_value": round(p, 4),
            "drop_ci95_points": [round(100 * (diff - 1.96 * se), 3), round(100 * (diff + 1.96 * se), 3)]}


def paired_bootstrap(metric, reference_pred: np.ndarray, candidate_pred: np.ndarray, gold: np.ndarray,
                     rounds: int = 1000, seed: int = 0) -> dict:
    """How sure a drop in a metric that is not a mean over examples (macro-F1) is: the examples
    resampled with replacement `rounds` times (seeded), the drop in points each time; its 95%
    interval and the share of resamples where the candidate is not worse (a one-sided p)."""
    rng = np.random.default_rng(seed)
    n = len(gold)
    drops = np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, n, n)
        drops[r] = metric(reference_pred[idx], gold[idx]) - metric(candidate_pred[idx], gold[idx])
    ref_wrong = (reference_pred != gold).reshape(n, -1).any(-1)
    cand_wrong = (candidate_pred != gold).reshape(n, -1).any(-1)
    return {"test": "paired bootstrap", "rounds": rounds,
            "reference_only_correct": int((~ref_wrong & cand_wrong).sum()),
            "candidate_only_correct": int((ref_wrong & ~cand_wrong).sum()),
            "p_value": round(float((drops <= 0).mean()), 4),
            "drop_ci95_points": [round(100 * float(np.percentile(drops, 2.5)), 3),
                                 round(100 * float(np.percentile(drops, 97.5)), 3)]}


# How each named metric is titled and shown: a share as a percentage, a correlation or an error as it is.
TITLES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "subset_accuracy": "subset accuracy",
          "pearson": "Pearson r", "spearman": "Spearman ρ", "mse": "MSE", "entity_f1": "entity F1",
          "entity_precision": "entity precision", "entity_recall": "entity recall"}
SHORT = {"accuracy": "acc", "macro_f1": "macro F1", "micro_f1": "micro F1", "subset_accuracy": "subset acc",
         "pearson": "Pearson r", "spearman": "Spearman ρ", "mse": "MSE", "entity_f1": "entity F1",
         "entity_precision": "entity P", "entity_recall": "entity R"}
PERCENT = {"accuracy", "macro_f1", "micro_f1", "subset_accuracy", "entity_f1", "entity_precision", "entity_recall"}


def shown(metric: str, value: float | None) -> str:
    """A metric's value as tables print it: 81.57 for a share, 0.873 for a correlation."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{100 * value:.2f}" if metric in PERCENT else f"{value:.3f}"


@dataclass
class Scores:
    """A model's scores on one labelled split: the task's named metrics (the task entry's
    `metrics`, its main one first, which every gate, drop and retention reads as `main`)."""

    metrics: dict[str, float] = field(default_factory=dict)
    examples: int | None = None
    agreement: float | None = None  # with a reference model's answers (their correlation, for scores)
    loss: float | None = None
    seconds: float | None = None
    per_label: list[float] | None = None  # F1 per label, in label order (multi-label)

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """A record written before metrics were named ({accuracy, macro_f1, metric}) in today's shape."""
        if "metrics" in data or "accuracy" not in data:
            return data
        data = dict(data)
        first, second = data.pop("accuracy"), data.pop("macro_f1", None)
        if data.pop("metric", "accuracy") == "pearson":
            data["metrics"] = {"pearson": first, "spearman": second, **({"mse": data.pop("mse")} if "mse" in data else {})}
        else:
            data["metrics"] = {"accuracy": first, "macro_f1": second}
        data.pop("mse", None)
        return data

    @property
    def metric(self) -> str:
        """The main metric's name."""
        return next(iter(self.metrics))

    @property
    def main(self) -> float:
        return self.metrics[self.metric]

    @property
    def second(self) -> tuple[str, float] | None:
        items = list(self.metrics.items())
        return items[1] if len(items) > 1 else None

    @property
    def percent(self) -> bool:
        return self.metric in PERCENT

    def points(self, other: "Scores") -> float:
        """self − other on the main metric, in points (×100 for a share, ×100 for r too: 0.01 r = 1 point)."""
        return round(100 * (self.main - other.main), 3)

    def cells(self, n: int = 2) -> list[str]:
        names = list(self.metrics)[:n]
        return [shown(k, self.metrics[k]) for k in names] + ["-"] * (n - len(names))

    def summary(self) -> str:
        """"accuracy 81.57%, macro-F1 81.50%" or "Pearson r 0.873, Spearman ρ 0.861"."""
        out = []
        for k, v in list(self.metrics.items())[:3]:
            out.append(f"{TITLES.get(k, k)} {shown(k, v)}{'%' if k in PERCENT else ''}")
        return ", ".join(out)
