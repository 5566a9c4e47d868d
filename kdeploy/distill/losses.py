"""Distillation losses, registered by name so a new method is one decorated function.

A loss is called as `loss(student_logits, teacher_logits, labels, alpha, temperature, task=name)`;
the built-ins take their formulation per task kind from its registry entry (`kdeploy.tasks`):
Hinton's KD over a softmax for classes, MSE for a score, per-label binary KD for multi-label.
"""
from __future__ import annotations

from typing import Callable

from ..tasks import task_kind
from ..tasks.base import IGNORE_INDEX  # noqa: F401  (the transfer rows' class label, re-exported)
from .methods import LOSSES

register_loss = LOSSES.register


def get_loss(name: str) -> Callable:
    return LOSSES.lookup(name)


def kd_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float, task: str = "classification"):
    """Hinton et al.: (1-α)·hard(y, s) + α·T²·soft(t/T ‖ s/T), each task kind's own (classes:
    CE and KL of softmaxes; a score: MSE both, no temperature; multi-label: BCE and the binary
    KL of each label's sigmoid). α weighs the KD term (torchdistill weighs CE by α; we do not).
    The hard part reads the labelled rows only (transfer text: -100, or NaN for float labels)."""
    return task_kind(task).kd_loss(student_logits, teacher_logits, labels, alpha, temperature)


def logit_mse_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float,
                   task: str = "classification"):
    """Ba & Caruana 2014; Tang et al. 2019 (BERT into a BiLSTM): (1-α)·hard(y, s) + α·MSE(s, t) on
    the raw logits, which keeps what a softmax discards. No temperature (`temperature` is ignored)."""
    return task_kind(task).logit_mse_loss(student_logits, teacher_logits, labels, alpha, temperature)
