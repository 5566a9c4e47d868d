"""Augmented transfer text (TinyBERT, TextBrewer): perturbed copies of each sentence
whose only label is the teacher's output, so a small labelled set still transfers
much of the teacher's knowledge.

Word-level operations, each registered by name. Every copy is drawn from a generator
seeded by (seed, sentence, copy): the same settings give the same text, so the
teacher's outputs on it are cached like any other.
"""
from __future__ import annotations

import numpy as np

from ..errors import KdeployError
from ..registry import Registry

AUGMENTERS = Registry("augmentation")
register_augmenter = AUGMENTERS.register


@register_augmenter("mask")
def mask_words(words: list[str], rng: np.random.Generator, rate: float, mask_token: str) -> list[str]:
    """Replace words by the mask token."""
    return [mask_token if rng.random() < rate else w for w in words]


@register_augmenter("delete")
def delete_words(words: list[str], rng: np.random.Generator, rate: float, mask_token: str) -> list[str]:
    """Drop words (never all of them)."""
    kept = [w for w in words if rng.random() >= rate]
    return kept or [words[int(rng.integers(len(words)))]]


@register_augmenter("swap")
def swap_spans(words: list[str], rng: np.random.Generator, rate: float, mask_token: str) -> list[str]:
    """Swap short neighbouring spans (1-2 words each)."""
    words = list(words)
    for _ in range(max(1, round(rate * len(words) / 2))):
        if len(words) < 2:
            break
        n = int(rng.integers(1, 3))
        n = min(n, len(words) // 2)
        start = int(rng.integers(0, len(words) - 2 * n + 1))
        a, b = words[start:start + n], words[start + n:start + 2 * n]
        words[start:start + 2 * n] = b + a
    return words


def augment_texts(texts: list[str], copies: int, seed: int = 0, ops: tuple[str, ...] = ("mask", "delete", "swap"),
                  rate: float = 0.15, mask_token: str = "[MASK]") -> list[str]:
    """`copies` perturbed versions of each text, in order: text0 copy0..copyN, text1 copy0, ..."""
    if copies < 0:
        raise KdeployError(f"augment copies must be zero or more, got {copies}")
    if not 0 < rate < 1:
        raise KdeployError(f"augment rate must be in (0, 1), got {rate}")
    for op in ops:
        AUGMENTERS.lookup(op)
    out = []
    for i, text in enumerate(texts):
        words = text.split()
        for c in range(copies):
            rng = np.random.default_rng([seed, i, c])
            if not words:
                out.append(text)
                continue
            op = ops[int(rng.integers(len(ops)))]
            out.append(" ".join(AUGMENTERS[op](words, rng, rate, mask_token)))
    return out
