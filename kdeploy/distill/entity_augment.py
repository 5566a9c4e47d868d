"""Entity-aware augmentation for an entity tagger's transfer set: perturbed copies of each
training sentence that keep a gold tag per word, so the student learns from both the copy's
tags and its teacher's outputs on it.

- each entity mention is swapped, with probability 1/2, for another mention of the same type
  seen in training (its words, tagged B-X I-X …): more names in more contexts;
- each word outside an entity is dropped (rate/2) or replaced by the mask token (rate/2).

Every copy is drawn from a generator seeded by (seed, the sentence's text, the copy's number):
the same settings give the same copies, so the teacher's outputs on them are cached like any
other's.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..tasks.tokens import OUTSIDE, strict_entities, tag_type

RATE = 0.15


def mentions_by_type(words: list[list[str]], tags: list[list[str]]) -> dict[str, list[tuple[str, ...]]]:
    """Every distinct entity mention in the data, by type, in first-seen order."""
    out: dict[str, dict[tuple[str, ...], None]] = {}
    for w, t in zip(words, tags):
        for kind, a, b in sorted(strict_entities(t), key=lambda e: e[1]):
            out.setdefault(kind, {})[tuple(w[a:b])] = None
    return {k: list(v) for k, v in out.items()}


def _copy(words: list[str], tags: list[str], mentions: dict, rng: np.random.Generator, mask_token: str,
          rate: float) -> tuple[list[str], list[str]]:
    starts = {a: (kind, b) for kind, a, b in strict_entities(tags)}
    out_w, out_t, i = [], [], 0
    while i < len(words):
        if i in starts:
            kind, end = starts[i]
            span = tuple(words[i:end])
            if rng.random() < 0.5 and len(mentions.get(kind, ())) > 1:
                span = mentions[kind][int(rng.integers(len(mentions[kind])))]
            out_w += list(span)
            out_t += [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
            i = end
            continue
        r = rng.random()
        if tag_type(tags[i])[0] != OUTSIDE:  # an I-X that starts nothing (strict BIO2 drops it): kept as is
            out_w.append(words[i]), out_t.append(tags[i])
        elif r >= rate:
            out_w.append(words[i]), out_t.append(tags[i])
        elif r >= rate / 2:
            out_w.append(mask_token), out_t.append(OUTSIDE)
        i += 1
    return (out_w, out_t) if out_w else (list(words), list(tags))


def entity_copies(words: list[list[str]], tags: list[list[str]], copies: int, seed: int, mask_token: str,
                  rate: float = RATE) -> tuple[list[list[str]], list[list[str]]]:
    """`copies` perturbed copies of each sentence (words, tags), in sentence order."""
    mentions = mentions_by_type(words, tags)
    out_w, out_t = [], []
    for w, t in zip(words, tags):
        key = zlib.crc32("\x1f".join(w).encode())
        for c in range(copies):
            cw, ct = _copy(w, t, mentions, np.random.default_rng([seed, key, c]), mask_token, rate)
            out_w.append(cw), out_t.append(ct)
    return out_w, out_t
