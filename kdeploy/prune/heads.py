"""Attention-head pruning by importance (Michel et al., 2019, "Are Sixteen Heads Really
Better than One?"): a head's importance is the accumulated |∂L/∂m_h| of a mask m on its
output over labelled data, normalised per layer; the least important heads go first.

The heads' rows (query, key, value) and columns (output projection) are removed for real
and recorded in the config (`pruned_heads`, original head numbers), so the smaller model
saves, exports and, through kdeploy's loader (`apply_pruned_heads`), reloads as itself.
transformers 4 did this itself (`prune_heads`, `head_mask`); transformers 5 removed both, and
its attention reads the head count from the projections' width, so slicing them is enough.
A short distillation afterwards recovers most of what was lost (see prune/api.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import KdeployError
from ..modelio.heads import layer_stack, apply_pruned_heads, head_size, projections
from ..modelio.batching import buckets
from ..modelio.inputs import select_inputs, tokenize
from ..progress import progress_bar


def head_importance(model, tokenizer, texts: list[str], labels: list[int], max_length: int,
                    batch_size: int = 32) -> np.ndarray:
    """[layers, heads] importance scores (higher = more needed), each layer's row L2-normalised.

    The mask multiplies each head's slice of the output projection's input (a pre-hook): the
    same gradient transformers 4's `head_mask` gave, on any attention implementation."""
    config = model.config
    paths = projections(model)
    layers, heads = len(paths), int(getattr(config, "num_attention_heads", None) or config.n_heads)
    size = head_size(config)
    mask = torch.ones(layers, heads, requires_grad=True)
    hooks = []
    for i, (layer, path) in enumerate(zip(layer_stack(model), paths)):
        def masked(module, args, i=i):
            x = args[0]
            return (x * mask[i].repeat_interleave(size).to(x.dtype),) + tuple(args[1:])
        hooks.append(layer.get_submodule(path[3]).register_forward_pre_hook(masked))
    model.eval()  # no dropout: importance of the model as it will run
    try:
        with progress_bar("head importance", total=len(texts)) as advance:
            for idx in buckets(texts, batch_size):
                enc = tokenize(tokenizer, [texts[i] for i in idx], max_length, return_tensors="pt")
                out = model(**select_inputs(enc), labels=torch.tensor([labels[i] for i in idx]))
                out.loss.backward()
                advance(len(idx))
    finally:
        for hook in hooks:
            hook.remove()
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
    if not (getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)):
        raise KdeployError(f"head pruning needs a transformer with attention heads; {type(model).__name__} has none")
    if projections(model) is None:
        raise KdeployError(f"head pruning knows BERT-style and DistilBERT attention; {type(model).__name__} is "
                           "neither: prune feed-forward neurons (--ffn) or keep fewer layers (--student-layers)")
    importance = head_importance(model, tokenizer, texts, labels, max_length)
    chosen = heads_to_prune(importance, fraction)
    apply_pruned_heads(model, chosen)
    config.pruned_heads = {int(k): list(v) for k, v in chosen.items()}
    total = importance.size
    removed = sum(len(h) for h in chosen.values())
    return {"fraction": fraction, "heads_before": total, "heads_after": total - removed, "pruned": chosen,
            "importance": np.round(importance, 4).tolist()}
