"""Sentence embedders as users have them: sentence-transformers folders (`modules.json`, a
Transformer module, its Pooling config, an optional Normalize). Loaded, run and saved through
sentence-transformers itself, so the pooling and normalisation are the model's own, read from
its folder, never assumed; weights from safetensors, local files only, remote code only when
asked."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..assets import resolve_model
from ..errors import KdeployError
from .st_folder import MODULES, is_embedder  # noqa: F401  (is_embedder: re-exported)


def load_embedder(name: str, trust_remote_code: bool = False):
    """A SentenceTransformer from a folder, a builtin or the hub (the hub only when it is on)."""
    from sentence_transformers import SentenceTransformer

    from .loading import _explain_load_error

    path = resolve_model(name)
    if Path(path).is_dir() and not is_embedder(path):
        raise KdeployError(f"{name}: not a sentence embedder (no {MODULES}, or its encoder has a task head); give a "
                           "sentence-transformers model folder, e.g. builtin:all-MiniLM-L6-v2")
    try:
        model = SentenceTransformer(str(path), device="cpu", trust_remote_code=trust_remote_code,
                                    local_files_only=Path(path).is_dir())
    except KdeployError:
        raise
    except Exception as exc:  # sentence-transformers and transformers raise many types
        raise _explain_load_error(name, exc) from None
    return model.eval()


def encoder_of(model):
    """The transformers model inside (the part a layer student keeps layers of)."""
    first = model[0]
    inner = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if inner is None:
        raise KdeployError(f"{type(first).__name__}: not a transformer module; kdeploy distils sentence embedders "
                           "whose first module is a Transformer")
    return inner


def pooling_of(model) -> dict:
    """How the model turns token vectors into one: its pooling mode, whether it L2-normalises, its width."""
    mode, normalize = None, False
    for module in model:
        name = type(module).__name__
        if name == "Pooling":
            config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
            mode = config.get("pooling_mode") or next(
                (k.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
                 for k, v in config.items() if k.startswith("pooling_mode_") and v is True), None)
        elif name == "Normalize":
            normalize = True
    return {"pooling": mode or "unknown", "normalize": normalize, "dimension": dimension_of(model)}


def dimension_of(model) -> int:
    """The sentence vector's width (sentence-transformers renamed the method in 6.x)."""
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get() or 0)


def embed(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """The model's sentence vectors (its own pooling and normalisation), float32, in input order."""
    if not texts:
        return np.zeros((0, dimension_of(model)), dtype=np.float32)
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def fingerprint_of(model) -> str:
    """Content hash of the weights and the pooling: the same teacher gives the same key."""
    import hashlib

    from .loading import model_fingerprint

    h = hashlib.sha256(model_fingerprint(encoder_of(model)).encode())
    h.update(json.dumps(pooling_of(model), sort_keys=True).encode())
    return h.hexdigest()[:16]


def embedding_graph(model, names: list[str]):
    """The embedder as named tensors in, `sentence_embedding` out (pooling and normalisation
    inside): what the ONNX export traces."""
    import torch

    class EmbeddingGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.names = model, names

        def forward(self, *tensors):
            return self.model(dict(zip(self.names, tensors)))["sentence_embedding"]

    return EmbeddingGraph()
