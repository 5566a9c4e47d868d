"""Which tokens of a long text a model reads: the one rule every runtime applies.

    head         the first max_length tokens (BERT's default; what kdeploy always did)
    tail         the last ones
    head+tail:N  the first N and the last max_length - N (Sun et al. 2019, "How to Fine-Tune
                 BERT for Text Classification?": 128 + 382 was best on IMDb); "head+tail"
                 alone takes a quarter of the window from the head

Counts are of token positions, special tokens included: a text of L > max_length tokens
keeps positions [0, keep_first) and [L - (max_length - keep_first), L), so [CLS] and [SEP]
stay where they were. `keep_first` is what a graph needs (the web model and the e2e file
take the same index rule: position j reads j, or j + L - max_length from keep_first on).
A sentence pair is cut by its own pair rule (longest_first, ...), never by these.
Pure Python: the predictor, the graphs' builders and the trainers all import it.
"""
from __future__ import annotations

import re

from .errors import KdeployError

STRATEGIES = ("head", "tail", "head+tail")
DEFAULT = "head"
_SPEC = re.compile(r"^(head|tail|head\+tail)(?::(\d+))?$")


def check(spec: str) -> str:
    """`spec` if it names a strategy (head, tail, head+tail or head+tail:N), else one clear error."""
    m = _SPEC.match(str(spec).strip()) if isinstance(spec, str) else None
    if not m or (m.group(2) is not None and m.group(1) != "head+tail"):
        raise KdeployError(f"--truncation {spec!r}: give head, tail, head+tail or head+tail:N (N tokens from the "
                           "start, the rest from the end)")
    return str(spec).strip()


def resolve(spec: str, max_length: int) -> str:
    """The canonical form a model records: head, tail, or head+tail:N with N chosen (a quarter
    of the window, 128 of 512 as Sun et al.) and checked against the window."""
    spec = check(spec)
    if not spec.startswith("head+tail"):
        return spec
    head = int(spec.split(":")[1]) if ":" in spec else max_length // 4
    if not 1 <= head <= max_length - 3:
        raise KdeployError(f"--truncation {spec}: the head must keep between 1 and {max_length - 3} of the "
                           f"{max_length} positions (some must stay for the tail and the special tokens)")
    return f"head+tail:{head}"


def refit(spec: str, max_length: int) -> str:
    """A recorded strategy carried to another window: its head count kept where it fits,
    else re-chosen for this window."""
    spec = check(spec)
    if ":" in spec and int(spec.split(":")[1]) > max_length - 3:
        spec = spec.split(":")[0]
    return resolve(spec, max_length)


def keep_first(spec: str, max_length: int, prefix: int = 1, suffix: int = 1) -> int:
    """How many positions a too-long text keeps from its start (specials included); the other
    max_length - keep_first come from its end. `prefix`/`suffix`: special tokens the
    tokenizer puts before and after a single text ([CLS] … [SEP]: 1 and 1)."""
    spec = resolve(spec, max_length)
    if spec == "head":
        return max_length - suffix
    if spec == "tail":
        return prefix
    return prefix + int(spec.split(":")[1])


def kept_positions(length: int, max_length: int, first: int) -> list[int]:
    """The positions of a `length`-token text that stay, in order."""
    if length <= max_length:
        return list(range(length))
    return list(range(first)) + list(range(length - (max_length - first), length))


def cut(row: list, max_length: int, first: int) -> list:
    """One tokenised text (ids, a mask, types: any per-position list) cut to max_length."""
    if len(row) <= max_length:
        return list(row)
    return list(row[:first]) + list(row[len(row) - (max_length - first):])


def special_counts(special_mask: list[int]) -> tuple[int, int]:
    """(specials before the text, specials after it) from one encoding's special-tokens mask."""
    prefix = next((i for i, m in enumerate(special_mask) if not m), len(special_mask))
    suffix = next((i for i, m in enumerate(reversed(special_mask)) if not m), 0)
    return prefix, suffix


def windows(length: int, max_length: int, prefix: int = 1, suffix: int = 1,
            overlap: int | None = None) -> list[tuple[int, int]]:
    """The text positions [a, b) of each window a per-token model reads a `length`-position text
    in (an entity tagger: every token must be read, none cut). Each window is the text's
    specials around up to max_length - prefix - suffix text positions; consecutive windows
    share `overlap` of them (default a quarter), so a token near a window's edge is read again
    with context on both sides (`owners` picks that reading)."""
    body = max_length - prefix - suffix
    start, end = prefix, length - suffix
    if length <= max_length or body < 1:
        return [(start, end)]
    overlap = body // 4 if overlap is None else min(max(overlap, 0), body - 1)
    out, a = [], start
    while True:
        b = min(a + body, end)
        out.append((a, b))
        if b >= end:
            return out
        a += body - overlap


def owners(ranges: list[tuple[int, int]], length: int) -> list[int]:
    """For each position, the window (index into `ranges`) that reads it with the most context
    on its nearer side (the earlier window on a tie); -1 for positions no window reads (specials)."""
    best, owner = [-1] * length, [-1] * length
    for w, (a, b) in enumerate(ranges):
        for j in range(a, b):
            margin = min(j - a, b - 1 - j)
            if margin > best[j]:
                best[j], owner[j] = margin, w
    return owner


class Window:
    """One window of an encoding (`windows`): its specials around positions [a, b)."""

    __slots__ = ("ids", "attention_mask", "type_ids")

    def __init__(self, enc, a: int, b: int, prefix: int, suffix: int):
        n = len(enc.ids)
        for name in self.__slots__:
            row = getattr(enc, name)
            setattr(self, name, list(row[:prefix]) + list(row[a:b]) + list(row[n - suffix:]))


class _Cut:
    """An encoding's three per-position lists after the cut (what a model is fed)."""

    __slots__ = ("ids", "attention_mask", "type_ids")

    def __init__(self, enc, max_length: int, first: int):
        self.ids = cut(enc.ids, max_length, first)
        self.attention_mask = cut(enc.attention_mask, max_length, first)
        self.type_ids = cut(enc.type_ids, max_length, first)


class Reader:
    """A `tokenizers.Tokenizer` that reads texts as a bundle's model does: head truncation by
    the library itself (pairs by `pair_truncation`), tail and head+tail by `cut`."""

    def __init__(self, tokenizer, max_length: int, spec: str = DEFAULT, pair_truncation: str = "longest_first"):
        self.tokenizer, self.max_length, self.spec = tokenizer, max_length, resolve(spec, max_length)
        self.first = None
        if self.spec == "head":
            tokenizer.enable_truncation(max_length=max_length, strategy=pair_truncation)
        else:
            tokenizer.no_truncation()
            probe = tokenizer.encode("a").special_tokens_mask
            self.first = keep_first(self.spec, max_length, *(special_counts(probe) if 0 in probe else (1, 1)))

    def _cut(self, enc):
        return enc if self.first is None or len(enc.ids) <= self.max_length else _Cut(enc, self.max_length, self.first)

    def encode(self, *text):
        return self._cut(self.tokenizer.encode(*text))

    def encode_batch(self, items: list) -> list:
        return [self._cut(e) for e in self.tokenizer.encode_batch(items)]
