"""Scores of a model on labelled text: the one implementation the export gate and the
benchmark both use, so their numbers agree."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..metrics import accuracy, agreement, macro_f1


def batched_logits(run: Callable[[list[str]], np.ndarray], texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Length-sorted batches (little padding); logits returned in input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        logits = np.asarray(run([texts[i] for i in idx]), dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    return out


def onnx_runner(session, tokenizer, max_length: int) -> Callable[[list[str]], np.ndarray]:
    from .session import feed

    output = session.get_outputs()[0].name

    def run(texts: list[str]) -> np.ndarray:
        enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        return session.run([output], feed(session, enc))[0].astype(np.float32)

    return run


def score(logits: np.ndarray, labels: np.ndarray, reference_logits: np.ndarray | None = None) -> dict:
    pred = logits.argmax(-1)
    out = {"accuracy": accuracy(pred, labels), "macro_f1": macro_f1(pred, labels), "examples": int(len(labels))}
    if reference_logits is not None:
        out["agreement"] = agreement(pred, reference_logits.argmax(-1))
    return out
