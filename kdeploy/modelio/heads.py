"""Where a transformer's attention heads live, and how a model rebuilt at full width from its config
gets the heads kdeploy pruned sliced out again (transformers 5 no longer does it on load)."""
from __future__ import annotations

import torch

from ..errors import KdeployError

#: per layout, the paths inside one layer of (query, key, value, output projection): BERT, RoBERTa,
#: XLM-R, ELECTRA, CamemBERT; DistilBERT. Both read the head count from the projections' width.
_LAYOUTS = (("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"),
            ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"))


def layer_stack(model) -> list:
    depth = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and depth and len(module) == depth and name:
            return list(module)
    return []


def projections(model) -> list[tuple[str, ...]] | None:
    """Per layer, the module paths of its (query, key, value, output) projections; None when this
    architecture's attention is not one kdeploy can prune (ALBERT's shared layers, DeBERTa, MPNet...)."""
    layers = layer_stack(model)
    for layout in _LAYOUTS:
        if layers and all(_has(layer, path) for layer in layers for path in layout):
            return [layout] * len(layers)
    return None


def _has(module, path: str) -> bool:
    try:
        return isinstance(module.get_submodule(path), torch.nn.Linear)
    except AttributeError:
        return False


def head_size(config) -> int:
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
    return int(hidden) // int(heads)


def apply_pruned_heads(model, pruned: dict) -> None:
    """Slice the recorded heads (original numbering) out of a full-width model, in place: what
    prune did, redone on a model rebuilt from its config before its weights are loaded."""
    paths = projections(model)
    if paths is None:
        raise KdeployError(f"{type(model).__name__}: its config lists pruned heads, but kdeploy prunes heads of "
                           "BERT-style and DistilBERT attention only")
    size = head_size(model.config)
    for layer_index, (layer, path) in enumerate(zip(layer_stack(model), paths)):
        drop = {int(h) for h in (pruned.get(layer_index) or pruned.get(str(layer_index)) or [])}
        if not drop:
            continue
        total = layer.get_submodule(path[0]).out_features // size
        keep = torch.tensor([h * size + j for h in range(total) if h not in drop for j in range(size)])
        for which, p in enumerate(path):
            old = layer.get_submodule(p)
            rows = which < 3  # query/key/value lose output rows; the output projection loses input columns
            new = torch.nn.Linear(old.in_features if rows else len(keep), len(keep) if rows else old.out_features,
                                  bias=old.bias is not None, dtype=old.weight.dtype, device=old.weight.device)
            with torch.no_grad():
                new.weight.copy_(old.weight[keep] if rows else old.weight[:, keep])
                if old.bias is not None:
                    new.bias.copy_(old.bias[keep] if rows else old.bias)
            parent_path, _, attr = p.rpartition(".")
            setattr(layer.get_submodule(parent_path), attr, new)
        attention = layer.get_submodule(path[0].rpartition(".")[0])
        for name in ("num_attention_heads", "n_heads"):  # bookkeeping some versions read
            if isinstance(getattr(attention, name, None), int):
                setattr(attention, name, total - len(drop))
        if isinstance(getattr(attention, "all_head_size", None), int):
            attention.all_head_size = len(keep)


def eager_attention(model) -> "contextlib.AbstractContextManager":
    """Attention weights come back only from the eager implementation in transformers 5 (SDPA and
    flash return none): switch to it while they are read, and back afterwards."""
    import contextlib

    @contextlib.contextmanager
    def switched():
        before = getattr(model.config, "_attn_implementation", None)
        change = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
        if change:
            model.set_attn_implementation("eager")
        try:
            yield model
        finally:
            if change:
                model.set_attn_implementation(before)

    return switched()
