"""Intermediate-layer losses (TinyBERT, MiniLM, TextBrewer): the student matches what
happens inside the teacher, not only its outputs. Registered by name, each declares
which teacher features it needs so only those are computed and cached.

All losses average over real tokens only: padding must not teach anything, and a
batch padded to a longer sentence must give the same loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .methods import LAYER_LOSSES


@dataclass(frozen=True)
class LayerLoss:
    name: str
    fn: Callable
    needs: str  # "hidden", "attention" or "embedding": which teacher feature it reads
    doc: str


def register_layer_loss(name: str, needs: str):
    """For plugins: `@register_layer_loss("mine", needs="hidden")` on `fn(batch: LayerBatch) -> loss`."""
    if needs not in ("hidden", "attention", "embedding"):
        raise ValueError(f"unknown feature {needs!r}")

    def deco(fn):
        LAYER_LOSSES.register(name, LayerLoss(name, fn, needs, (fn.__doc__ or "").strip().splitlines()[0]))
        return fn

    return deco


def get_layer_loss(name: str) -> LayerLoss:
    return LAYER_LOSSES.lookup(name)


@dataclass
class LayerBatch:
    """One batch's features, already paired by the layer map (pair k: student layer → teacher layer)."""

    mask: torch.Tensor  # [B, P], 1 for real tokens
    student_hidden: list[torch.Tensor] = field(default_factory=list)  # k × [B, P, Hs], projected to Ht
    teacher_hidden: list[torch.Tensor] = field(default_factory=list)  # k × [B, P, Ht]
    student_attention: list[torch.Tensor] = field(default_factory=list)  # k × [B, heads, P, P] (probabilities)
    teacher_attention: list[torch.Tensor] = field(default_factory=list)
    student_embedding: torch.Tensor | None = None  # [B, P, Ht], projected
    teacher_embedding: torch.Tensor | None = None


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per real token and unit: Σ_mask (s - t)² / (tokens · width)."""
    m = mask.to(student.dtype).unsqueeze(-1)
    sq = (student.float() - teacher.float()) ** 2 * m
    return sq.sum() / (m.sum() * student.shape[-1]).clamp_min(1.0)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(teacher ‖ student) of each head's attention distribution over keys, averaged over
    heads and real query tokens. Padded keys carry ~0 probability in both and add nothing."""
    t = teacher.float()
    s = student.float()
    kl_rows = (t * (torch.log(t.clamp_min(eps)) - torch.log(s.clamp_min(eps)))).sum(-1)  # [B, heads, P]
    rows = mask.to(kl_rows.dtype).unsqueeze(1).expand_as(kl_rows)
    return (kl_rows * rows).sum() / rows.sum().clamp_min(1.0)


def hidden_mse(batch: LayerBatch) -> torch.Tensor:
    """MSE between mapped hidden states (a learned projection when widths differ), TinyBERT-style."""
    terms = [masked_mse(s, t, batch.mask) for s, t in zip(batch.student_hidden, batch.teacher_hidden)]
    return torch.stack(terms).mean()


def attention_distribution_kl(batch: LayerBatch) -> torch.Tensor:
    """KL between mapped layers' attention distributions (MiniLM/TinyBERT); head counts must match."""
    terms = [attention_kl(s, t, batch.mask) for s, t in zip(batch.student_attention, batch.teacher_attention)]
    return torch.stack(terms).mean()


def embedding_mse(batch: LayerBatch) -> torch.Tensor:
    """MSE between the embedding layers' outputs (a learned projection when widths differ)."""
    return masked_mse(batch.student_embedding, batch.teacher_embedding, batch.mask)


def _builtin(name: str, fn: Callable, needs: str) -> LayerLoss:
    return LayerLoss(name, fn, needs, (fn.__doc__ or "").strip().splitlines()[0])


# the built-ins, declared by name in methods.py
HIDDEN = _builtin("hidden", hidden_mse, "hidden")
ATTENTION = _builtin("attention", attention_distribution_kl, "attention")
EMBEDDING = _builtin("embedding", embedding_mse, "embedding")


class LayerObjective(nn.Module):
    """The weighted intermediate-layer terms, with the learned projections they need.

    Kept outside the student so the saved and exported model is exactly the student;
    the trainer adds the projections' parameters to its optimiser.
    """

    def __init__(self, weights: dict[str, float], pairs: list[tuple[int, int]], student_width: int,
                 teacher_width: int):
        super().__init__()
        self.weights = {name: float(w) for name, w in weights.items() if float(w) != 0.0}
        self.losses = {name: get_layer_loss(name) for name in self.weights}
        self.pairs = list(pairs)
        self.needs = {loss.needs for loss in self.losses.values()}
        width_differs = student_width != teacher_width
        self.project_hidden = nn.ModuleList(
            nn.Linear(student_width, teacher_width) if width_differs else nn.Identity() for _ in self.pairs
        ) if "hidden" in self.needs else nn.ModuleList()
        self.project_embedding = (nn.Linear(student_width, teacher_width) if width_differs else nn.Identity()) \
            if "embedding" in self.needs else None

    @property
    def needs_attentions(self) -> bool:
        return "attention" in self.needs

    def forward(self, outputs, teacher: dict[str, torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """outputs: the student's (with hidden_states/attentions); teacher: from the feature store."""
        batch = LayerBatch(mask=mask)
        if "hidden" in self.needs:
            hs = outputs.hidden_states
            batch.student_hidden = [proj(hs[s + 1]) for proj, (s, _) in zip(self.project_hidden, self.pairs)]
            batch.teacher_hidden = list(teacher["hidden"].unbind(1))
        if "attention" in self.needs:
            batch.student_attention = [outputs.attentions[s] for s, _ in self.pairs]
            batch.teacher_attention = list(teacher["attention"].unbind(1))
        if "embedding" in self.needs:
            batch.student_embedding = self.project_embedding(outputs.hidden_states[0])
            batch.teacher_embedding = teacher["embedding"]
        parts = {name: loss.fn(batch) for name, loss in self.losses.items()}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, {name: float(v.detach()) for name, v in parts.items()}
