"""Run the teacher once over the training text and keep its logits on disk.

Keyed by the teacher's weights, the exact text and max length: a second distillation with
other α/T pays nothing for the teacher. An entry is written atomically under a lock, so
two runs computing the same entry never see half a file (the second waits, then reads).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..fsutil import cache_lock, normal_permissions, write_json
from ..modelio.torch_infer import compute_logits


def cache_root() -> Path:
    return Path(os.environ.get("KDEPLOY_CACHE", Path.home() / ".cache" / "kdeploy"))


def cache_key(teacher_fingerprint: str, data_fingerprint: str, max_length: int) -> str:
    return hashlib.sha256(f"v1|{teacher_fingerprint}|{data_fingerprint}|{max_length}".encode()).hexdigest()[:24]


def _load(path: Path, rows: int) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        logits = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None  # a damaged entry is recomputed
    if logits.shape[0] != rows or not np.isfinite(logits).all():
        return None
    return logits


def cached_teacher_logits(model, tokenizer, texts: list[str], key: str, max_length: int,
                          cache_dir: Path | None = None) -> tuple[np.ndarray, bool]:
    """Return (logits, was_cached)."""
    folder = (cache_dir or cache_root()) / "teacher-logits"
    path = folder / f"{key}.npy"
    logits = _load(path, len(texts))
    if logits is not None:
        return logits, True
    with cache_lock(path):
        logits = _load(path, len(texts))  # another process may have written it while we waited
        if logits is not None:
            return logits, True
        logits = compute_logits(model, tokenizer, texts, max_length, description="teacher logits")
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, logits, allow_pickle=False)
            normal_permissions(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        write_json(folder / f"{key}.json", {"examples": len(texts), "num_labels": int(logits.shape[1]),
                                            "max_length": max_length})
    return logits, False
