"""Distillation losses, registered by name so a new method is one decorated function."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .methods import LOSSES

IGNORE_INDEX = -100  # the label of a transfer example (unlabelled or augmented text)
register_loss = LOSSES.register


def get_loss(name: str) -> Callable:
    return LOSSES.lookup(name)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Hinton et al.: (1-α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)).

    α weighs the KD term (torchdistill weighs CE by α; we do not). T² keeps the soft
    term's gradient on the scale of the hard one as T grows. KL is averaged per example;
    CE over the labelled examples only (label -100 marks transfer text).
    """
    if student_logits.shape[-1] == 1:
        return score_kd_loss(student_logits, teacher_logits, labels, alpha)
    loss = _hard_part(student_logits, labels, alpha)
    if alpha > 0.0:
        _check_teacher(student_logits, teacher_logits)
        t = temperature
        log_p_student = F.log_softmax(student_logits / t, dim=-1)
        log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
        kl = F.kl_div(log_p_student.float(), log_p_teacher, reduction="batchmean", log_target=True)
        loss = loss + alpha * (t * t) * kl
    return loss


def logit_mse_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Ba & Caruana 2014; Tang et al. 2019 (BERT into a BiLSTM): (1-α)·CE(y, s) + α·MSE(s, t)
    on the raw logits, which keeps what a softmax discards (how far apart the classes are).
    No temperature (`temperature` is ignored)."""
    if student_logits.shape[-1] == 1:
        return score_kd_loss(student_logits, teacher_logits, labels, alpha)
    loss = _hard_part(student_logits, labels, alpha)
    if alpha > 0.0:
        _check_teacher(student_logits, teacher_logits)
        loss = loss + alpha * F.mse_loss(student_logits.float(), teacher_logits.detach().float())
    return loss


def _hard_part(student_logits: torch.Tensor, labels: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """(1-α)·CE over the labelled examples (label -100 marks transfer text)."""
    loss = student_logits.new_zeros(())
    if alpha < 1.0:
        if labels is None:
            raise ValueError("alpha < 1 needs labels; use alpha=1 for unlabelled transfer data")
        labelled = labels != IGNORE_INDEX  # unlabelled and augmented text: the teacher's output is its only label
        if labelled.any():
            loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits[labelled], labels[labelled])
    return loss


def _check_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None) -> None:
    if teacher_logits is None:
        raise ValueError("alpha > 0 needs teacher logits")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                         f"{tuple(student_logits.shape)} differ: the two models must share the label set")


def score_kd_loss(student: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor | None,
                  alpha: float) -> torch.Tensor:
    """A score (regression) task: (1-α)·MSE(y, s) + α·MSE(t, s). No temperature: a score has
    no distribution to soften. Transfer text carries a NaN label (the teacher's score only)."""
    loss = student.new_zeros(())
    s = student[:, 0].float()
    if alpha < 1.0:
        if labels is None:
            raise ValueError("alpha < 1 needs labels; use alpha=1 for unlabelled transfer data")
        labelled = ~torch.isnan(labels.float())
        if labelled.any():
            loss = loss + (1.0 - alpha) * F.mse_loss(s[labelled], labels.float()[labelled])
    if alpha > 0.0:
        if teacher is None:
            raise ValueError("alpha > 0 needs teacher scores")
        if teacher.shape != student.shape:
            raise ValueError(f"teacher outputs {tuple(teacher.shape)} and student outputs {tuple(student.shape)} "
                             "differ: a score student needs a score teacher")
        loss = loss + alpha * F.mse_loss(s, teacher[:, 0].detach().float())
    return loss
