"""Width pruning: remove feed-forward neurons by importance. The intermediate layer holds about
two thirds of a transformer layer's arithmetic, and many of its neurons matter little to a
task. A neuron's importance is the first-order estimate of what removing it costs (Molchanov
et al., 2017): |activation x gradient| of its output, accumulated over labelled training text.

Every layer keeps the same number of neurons (a multiple of 32, which the int8 kernels like,
and what `intermediate_size` in the model's config can describe), chosen per layer by
importance. Rows and columns are removed for real, so the model reloads, exports and quantises
as the smaller model; a short distillation afterwards recovers what was lost (prune/api.py).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import KdeployError
from ..modelio.batching import buckets
from ..modelio.inputs import select_inputs, tokenize
from ..progress import progress_bar

MULTIPLE = 32


def ffn_pairs(model) -> tuple[list[tuple[nn.Linear, nn.Linear, nn.Module]], str]:
    """(up projection, down projection, the module whose output is the activation) per layer,
    and the config key that holds the width."""
    pairs = []
    for module in model.modules():
        intermediate, output = getattr(module, "intermediate", None), getattr(module, "output", None)
        if intermediate is not None and isinstance(getattr(intermediate, "dense", None), nn.Linear) \
                and isinstance(getattr(output, "dense", None), nn.Linear):
            pairs.append((intermediate.dense, output.dense, intermediate))  # BERT, RoBERTa, ELECTRA, ...
        ffn = getattr(module, "ffn", None)
        if ffn is not None and isinstance(getattr(ffn, "lin1", None), nn.Linear):
            pairs.append((ffn.lin1, ffn.lin2, ffn.activation if hasattr(ffn, "activation") else ffn.lin1))
    key = "hidden_dim" if hasattr(model.config, "hidden_dim") and not hasattr(model.config, "intermediate_size") \
        else "intermediate_size"
    if not pairs:
        raise KdeployError(f"width pruning needs a transformer with feed-forward layers (BERT or DistilBERT family); "
                           f"{type(model).__name__} has none")
    return pairs, key


def ffn_importance(model, tokenizer, texts: list[str], labels: list[int], max_length: int,
                   batch_size: int = 32) -> np.ndarray:
    """[layers, neurons]: accumulated |activation x gradient| of each feed-forward neuron."""
    pairs, _ = ffn_pairs(model)
    scores = [torch.zeros(up.out_features) for up, _, _ in pairs]
    captured: dict[int, torch.Tensor] = {}

    def hook(i):
        def keep(module, inputs, output):
            output.retain_grad()
            captured[i] = output
        return keep

    handles = [act.register_forward_hook(hook(i)) for i, (_, _, act) in enumerate(pairs)]
    model.eval()  # no dropout: the importance of the model as it will run
    try:
        with progress_bar("feed-forward importance", total=len(texts)) as advance:
            for idx in buckets(texts, batch_size):
                enc = tokenize(tokenizer, [texts[i] for i in idx], max_length, return_tensors="pt")
                model.zero_grad(set_to_none=True)
                out = model(**select_inputs(enc), labels=torch.tensor([labels[i] for i in idx]))
                out.loss.backward()
                for i, act in captured.items():
                    scores[i] += (act.detach() * act.grad).abs().sum(dim=tuple(range(act.dim() - 1)))
                advance(len(idx))
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return torch.stack(scores).numpy()


def keep_count(width: int, fraction: float, multiple: int = MULTIPLE) -> int:
    """Neurons each layer keeps after pruning `fraction`: a multiple of `multiple`, at least one multiple."""
    if not 0 <= fraction < 1:
        raise KdeployError(f"the feed-forward pruning fraction must be in [0, 1), got {fraction}")
    keep = int(round(width * (1 - fraction) / multiple)) * multiple
    return min(width, max(multiple, keep))


def _slice(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    weight = linear.weight.data.index_select(dim, index).clone()
    bias = linear.bias.data.clone() if linear.bias is not None else None
    if dim == 0 and bias is not None:
        bias = bias.index_select(0, index).clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias)
    return new


def prune_ffn(model, tokenizer, texts: list[str], labels: list[int], fraction: float, max_length: int) -> dict:
    """Prune in place; returns what was kept and why."""
    pairs, key = ffn_pairs(model)
    width = pairs[0][0].out_features
    if any(up.out_features != width for up, _, _ in pairs):
        raise KdeployError("this model's feed-forward layers differ in width already; prune their width once, "
                           "from the unpruned model")
    keep = keep_count(width, fraction)
    importance = ffn_importance(model, tokenizer, texts, labels, max_length)
    for layer, (up, down, _) in enumerate(pairs):
        index = torch.from_numpy(np.sort(np.argsort(-importance[layer], kind="stable")[:keep])).long()
        new_up, new_down = _slice(up, index, 0), _slice(down, index, 1)
        for parent in model.modules():
            for name, child in list(parent.named_children()):
                if child is up:
                    setattr(parent, name, new_up)
                elif child is down:
                    setattr(parent, name, new_down)
    setattr(model.config, key, keep)
    kept = importance[np.arange(len(pairs))[:, None], np.argsort(-importance, axis=1)[:, :keep]].sum(1)
    return {"fraction": fraction, "width_before": width, "width_after": keep, "layers": len(pairs),
            "multiple": MULTIPLE, "importance_kept": np.round(kept / importance.sum(1), 4).tolist()}
