"""One score per text or pair (relatedness, relevance): one output read as it is; MSE for both
the gold score and the teacher's (a score has no distribution to soften, so no temperature);
Pearson r and Spearman ρ; the trivial answer is a constant (r 0)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .base import TaskKind, mixed
from .predictions import ScorePrediction


@dataclass(frozen=True)
class Regression(TaskKind):
    def num_labels(self, label_names):
        return 1

    def outputs(self, logits):
        return np.asarray(logits, dtype=np.float64)

    def logits_of(self, outputs):
        return np.asarray(outputs, dtype=np.float64)

    def decisions(self, outputs, thresholds=None):
        return None

    def score(self, logits, labels, reference=None, thresholds=None, label_names=None):
        from ..metrics import Scores, pearson, spearman

        pred, gold = np.asarray(logits)[:, 0], np.asarray(labels, dtype=np.float64)
        return Scores({"pearson": pearson(pred, gold), "spearman": spearman(pred, gold),
                       "mse": float(np.mean((pred - gold) ** 2))}, examples=int(len(gold)),
                      agreement=pearson(pred, np.asarray(reference)[:, 0]) if reference is not None else None)

    def trivial_score(self, train_labels, eval_labels, label_names):
        return 0.0, "a constant score"

    def prediction(self, row, label_names, thresholds=None):
        return ScorePrediction(float(row[0]))

    def hard_loss(self, logits, labels):
        import torch.nn.functional as F

        return F.mse_loss(logits[:, 0].float(), labels.float())

    def kd_loss(self, student, teacher, labels, alpha, temperature):
        """(1-α)·MSE(y, s) + α·MSE(t, s); `temperature` is ignored."""
        import torch.nn.functional as F

        def soft():
            if teacher is None:
                raise ValueError("alpha > 0 needs teacher scores")
            if teacher.shape != student.shape:
                raise ValueError(f"teacher outputs {tuple(teacher.shape)} and student outputs "
                                 f"{tuple(student.shape)} differ: a score student needs a score teacher")
            return F.mse_loss(student[:, 0].float(), teacher[:, 0].detach().float())

        return mixed(self, student, labels, alpha, soft)

    logit_mse_loss = kd_loss  # the score is the logit: both formulations are the same MSE

    def label_feature(self, label_names):
        import datasets

        return datasets.Value("float32")

    def no_label(self, label_names):
        return float("nan")

    def encode_labels(self, parsed, label_names_given, class_names, cfg):
        if label_names_given:
            raise KdeployError("--label-names names classes; a regression task has one score (drop --label-names)")
        encoded = {split: _scores(labels, where) for split, (_, _, labels, where) in parsed.items()}
        return [cfg.label_column or "score"], encoded, False

    def carve(self, train, cfg, where):
        if len(train) < 10:
            raise KdeployError(f"{where}: too little training data to carve a validation split; give --validation")
        return super().carve(train, cfg, where)

    def describe_outputs(self, label_names):
        return "one score per example"


def _scores(labels: list, where: str) -> list[float]:
    out = []
    for i, v in enumerate(labels):
        try:
            value = float(v)
        except (TypeError, ValueError):
            raise KdeployError(f"{where}: row {i + 1} has label {v!r}, not a number; a regression task needs "
                               "numeric scores (or drop --task regression for classes)") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise KdeployError(f"{where}: row {i + 1} has a non-finite score {v!r}")
        out.append(value)
    return out


REGRESSION = Regression(
    name="regression",
    doc="one score per text or pair (relatedness, relevance): float labels, MSE, Pearson r and Spearman ρ",
    labels="one number per row",
    problem_type="regression",
    activation="identity",
    metrics=("pearson", "spearman", "mse"),
    trivial="a constant score",
    baselines=frozenset(),  # the cheap baselines here classify
    formats=frozenset({"python"}),  # the e2e head and transformers.js's pipeline end in a softmax or sigmoid
    named_labels=False,
    serve_type="regression",
    title="Text scorer",
)
