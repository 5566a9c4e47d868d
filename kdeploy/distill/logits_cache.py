"""Run the teacher once over the training text and keep its logits on disk.

Keyed by the teacher's weights, the exact training text and max length: a second
distillation with other α/T pays nothing for the teacher.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..progress import progress_bar


def cache_root() -> Path:
    return Path(os.environ.get("KDEPLOY_CACHE", Path.home() / ".cache" / "kdeploy"))


def cache_key(teacher_fingerprint: str, data_fingerprint: str, max_length: int) -> str:
    return hashlib.sha256(f"v1|{teacher_fingerprint}|{data_fingerprint}|{max_length}".encode()).hexdigest()[:24]


@torch.inference_mode()
def compute_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                   description: str = "teacher logits") -> np.ndarray:
    """Batches sorted by length (little padding), results returned in the input order."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with progress_bar(description, total=len(texts)) as advance:
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            out[idx] = model(**enc).logits.float().cpu().numpy()
            advance(len(idx))
    return out


def cached_teacher_logits(model, tokenizer, texts: list[str], key: str, max_length: int,
                          cache_dir: Path | None = None) -> tuple[np.ndarray, bool]:
    """Return (logits, was_cached). Writes atomically, so a crash never leaves a half file."""
    folder = (cache_dir or cache_root()) / "teacher-logits"
    path = folder / f"{key}.npy"
    if path.exists():
        logits = np.load(path, allow_pickle=False)
        if logits.shape[0] == len(texts):
            return logits, True
    logits = compute_logits(model, tokenizer, texts, max_length)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=folder)
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, logits, allow_pickle=False)
    os.replace(tmp, path)
    (folder / f"{key}.json").write_text(json.dumps({"examples": len(texts), "num_labels": logits.shape[1],
                                                    "max_length": max_length}))
    return logits, False
