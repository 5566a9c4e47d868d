"""Which tokenizer outputs a model takes: the one filter every runtime uses."""
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
