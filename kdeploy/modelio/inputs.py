"""How texts become model inputs: one tokenising call for single texts and sentence pairs,
and the one filter (which tokenizer outputs a model takes) every runtime uses."""
from __future__ import annotations

import numpy as np

from ..errors import KdeployError

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def select_inputs(encoding, names=MODEL_INPUTS, as_int64: bool = False, required: bool = False) -> dict:
    """The entries of a tokenizer's output that the model declares (`names`).

    With `required`, every declared name must be produced (token_type_ids defaults to zeros,
    as BERT does for a single text); with `as_int64`, values become int64 numpy arrays (ONNX).
    """
    out = {}
    for name in names:
        if name in encoding:
            value = encoding[name]
        elif required and name == "token_type_ids":
            value = np.zeros_like(np.asarray(encoding["input_ids"], dtype=np.int64))
        elif required:
            raise KdeployError(f"the model needs input {name!r}, which the tokenizer does not produce")
        else:
            continue
        out[name] = np.asarray(value, dtype=np.int64) if as_int64 else value
    return out


def is_pair(item) -> bool:
    return isinstance(item, (tuple, list))


def tokenize(tokenizer, texts, max_length: int | None, padding=True, return_tensors: str | None = None,
             truncation: bool = True, pair_truncation: str = "longest_first"):
    """A transformers tokenizer over strings, or over (first, second) pairs: [CLS] a [SEP] b [SEP]
    with token_type_ids 0/1, the pair truncated by `pair_truncation` (longest_first: tokens
    come off the longer text first, as BERT's own pair handling does)."""
    texts = list(texts)
    if texts and is_pair(texts[0]):
        return tokenizer([t[0] for t in texts], [t[1] for t in texts], max_length=max_length, padding=padding,
                         truncation=pair_truncation if truncation else False, return_tensors=return_tensors)
    return tokenizer(texts, truncation=truncation, max_length=max_length, padding=padding,
                     return_tensors=return_tensors)
