"""What every task kind is: one entry carrying all that kdeploy knows about it — its labels,
model class and export task, losses, named metrics, how outputs become answers, how batch
invariance compares them, its typed prediction, serve routes, and which students, bundle
formats and baselines support it. Code outside `kdeploy/tasks/` asks the entry; it never
tests a task's name or guesses one from a tensor's shape.

Torch-free at import (the device predictor reads the same entries): the losses import torch
when they are called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import KdeployError

STUDENTS = frozenset({"layers", "bilstm", "cnn", "static", "pretrained"})  # pretrained: another tokenizer's model
FORMATS = frozenset({"python", "onnx-e2e", "web"})
BASELINES = frozenset({"tfidf-lr", "fasttext", "model2vec"})


@dataclass(frozen=True)
class TaskKind:
    """One task kind. Subclasses implement the behaviour; the fields are its metadata."""

    name: str  # what --task takes and records hold
    doc: str  # one line: what the task is and what it needs
    labels: str  # the label schema, as a user writes it in a file
    problem_type: str  # transformers' config.problem_type (which loss its model computes)
    activation: str  # softmax | sigmoid | identity: logits -> what a user reads (also the e2e graph's head)
    metrics: tuple[str, ...]  # named metrics; the first is the main one (gates, retention, checkpoints)
    trivial: str  # the trivial answer the retention verdict measures from
    serve_type: str = "classifier"  # what the server's /info calls it (TEI's model_type)
    title: str = "Text classifier"  # what a model card calls it
    model_class: str = "AutoModelForSequenceClassification"
    export_task: str = "text-classification"  # optimum's and transformers.js's pipeline name
    routes: tuple[str, ...] = ("/predict", "/rerank")  # /rerank: for sentence-pair bundles only
    students: frozenset = STUDENTS
    formats: frozenset = FORMATS
    baselines: frozenset = BASELINES
    thresholds: bool = False  # decisions per label, tuned on validation and carried with the model
    named_labels: bool = True  # labels have names (--label-names); False: one score
    empty_labels: bool = False  # a row may have no label (multi-label: none applies)
    sentence_vectors: bool = False  # the model's output is a text's vector (compared by cosine), not scores per label
    e2e_output: str = "probabilities"  # the onnx-e2e graph's (and so the e2e predictor's) output
    word_labels: bool = False  # one label per word, on its first sub-token (entity tagging), not one per text

    # ---- registry bookkeeping -------------------------------------------------------------
    PARTS: ClassVar[tuple[str, ...]] = (
        "outputs", "logits_of", "decisions", "score", "trivial_score", "prediction", "hard_loss", "kd_loss", "logit_mse_loss",
        "label_feature", "no_label", "encode_labels", "num_labels")

    def refuse(self, what: str, name: str, supported: frozenset) -> None:
        """A student, format or baseline this task has none of: one line, before any work."""
        if name not in supported:
            raise KdeployError(f"{what} {name!r} does not support a {self.name} task (it supports: "
                               f"{', '.join(sorted(supported)) or 'none'})")

    # ---- what a subclass implements ---------------------------------------------------------
    def num_labels(self, label_names: list[str]) -> int:
        """The model's outputs for these label names."""
        return len(label_names)

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """Logits -> what a user reads (probabilities, sigmoid scores or the score itself)."""
        raise NotImplementedError

    def logits_of(self, outputs: np.ndarray) -> np.ndarray:
        """What a user reads back as logits (a bundle's answers, scored like a model's)."""
        raise NotImplementedError

    def decisions(self, outputs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray | None:
        """Outputs -> the answer per example a flip is counted on (None: a score has no answer
        to flip)."""
        raise NotImplementedError

    def score(self, logits: np.ndarray, labels: Any, reference: np.ndarray | None = None,
              thresholds: np.ndarray | None = None, label_names: list[str] | None = None):
        """The task's named metrics (`kdeploy.metrics.Scores`) on one labelled split (`label_names`:
        for a task whose metric reads them, entity tagging)."""
        raise NotImplementedError

    def trivial_score(self, train_labels: Any, eval_labels: Any, label_names: list[str]) -> tuple[float, str]:
        """(the trivial answer's main metric on the evaluated split, what it answers)."""
        raise NotImplementedError

    def prediction(self, row: np.ndarray, label_names: list[str], thresholds: dict[str, float] | None = None):
        """One example's outputs as the task's typed prediction."""
        raise NotImplementedError

    def hard_loss(self, logits, labels):
        """The loss against gold labels (torch), on labelled rows only (`mixed` picks them)."""
        raise NotImplementedError

    def kd_loss(self, student, teacher, labels, alpha: float, temperature: float):
        """(1-α)·hard + α·soft: the task's distillation loss (torch)."""
        raise NotImplementedError

    def logit_mse_loss(self, student, teacher, labels, alpha: float, temperature: float):
        """(1-α)·hard + α·MSE on the raw logits (torch; Ba & Caruana 2014, Tang et al. 2019): keeps
        what a softmax or sigmoid discards. No temperature (`temperature` is ignored)."""
        return mixed(self, student, labels, alpha, lambda: _mse(student, teacher))

    def label_feature(self, label_names: list[str]):
        """The `datasets` feature of the label column."""
        raise NotImplementedError

    def no_label(self, label_names: list[str]):
        """The label of a transfer example (unlabelled or augmented text): the teacher's output
        is its only label."""
        raise NotImplementedError

    def encode_labels(self, parsed: dict, label_names_given: list[str] | None, class_names: list[str] | None,
                      cfg) -> tuple[list[str], dict[str, list], bool]:
        """(label names in id order, encoded labels per split, whether the names are bare ids)
        from each split's raw labels, `parsed[split] = (texts, seconds, labels, where)`."""
        raise NotImplementedError

    def carve(self, train, cfg, where: str):
        """A seeded validation split from train; stratified where the task allows it."""
        carved = train.train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed)
        return carved["train"], carved["test"]

    def tune(self, logits: np.ndarray, labels: Any, label_names: list[str]) -> dict | None:
        """Decision thresholds tuned on validation (None where the task has none)."""
        return None

    def describe_outputs(self, label_names: list[str]) -> str:
        return f"{len(label_names)} labels"

    def paired_test(self, reference: np.ndarray, candidate: np.ndarray, labels, thresholds=None,
                    label_names: list[str] | None = None) -> dict | None:
        """How sure a drop between two models' logits on the same labelled examples is (None:
        the task has no paired test)."""
        return None


def labelled_rows(labels):
    """Rows with a gold label (torch): NaN marks transfer text for float labels, -100 for ids."""
    import torch

    if labels.dtype.is_floating_point:
        return ~torch.isnan(labels).reshape(len(labels), -1).any(-1)
    return labels != IGNORE_INDEX


IGNORE_INDEX = -100  # the class label of a transfer example (unlabelled or augmented text)


def mixed(task: TaskKind, student, labels, alpha: float, soft) -> Any:
    """(1-α)·hard + α·soft(), each part computed only where its weight is not zero; the hard
    part over the labelled rows only (transfer text has the teacher as its only label)."""
    loss = student.new_zeros(())
    if alpha < 1.0:
        if labels is None:
            raise ValueError("alpha < 1 needs labels; use alpha=1 for unlabelled transfer data")
        rows = labelled_rows(labels)
        if rows.any():
            loss = loss + (1.0 - alpha) * task.hard_loss(student[rows], labels[rows])
    if alpha > 0.0:
        loss = loss + alpha * soft()
    return loss


def _mse(student, teacher):
    import torch.nn.functional as F

    check_teacher(student, teacher)
    return F.mse_loss(student.float(), teacher.detach().float())


def check_teacher(student, teacher) -> None:
    if teacher is None:
        raise ValueError("alpha > 0 needs teacher logits")
    if teacher.shape != student.shape:
        raise ValueError(f"teacher logits {tuple(teacher.shape)} and student logits "
                         f"{tuple(student.shape)} differ: the two models must share the label set")


def thresholds_of(thresholds: dict[str, float] | None, label_names: list[str]) -> np.ndarray | None:
    """A recorded {label: threshold} as an array in label order (None: the task has none)."""
    if not thresholds:
        return None
    return np.asarray([float(thresholds.get(n, 0.5)) for n in label_names], dtype=np.float64)
