"""Batch invariance: does a text get the same answer whoever travels with it?

A model whose activations are scaled per call (dynamic int8) answers a text differently alone,
in a batch of its neighbours and beside a much longer text (padding changes the scale), so a
server that micro-batches requests would answer a user by who else was asking. This check runs
each text three ways and compares the outputs (what a user reads: probabilities, sigmoid
scores, the score) and the answers the task kind decides from them (a class, the labels above
their thresholds; a score has none to flip). Torch-free: export, package (every format) and bench all use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .batching import _length, length_order

TOLERANCE = 1e-5  # max |Δp| a batch-invariant file may show (float reassociation, never a flip)
BATCH = 32
BESIDE = 8  # texts per call in the "beside much longer texts" arm: 7 evaluated + the longest


@dataclass
class Invariance:
    """Each text alone vs in length-sorted batches of 32 vs beside the longest texts."""

    texts: int
    max_abs_diff: float  # probabilities (classifier) or scores (score model)
    flips: int  # texts whose answer (class, label set) changes between the arms (always 0 for a score model)
    tolerance: float = TOLERANCE
    worst: str | None = None  # the text that moved most, cut to 80 characters
    note: str | None = None  # why nothing was compared, where a runner can never batch

    @property
    def passed(self) -> bool:
        return self.flips == 0 and self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        return (f"max |Δp| {self.max_abs_diff:.1e}, {self.flips} label flip{'s' if self.flips != 1 else ''} "
                f"over {self.texts} texts")


def check_invariance(run: Callable[[list], np.ndarray], examples: Sequence, task: str = "classification",
                     tolerance: float = TOLERANCE, thresholds: np.ndarray | None = None) -> Invariance:
    """`run(examples)` makes exactly one model call on the examples given and returns one
    output row (what a user reads) per example; `task` names the kind whose answers are compared."""
    from ..tasks import task_kind

    kind = task_kind(task)
    examples = list(examples)
    if not examples:
        return Invariance(texts=0, max_abs_diff=0.0, flips=0, tolerance=tolerance)
    alone = np.concatenate([np.asarray(run([x]), dtype=np.float64) for x in examples])
    order = length_order(examples)
    batched = np.zeros_like(alone)
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        batched[idx] = np.asarray(run([examples[i] for i in idx]), dtype=np.float64)
    longest = examples[int(order[-1])]
    beside = np.zeros_like(alone)
    step = BESIDE - 1
    for start in range(0, len(examples), step):
        chunk = examples[start:start + step]
        beside[start:start + len(chunk)] = np.asarray(run(chunk + [longest]), dtype=np.float64)[:len(chunk)]
    n = len(alone)  # a row per example; a tagger's row is [tokens, tags]
    diff = np.maximum(np.abs(batched - alone).reshape(n, -1).max(-1), np.abs(beside - alone).reshape(n, -1).max(-1))
    flips = _flips(kind, alone, batched, beside, thresholds)
    worst = examples[int(diff.argmax())]
    text = str(worst)
    return Invariance(texts=len(examples), max_abs_diff=float(diff.max()), flips=flips, tolerance=tolerance,
                      worst=text if len(text) <= 80 else text[:77] + "...")


def _flips(kind, alone: np.ndarray, batched: np.ndarray, beside: np.ndarray, thresholds) -> int:
    """Texts whose decided answer differs from their answer alone in either arm."""
    reference = kind.decisions(alone, thresholds)
    if reference is None:
        return 0
    moved = np.zeros(len(alone), dtype=bool)
    for other in (batched, beside):
        diff = kind.decisions(other, thresholds) != reference
        moved |= diff.reshape(len(alone), -1).any(-1)
    return int(moved.sum())


def longest_first(examples: Sequence, limit: int) -> list:
    """Up to `limit` examples, always keeping the longest (the one that pads the others most)."""
    examples = list(examples)
    if len(examples) <= limit:
        return examples
    keep = sorted(range(len(examples)), key=lambda i: -_length(examples[i]))[:1]
    rest = [i for i in range(len(examples)) if i not in keep][:limit - 1]
    return [examples[i] for i in sorted(keep + rest)]
