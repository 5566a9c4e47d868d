"""Words and sub-tokens: the one place the labelling rule of an entity tagger lives (a word's tag
sits on its first sub-token; the others carry -100), on both sides of a model:

- in: words (CoNLL's, or a text's own) → token ids with a label per first sub-token;
- out: a model's per-token outputs → one row per word, and a raw text's words → entity spans
  with character offsets.

Torch-free: the device predictor reads outputs with the same functions training wrote labels with.
"""
from __future__ import annotations

import numpy as np

from ..tasks.base import IGNORE_INDEX
from ..tasks.tokens import NO_GOLD, OUTSIDE, word_spans

UNREAD = -1e4  # the logit of every tag but O for a word past the window: it is answered O, and said


def encode_words(tokenizer, words: list[list[str]], max_length: int, tags: list[list[int]] | None = None,
                 padding: bool | str = False, return_tensors: str | None = None) -> tuple[dict, list[int]]:
    """(the tokenizer's inputs with `labels` — each word's tag, or NO_GOLD without tags, on its
    first sub-token, -100 elsewhere — , how many words each sentence lost to the window)."""
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, padding=padding,
                    return_tensors=return_tensors)
    labels, cut = [], []
    for i, sentence in enumerate(words):
        ids = enc.word_ids(i)
        row, seen = [], set()
        for w in ids:
            if w is None or w in seen:
                row.append(IGNORE_INDEX)
            else:
                seen.add(w)
                row.append(int(tags[i][w]) if tags is not None else NO_GOLD)
        labels.append(row)
        cut.append(len(sentence) - len(seen))
    enc["labels"] = np.asarray(labels) if return_tensors else labels
    return enc, cut


def first_positions(word_ids: list) -> dict[int, int]:
    """{word index: position of its first sub-token}."""
    out: dict[int, int] = {}
    for position, w in enumerate(word_ids):
        if w is not None and w not in out:
            out[w] = position
    return out


def word_rows(token_logits: np.ndarray, word_ids: list, n_words: int) -> np.ndarray:
    """One row of logits per word (its first sub-token's); a word past the window reads O."""
    width = token_logits.shape[-1]
    out = np.full((n_words, width), UNREAD, dtype=np.float64)
    out[:, 0] = 0.0
    for w, position in first_positions(word_ids).items():
        if w < n_words:
            out[w] = token_logits[position]
    return out


def text_spans(text: str, offsets: list, word_ids: list, probabilities: np.ndarray,
               label_names: list[str]) -> list[dict]:
    """The entities of a raw text: its words as the tokenizer splits them (transformers' pipeline
    with aggregation "first": a word's tag and score are its first sub-token's), grouped by
    `word_spans`; each with character offsets into `text` and the mean score of its words."""
    ranges: dict[int, list[int]] = {}
    for (start, end), w in zip(offsets, word_ids):
        if w is None or end <= start:
            continue
        r = ranges.setdefault(w, [start, end])
        r[0], r[1] = min(r[0], start), max(r[1], end)
    order = sorted(ranges)
    first = first_positions(word_ids)
    tags, scores = [], []
    for w in order:
        p = probabilities[first[w]]
        best = int(np.argmax(p))
        tags.append(label_names[best]), scores.append(float(p[best]))
    out = []
    for kind, a, b in word_spans(tags):
        start, end = ranges[order[a]][0], ranges[order[b - 1]][1]
        out.append({"entity": kind, "score": round(float(np.mean(scores[a:b])), 6), "start": int(start),
                    "end": int(end), "text": text[start:end]})
    return out


def read_in_windows(encs: list, max_length: int, width: int, run) -> list[np.ndarray]:
    """Per-token rows [tokens, width] of each whole encoding, a text longer than the window read in
    overlapping windows (`kdeploy.truncation.windows`) and each token taken from the window that
    gives it the most context (`owners`). `run(pieces)` yields (indices into pieces, per-token
    outputs [batch, positions, width]) for the window encodings it is given, in any grouping."""
    from ..truncation import Window, owners, special_counts, windows

    counts = [special_counts(e.special_tokens_mask) if e.ids else (0, 0) for e in encs]
    spans = [windows(len(e.ids), max_length, *c) for e, c in zip(encs, counts)]
    pieces, where = [], []  # each window fed to the model, and (its text, which window)
    for i, (e, ranges, (prefix, suffix)) in enumerate(zip(encs, spans, counts)):
        for w, (a, b) in enumerate(ranges):
            pieces.append(e if len(ranges) == 1 else Window(e, a, b, prefix, suffix))
            where.append((i, w, prefix))
    taken = [owners(ranges, len(e.ids)) for e, ranges in zip(encs, spans)]
    rows = [np.zeros((len(e.ids), width)) for e in encs]
    for idx, outputs in run(pieces):
        for k, p in zip(idx, outputs):
            i, w, prefix = where[k]
            p = p[:len(pieces[k].ids)]
            if len(spans[i]) == 1:
                rows[i][:len(p)] = p
                continue
            a, b = spans[i][w]
            mine = [j for j in range(a, b) if taken[i][j] == w]
            rows[i][mine] = p[[prefix + j - a for j in mine]]
    return rows


__all__ = ["encode_words", "first_positions", "word_rows", "text_spans", "read_in_windows", "OUTSIDE", "IGNORE_INDEX"]
