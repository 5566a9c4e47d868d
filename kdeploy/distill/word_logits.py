"""An entity tagger's teacher pass: per-token logits of each training sentence, read as the
student reads it (same tokenizer and window, each word's first sub-token where its tag goes),
and per-word logits of each evaluation sentence for the teacher's own scores. Computed once,
cached by content (teacher weights, the split's words and tags, the window) under
`$KDEPLOY_CACHE/token-logits`, memory-mapped back on a second run.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..progress import progress_bar
from .logits_cache import cache_key, cache_root

BATCH = 32


def _pass(model, tokenizer, words: list[list[str]], max_length: int, advance) -> list[np.ndarray]:
    """Per-token logits of each sentence (its real tokens only), in order."""
    import torch

    from ..modelio.inputs import select_inputs
    from ..modelio.words import encode_words

    out: list[np.ndarray] = [None] * len(words)  # type: ignore[list-item]
    order = np.argsort([len(w) for w in words], kind="stable")  # similar lengths batched: less padding
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            enc, _ = encode_words(tokenizer, [words[i] for i in rows], max_length, padding=True, return_tensors="pt")
            logits = model(**select_inputs(enc)).logits.float().numpy()
            lengths = enc["attention_mask"].sum(1).tolist()
            for i, row, n in zip(rows, logits, lengths):
                out[i] = row[:n].astype(np.float32)
            advance(len(rows))
    return out


def _save(path: Path, rows: list[np.ndarray]) -> None:
    lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    fd, tmp = tempfile.mkstemp(prefix=".kdeploy-", suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, logits=flat, lengths=lengths)
    os.replace(tmp, path)


def _load(path: Path, count: int) -> list[np.ndarray] | None:
    try:
        with np.load(path) as f:
            flat, lengths = f["logits"], f["lengths"]
    except (OSError, ValueError, KeyError):
        return None
    if len(lengths) != count:
        return None
    edges = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[a:b] for a, b in zip(edges[:-1], edges[1:])]


def token_teacher_logits(model, tokenizer, fingerprint: str, data, max_length: int,
                         cache_dir: Path | None = None) -> tuple[dict, dict, float]:
    """({"train": per-token logits per sentence (object array), "validation"/"test": per-word
    logits per sentence}, cache hits per split, seconds)."""
    from ..modelio.words import word_rows

    folder = (cache_dir or cache_root()) / "token-logits"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    out, hits = {}, {}
    todo = {s: list(data.splits[s]["words"]) for s in data.splits}
    with progress_bar("teacher pass", sum(len(w) for w in todo.values())) as advance:
        for split, words in todo.items():
            path = folder / f"{cache_key(fingerprint, data.split_fingerprint(split), max_length, 'words')}.npz"
            rows = _load(path, len(words))
            hits[split] = rows is not None
            if rows is None:
                rows = _pass(model, tokenizer, words, max_length, advance)
                _save(path, rows)
            else:
                advance(len(words))
            if split == "train":
                out[split] = np.empty(len(rows), dtype=object)
                out[split][:] = rows
            else:
                enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
                out[split] = [word_rows(r, enc.word_ids(i), len(w)) for i, (r, w) in enumerate(zip(rows, words))]
    return out, hits, round(time.perf_counter() - started, 2)
