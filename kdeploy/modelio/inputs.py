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


TRUNCATION_ATTR = "kdeploy_truncation"  # set on a tokenizer: which tokens of a long text its model reads


def set_truncation(tokenizer, spec: str | None):
    """Make `tokenize` cut long single texts by `spec` (kdeploy.truncation: head, tail,
    head+tail:N) for this tokenizer: the model is read the way it was trained."""
    from ..truncation import check

    setattr(tokenizer, TRUNCATION_ATTR, check(spec) if spec else "head")
    return tokenizer


def truncation_of_tokenizer(tokenizer) -> str:
    return getattr(tokenizer, TRUNCATION_ATTR, "head")


def special_counts_of(tokenizer) -> tuple[int, int]:
    """(special tokens before, after) a single text, as this tokenizer's post-processor adds them."""
    from ..truncation import special_counts

    known = getattr(tokenizer, "_kdeploy_specials", None)
    if known is None:
        mask = tokenizer("a", return_special_tokens_mask=True)["special_tokens_mask"]
        known = special_counts(mask) if 0 in mask else (1, 1)
        tokenizer._kdeploy_specials = known
    return known


def tokenize(tokenizer, texts, max_length: int | None, padding=True, return_tensors: str | None = None,
             truncation: bool = True, pair_truncation: str = "longest_first"):
    """A transformers tokenizer over strings, or over (first, second) pairs: [CLS] a [SEP] b [SEP]
    with token_type_ids 0/1, the pair truncated by `pair_truncation` (longest_first: tokens
    come off the longer text first, as BERT's own pair handling does). A long single text is
    cut by the tokenizer's truncation (`set_truncation`; head unless set)."""
    texts = list(texts)
    if texts and is_pair(texts[0]):
        return tokenizer([t[0] for t in texts], [t[1] for t in texts], max_length=max_length, padding=padding,
                         truncation=pair_truncation if truncation else False, return_tensors=return_tensors)
    spec = truncation_of_tokenizer(tokenizer)
    if spec == "head" or not truncation or max_length is None:
        return tokenizer(texts, truncation=truncation, max_length=max_length, padding=padding,
                         return_tensors=return_tensors)
    return _cut_and_pad(tokenizer, texts, max_length, spec, padding, return_tensors)


def _cut_and_pad(tokenizer, texts: list[str], max_length: int, spec: str, padding, return_tensors):
    """Tokenise whole, keep the positions `spec` keeps (kdeploy.truncation), then pad."""
    from transformers import BatchEncoding

    from ..truncation import cut, keep_first

    first = keep_first(spec, max_length, *special_counts_of(tokenizer))
    whole = tokenizer(texts, truncation=False, padding=False, verbose=False)
    rows = {k: [cut(r, max_length, first) for r in v] for k, v in whole.items()}
    if not padding:
        return BatchEncoding(rows, tensor_type=return_tensors)
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True  # the cut happens between the two calls
    return tokenizer.pad(rows, padding=padding, max_length=max_length if padding == "max_length" else None,
                         return_tensors=return_tensors)
