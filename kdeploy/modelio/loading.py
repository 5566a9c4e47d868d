"""Load any sequence classifier or tokenizer (local folder, hub id, builtin): the one loader
every stage uses. Weights load from safetensors only; remote code only when asked."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from ..assets import resolve_model
from ..errors import KdeployError
from . import small_models  # noqa: F401  (registers kdeploy-bilstm / kdeploy-cnn with the Auto classes)

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def _explain_load_error(name: str, exc: Exception) -> KdeployError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if not Path(name).exists():
        where = "not a local folder, and the hub is off (HF_HUB_OFFLINE=1)" if offline else "not a local folder nor a hub model id"
        return KdeployError(f"cannot load model {name!r}: {where}")
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "safetensor" in type(exc).__name__.lower() or "safetensors" in text.lower() or "header" in text.lower():
        return KdeployError(f"cannot load model {name!r}: its weights file is damaged or truncated ({text}); "
                            "copy or train it again")
    return KdeployError(f"cannot load model {name!r}: {text}")


# Loading a damaged or foreign folder raises many types (transformers' OSError/ValueError,
# safetensors' and tokenizers' own): each becomes one line naming the model.
_LOAD_ERRORS = Exception


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The model's tokenizer, cutting long texts the way the model was trained to read them."""
    from transformers import AutoTokenizer

    from .inputs import set_truncation
    from .record import truncation_of

    path = resolve_model(name)
    try:
        return set_truncation(AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code),
                              truncation_of(path))
    except KdeployError:
        raise
    except _LOAD_ERRORS as exc:
        raise _explain_load_error(name, exc) from None


def load_classifier(name: str, label_names: list[str] | None = None, trust_remote_code: bool = False,
                    model_class: str = "AutoModelForSequenceClassification"):
    """Load a sequence classifier (or the task's `model_class`: a token classifier). With
    `label_names`, a base encoder gets a fresh head of that size."""
    import transformers
    from transformers import AutoConfig

    auto = getattr(transformers, model_class)
    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except KdeployError:
        raise
    except _LOAD_ERRORS as exc:
        raise _explain_load_error(name, exc) from None
    kwargs = {}
    if label_names is not None:
        kwargs = dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
        )
        if config.num_labels != len(label_names):
            kwargs["ignore_mismatched_sizes"] = True
    if getattr(config, "pruned_heads", None):
        if label_names is not None and config.num_labels != len(label_names):
            raise KdeployError(f"cannot load model {name!r} with a new {len(label_names)}-label head: its attention "
                               "heads were pruned for its own task; prune the model of the new task instead")
        if label_names is not None:
            config.id2label, config.label2id = kwargs["id2label"], kwargs["label2id"]
        return _load_head_pruned(name, path, config, trust_remote_code)
    try:
        model, info = auto.from_pretrained(
            path, trust_remote_code=trust_remote_code, output_loading_info=True, **kwargs)
    except KdeployError:
        raise
    except _LOAD_ERRORS as exc:
        raise _explain_load_error(name, exc) from None
    _check_complete(name, path, info, label_names is not None)
    return model


def _load_head_pruned(name: str, path: str, config, trust_remote_code: bool):
    """A model whose heads kdeploy pruned: transformers 5 builds every layer at full width from the
    config, so the recorded heads are sliced out again before the weights (safetensors) load."""
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from .heads import apply_pruned_heads

    weights = Path(path) / "model.safetensors"
    if not weights.is_file():
        raise KdeployError(f"cannot load model {name!r}: its heads were pruned and its weights are not one "
                           "model.safetensors file; prune it again")
    try:
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
        apply_pruned_heads(model, config.pruned_heads)
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    except KdeployError:
        raise
    except _LOAD_ERRORS as exc:
        raise _explain_load_error(name, exc) from None
    buffers = {n for n, _ in model.named_buffers()}
    _check_complete(name, path, {"missing_keys": [k for k in missing if k not in buffers],
                                 "unexpected_keys": list(unexpected)}, False)
    return model.eval()


def _check_complete(name: str, path: str, info: dict, new_head: bool) -> None:
    """A model kdeploy trained must reload whole: a missing or unexpected weight means the
    model rebuilt from its config is not the one trained (transformers only warns)."""
    from .record import ModelRecord

    missing, unexpected = info.get("missing_keys") or [], info.get("unexpected_keys") or []
    if not (missing or unexpected) or new_head or not ModelRecord.of(path):
        return
    raise KdeployError(f"cannot load model {name!r}: it does not reload as it was trained ({len(missing)} weights "
                       f"missing: {', '.join(sorted(missing)[:3])}; {len(unexpected)} unexpected: "
                       f"{', '.join(sorted(unexpected)[:3])}); train it again with this transformers version")


def label_names_of(model) -> list[str] | None:
    """The model's label names in id order, or None when they are transformers' placeholders."""
    id2label = getattr(model.config, "id2label", None) or {}
    names = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
    if not names or all(_GENERIC_LABEL.match(n) for n in names):
        return None
    return names


def model_fingerprint(model) -> str:
    """Content hash of the weights: the same teacher gives the same key wherever it is loaded from."""
    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())
    return h.hexdigest()[:16]
