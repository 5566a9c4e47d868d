"""PyTorch inference over texts: one batch, or many in length-sorted batches."""
from __future__ import annotations

import numpy as np
import torch

from ..progress import progress_bar
from .batching import batched_logits
from .inputs import select_inputs, tokenize


@torch.inference_mode()
def torch_logits(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """One padded batch through the model, on the model's device."""
    device = next(model.parameters()).device
    enc = tokenize(tokenizer, texts, max_length, return_tensors="pt")
    inputs = {k: v.to(device) for k, v in select_inputs(enc).items()}
    return model(**inputs).logits.float().cpu().numpy()


def compute_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                   description: str | None = None) -> np.ndarray:
    """Every text through the model in eval mode, in length-sorted batches; input order kept."""
    model.eval()
    if description is None:
        return batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), texts, batch_size)
    with progress_bar(description, total=len(texts)) as advance:
        return batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), texts, batch_size, advance)


def chunked_logits(model, tokenizer, texts: list[str], max_length: int, description: str | None = None) -> np.ndarray:
    """Chunk-and-pool: a text longer than the window is read as consecutive windows of it (cut at
    token boundaries, each re-tokenised as a text of its own) and its logits are the mean over
    them; a text that fits is read once, exactly as `compute_logits` reads it."""
    body = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    pieces, owner = [], []
    for i, text in enumerate(texts):
        spans = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True,
                          verbose=False)["offset_mapping"]
        windows = [spans[k:k + body] for k in range(0, len(spans), body)] if len(spans) > body else []
        pieces += [text[w[0][0]:w[-1][1]] for w in windows] or [text]
        owner += [i] * max(1, len(windows))
    logits = compute_logits(model, tokenizer, pieces, max_length, description=description)
    pooled = np.zeros((len(texts), logits.shape[1]), dtype=np.float64)
    np.add.at(pooled, np.asarray(owner), logits)
    return (pooled / np.bincount(owner, minlength=len(texts))[:, None]).astype(np.float32)


REFERENCE_TEXTS = 16  # validation texts whose logits a trained model records
RELOAD_TOLERANCE = 1e-4


def reference_logits(model, tokenizer, texts: list, max_length: int) -> dict:
    """The logits of the model as training left it (in memory) on a few texts: recorded with
    the model, so a stage that loads it from disk can prove it is the same model."""
    texts = list(texts)[:REFERENCE_TEXTS]
    logits = compute_logits(model, tokenizer, texts, max_length) if texts else np.zeros((0, 0))
    return {"texts": [list(t) if isinstance(t, tuple) else t for t in texts], "max_length": int(max_length),
            "logits": logits.astype(float).tolist()}


def check_reloaded(reference: dict | None, model, tokenizer, where: str) -> float | None:
    """Max |Δlogit| between the model loaded from `where` and its recorded reference (None when
    nothing was recorded); past RELOAD_TOLERANCE the model on disk is not the one trained."""
    if not reference or not reference.get("texts"):
        return None
    texts = [tuple(t) if isinstance(t, list) else t for t in reference["texts"]]
    got = compute_logits(model, tokenizer, texts, int(reference["max_length"]))
    want = np.asarray(reference["logits"], dtype=np.float64)
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if diff > RELOAD_TOLERANCE:
        from ..errors import KdeployError

        raise KdeployError(f"{where}: the model loaded from disk is not the one training ended with (its logits "
                           f"move by {diff:.2e} on the {len(texts)} texts recorded in kdeploy.json, tolerance "
                           f"{RELOAD_TOLERANCE:.0e}); its architecture rebuilds differently on load, or the files "
                           "were changed: train it again")
    return diff
