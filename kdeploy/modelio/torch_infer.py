"""PyTorch inference over texts: one batch, or many in length-sorted batches."""
from __future__ import annotations

import numpy as np
import torch

from ..progress import progress_bar
from .batching import batched_logits
from .inputs import select_inputs, tokenize


@torch.inference_mode()
def torch_logits(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """One padded batch through the model, on the model's device."""
    device = next(model.parameters()).device
    enc = tokenize(tokenizer, texts, max_length, return_tensors="pt")
    inputs = {k: v.to(device) for k, v in select_inputs(enc).items()}
    return model(**inputs).logits.float().cpu().numpy()


def compute_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                   description: str | None = None) -> np.ndarray:
    """Every text through the model in eval mode, in length-sorted batches; input order kept."""
    model.eval()
    if description is None:
        return batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), texts, batch_size)
    with progress_bar(description, total=len(texts)) as advance:
        return batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), texts, batch_size, advance)
