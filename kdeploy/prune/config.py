"""The prune stage's settings (torch-free): the only place they and their defaults are declared."""
from __future__ import annotations

from dataclasses import dataclass

from ..configtools import check_finite
from ..errors import KdeployError


@dataclass
class PruneSettings:
    vocab: bool = True  # keep the tokens of the training and validation text (never the test split's)
    heads: float = 0.0  # fraction of attention heads to prune by importance (0 = none)
    ffn: float = 0.0  # fraction of feed-forward neurons to prune by importance (0 = none; kept counts are multiples of 32)
    importance_samples: int = 2000  # labelled training examples scored for head importance
    recover_epochs: float = 1.0  # distillation after head pruning (0 = none)
    recover_learning_rate: float = 1e-4
    recover_layer_loss: str | None = None  # e.g. "hidden": match the unpruned model's hidden states too
    max_length: int | None = None  # default: the model's training max length
    seed: int = 42

    def __post_init__(self) -> None:
        check_finite(self)
        if not self.vocab and not self.heads and not self.ffn:
            raise KdeployError("nothing to prune: enable vocab trimming or give a head or feed-forward fraction")
        if not 0 <= self.heads < 1:
            raise KdeployError(f"heads is the fraction of attention heads to prune, in [0, 1); got {self.heads}")
        if not 0 <= self.ffn < 1:
            raise KdeployError(f"ffn is the fraction of feed-forward neurons to prune, in [0, 1); got {self.ffn}")
        if self.recover_layer_loss:
            from ..distill.config import parse_layer_losses

            parse_layer_losses(self.recover_layer_loss)
        if self.recover_epochs < 0:
            raise KdeployError(f"recover_epochs must be zero or more, got {self.recover_epochs}")
        if not 0 < self.recover_learning_rate < 1:
            raise KdeployError(f"recover_learning_rate must be in (0, 1), got {self.recover_learning_rate}")
        if self.importance_samples < 1:
            raise KdeployError(f"importance_samples must be at least 1, got {self.importance_samples}")
        if self.max_length is not None and self.max_length < 2:
            raise KdeployError(f"max_length must be at least 2 tokens, got {self.max_length}")
