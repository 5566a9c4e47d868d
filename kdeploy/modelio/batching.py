"""Length-bucketed batching: texts sorted by length go through a model in batches of similar
length (little padding), and the results come back in input order. The one implementation
behind accuracy checks, teacher logits, head importance and the edge predictor."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence, Sized

import numpy as np


def _length(item) -> int:
    """Characters or tokens; a (first, second) pair counts both."""
    return sum(len(part) for part in item) if isinstance(item, tuple) else len(item)


def length_order(items: Sequence[Sized]) -> np.ndarray:
    return np.argsort([_length(t) for t in items], kind="stable")


def buckets(texts: Sequence[Sized], batch_size: int) -> Iterator[np.ndarray]:
    """Index arrays of `batch_size` texts (or token lists) of similar length, shortest first."""
    order = length_order(texts)
    for start in range(0, len(texts), batch_size):
        yield order[start:start + batch_size]


def token_batches(lengths: Sequence[int], max_tokens: int = 1024, max_batch: int = 64) -> Iterator[np.ndarray]:
    """Index arrays of length-sorted texts whose padded size (count x longest) stays within
    `max_tokens`: many short texts go together, long ones in small groups. Measured here,
    a batch's throughput stops growing past about a thousand tokens (the activations leave the
    cache), so larger batches only add latency."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batch: list[int] = []
    longest = 0
    for i in order:
        n = max(int(lengths[i]), 1)
        if batch and (len(batch) >= max_batch or max(longest, n) * (len(batch) + 1) > max_tokens):
            yield np.asarray(batch)
            batch, longest = [], 0
        batch.append(int(i))
        longest = max(longest, n)
    if batch:
        yield np.asarray(batch)


def batched_logits(run: Callable[[list[str]], np.ndarray], texts: Sequence[str], batch_size: int = 64,
                   advance: Callable[[int], None] | None = None) -> np.ndarray:
    """`run` over length-sorted batches; one row per text, in input order."""
    out = None
    for idx in buckets(texts, batch_size):
        logits = np.asarray(run([texts[i] for i in idx]), dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
        if advance is not None:
            advance(len(idx))
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return out
