"""Run the teacher once over the training text and keep its logits on disk.

Keyed by the teacher's weights, the exact text and max length: a second distillation with
other α/T pays nothing for the teacher. An entry is written atomically under a lock, so
two runs computing the same entry never see half a file (the second waits, then reads).

Under a data-parallel launch (torchrun/accelerate) the teacher pass is sharded: every rank
computes every world-th text into its own part, rank 0 assembles the entry, and all read
it back memory-mapped. The entry is the same, text for text, as a single process writes.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fsutil import cache_lock, normal_permissions, write_json
from ..modelio.torch_infer import chunked_logits, compute_logits


def cache_root() -> Path:
    return Path(os.environ.get("KDEPLOY_CACHE", Path.home() / ".cache" / "kdeploy"))


def cache_key(teacher_fingerprint: str, data_fingerprint: str, max_length: int, truncation: str = "head") -> str:
    """Logits depend on the teacher, the texts and which of their tokens it reads."""
    reading = f"{max_length}" if truncation == "head" else f"{max_length}|{truncation}"  # head keeps older keys
    return hashlib.sha256(f"v1|{teacher_fingerprint}|{data_fingerprint}|{reading}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel launch (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> "Shard":
        try:
            import torch.distributed as dist
        except ImportError:  # pragma: no cover
            return cls()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def agree(self, value: bool) -> bool:
        """Rank 0's value, on every rank: all take the same branch."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])


def _save(logits: np.ndarray, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, logits, allow_pickle=False)
        normal_permissions(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path, rows: int) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        logits = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError):
        return None  # a damaged entry is recomputed
    if logits.shape[0] != rows or not np.isfinite(logits).all():
        return None
    return logits


def cached_teacher_logits(model, tokenizer, texts: list[str], key: str, max_length: int,
                          cache_dir: Path | None = None, shard: Shard | None = None,
                          chunks: bool = False) -> tuple[np.ndarray, bool]:
    """Return (logits, was_cached); with a shard of a data-parallel launch, every rank must call it.
    `chunks`: a text longer than the window is read window by window, its logits averaged."""
    shard = shard or Shard()
    folder = (cache_dir or cache_root()) / "teacher-logits"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npy"
    cached = _load(path, len(texts))
    if shard.agree(cached is not None):
        return np.asarray(cached if cached is not None else _load(path, len(texts))), True
    if shard.world > 1:
        return _sharded(model, tokenizer, texts, path, max_length, shard, chunks), False
    with cache_lock(path):
        logits = _load(path, len(texts))  # another process may have written it while we waited
        if logits is not None:
            return np.asarray(logits), True
        logits = _reader(chunks)(model, tokenizer, texts, max_length, description="teacher logits")
        _save(logits, path)
        _describe(path, len(texts), logits.shape[1], max_length, 1)
    return logits, False


def _reader(chunks: bool):
    return chunked_logits if chunks else compute_logits


def _sharded(model, tokenizer, texts: list[str], path: Path, max_length: int, shard: Shard,
             chunks: bool = False) -> np.ndarray:
    """Each rank computes texts rank, rank+world, ... (similar length mixes); rank 0 assembles."""
    part = path.with_name(f".{path.stem}.part{shard.rank}of{shard.world}.npy")
    mine = list(range(shard.rank, len(texts), shard.world))
    _save(_reader(chunks)(model, tokenizer, [texts[i] for i in mine], max_length,
                          description=f"teacher logits (rank {shard.rank})"), part)
    shard.barrier()
    if shard.rank == 0:
        with cache_lock(path):
            parts = [np.load(path.with_name(f".{path.stem}.part{r}of{shard.world}.npy")) for r in range(shard.world)]
            logits = np.zeros((len(texts), parts[0].shape[1]), dtype=np.float32)
            for r, values in enumerate(parts):
                logits[r::shard.world] = values
            _save(logits, path)
            _describe(path, len(texts), logits.shape[1], max_length, shard.world)
            for r in range(shard.world):
                path.with_name(f".{path.stem}.part{r}of{shard.world}.npy").unlink(missing_ok=True)
    shard.barrier()
    return np.asarray(_load(path, len(texts)))


def _describe(path: Path, examples: int, num_labels: int, max_length: int, processes: int) -> None:
    write_json(path.with_suffix(".json"), {"examples": examples, "num_labels": int(num_labels),
                                           "max_length": max_length, "processes": processes})
