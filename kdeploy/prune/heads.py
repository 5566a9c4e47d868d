"""Attention-head pruning by importance (Michel et al., 2019, "Are Sixteen Heads Really
Better than One?"): a head's importance is the accumulated |∂L/∂m_h| of a mask m on its
output over labelled data, normalised per layer; the least important heads go first.

transformers removes the heads' rows and columns for real (`prune_heads`) and records
them in the config, so the smaller model saves, reloads and exports as itself. A short
distillation afterwards recovers most of what was lost (see prune/api.py).
"""
from __future__ import annotations

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from ..errors import KdeployError
from ..modelio.batching import buckets
from ..modelio.inputs import select_inputs, tokenize
from ..progress import progress_bar


def head_importance(model, tokenizer, texts: list[str], labels: list[int], max_length: int,
                    batch_size: int = 32) -> np.ndarray:
    """[layers, heads] importance scores (higher = more needed), each layer's row L2-normalised."""
    config = model.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    mask = torch.ones(layers, heads, requires_grad=True)
    model.eval()  # no dropout: importance of the model as it will run
    # SDPA attention cannot take a head mask: transformers falls back to the manual path, which is
    # what we want, but warns that it did; the warning says nothing the user can act on.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with progress_bar("head importance", total=len(texts)) as advance:
            for idx in buckets(texts, batch_size):
                enc = tokenize(tokenizer, [texts[i] for i in idx], max_length, return_tensors="pt")
                out = model(**select_inputs(enc), head_mask=mask, labels=torch.tensor([labels[i] for i in idx]))
                out.loss.backward()
                advance(len(idx))
    finally:
        hf_logging.set_verbosity(verbosity)
    importance = mask.grad.abs().detach().numpy()
    norm = np.linalg.norm(importance, axis=1, keepdims=True)
    return importance / np.where(norm > 0, norm, 1.0)


def heads_to_prune(importance: np.ndarray, fraction: float, already: dict | None = None) -> dict[int, list[int]]:
    """The globally least important `fraction` of heads, keeping at least one per layer."""
    if not 0 <= fraction < 1:
        raise KdeployError(f"head pruning fraction must be in [0, 1), got {fraction}")
    layers, heads = importance.shape
    count = int(round(fraction * layers * heads))
    order = np.argsort(importance, axis=None, kind="stable")
    left = {layer: heads for layer in range(layers)}
    chosen: dict[int, list[int]] = {}
    for flat in order:
        if count == 0:
            break
        layer, head = divmod(int(flat), heads)
        if left[layer] == 1:
            continue
        chosen.setdefault(layer, []).append(head)
        left[layer] -= 1
        count -= 1
    return {layer: sorted(h) for layer, h in sorted(chosen.items())}


def prune_heads(model, tokenizer, texts: list[str], labels: list[int], fraction: float, max_length: int) -> dict:
    """Prune in place; returns what was pruned and why."""
    config = model.config
    if getattr(config, "pruned_heads", None):
        raise KdeployError("this model's heads were pruned already; prune heads once, from the unpruned model")
    if not hasattr(model, "prune_heads") or not getattr(config, "num_attention_heads", None):
        raise KdeployError(f"head pruning needs a transformer with attention heads; {type(model).__name__} has none")
    importance = head_importance(model, tokenizer, texts, labels, max_length)
    chosen = heads_to_prune(importance, fraction)
    try:
        model.prune_heads(chosen)
    except NotImplementedError:
        raise KdeployError(f"{type(model).__name__} does not support head pruning in transformers") from None
    total = importance.size
    removed = sum(len(h) for h in chosen.values())
    return {"fraction": fraction, "heads_before": total, "heads_after": total - removed, "pruned": chosen,
            "importance": np.round(importance, 4).tolist()}
