"""The task kinds kdeploy compresses, one registry entry each (`TASKS`): adding a task is one
module here with its entry, plus its test. Everything else asks the entry (`task_kind(name)`)
for the task's losses, metrics, answers, predictions and what supports it. Torch-free.
"""
from __future__ import annotations

from ..errors import KdeployError
from .base import TaskKind
from .classification import CLASSIFICATION
from .embedding import EMBEDDING
from .multi_label import MULTI_LABEL
from .predictions import (ClassPrediction, EmbeddingPrediction, EntitiesPrediction, EntitySpan, LabelsPrediction,
                          Prediction, ScorePrediction)
from .regression import REGRESSION
from .tokens import TOKEN_CLASSIFICATION

TASKS: dict[str, TaskKind] = {t.name: t for t in (CLASSIFICATION, REGRESSION, MULTI_LABEL, EMBEDDING,
                                                   TOKEN_CLASSIFICATION)}
DEFAULT_TASK = CLASSIFICATION.name

__all__ = ["TASKS", "DEFAULT_TASK", "TaskKind", "task_kind", "ClassPrediction", "ScorePrediction", "LabelsPrediction",
           "EmbeddingPrediction", "EntitiesPrediction", "EntitySpan", "Prediction"]


def task_kind(name: str | None) -> TaskKind:
    """The entry for a task name (None: the default, classification); an unknown name is one
    line listing the kinds there are."""
    if name is None:
        return TASKS[DEFAULT_TASK]
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise KdeployError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def help_text() -> str:
    """--task's help: every kind with its one line."""
    return "; ".join(f"{t.name}: {t.doc}" for t in TASKS.values())


def kind_of_config(config) -> TaskKind:
    """The task a transformers model config was trained for, by its `problem_type` (a dict or a
    config object); with none recorded, transformers' own rule: one output is a score, more are
    classes."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    problem = get("problem_type")
    for kind in TASKS.values():
        if problem and kind.problem_type == problem:
            return kind
    heads = [a for a in (get("architectures") or []) if isinstance(a, str)]
    for kind in TASKS.values():  # a model from elsewhere: its head's class, where only one kind has it
        suffix = kind.model_class.removeprefix("AutoModel")
        if sum(t.model_class == kind.model_class for t in TASKS.values()) == 1 and \
                any(a.endswith(suffix) for a in heads):
            return kind
    labels = get("num_labels") or len(get("id2label") or {}) or 2
    return TASKS["regression"] if labels == 1 else TASKS[DEFAULT_TASK]


def kind_of_scores(scores) -> TaskKind:
    """The task whose main metric a `Scores` leads with (a record that names no task)."""
    metric = scores.metric if scores is not None and scores.metrics else None
    return next((t for t in TASKS.values() if t.metrics[0] == metric), TASKS[DEFAULT_TASK])
