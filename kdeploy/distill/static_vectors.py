"""Static token vectors from a teacher's own encoder, the model2vec recipe (Tulkens & van
Dongen, 2024): every vocabulary token alone through the encoder ([CLS] token [SEP]), its
outputs averaged, reduced by PCA, and weighted down by an estimate of its frequency (SIF with
Zipf's law by token rank) so that frequent, uninformative tokens count less in a mean.

Written here rather than imported: the `model2vec` package's distiller needs huggingface-hub 1.x,
which the pinned transformers (4.57) cannot load beside; the arithmetic is the same.
"""
from __future__ import annotations

import numpy as np
import torch

from ..progress import progress_bar


@torch.inference_mode()
def token_vectors(teacher, tokenizer, batch_size: int = 512) -> np.ndarray:
    """[vocab, hidden]: each token's mean output over [CLS] token [SEP] in the teacher's encoder."""
    encoder = teacher.base_model if hasattr(teacher, "base_model") else teacher
    encoder.eval()
    device = next(encoder.parameters()).device
    vocab = len(tokenizer)
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    prefix, suffix = ([cls] if cls is not None else []), ([sep] if sep is not None else [])
    out = np.zeros((vocab, encoder.config.hidden_size), dtype=np.float32)
    with progress_bar("static token vectors", total=vocab) as advance:
        for start in range(0, vocab, batch_size):
            ids = torch.tensor([prefix + [i] + suffix for i in range(start, min(vocab, start + batch_size))],
                               device=device)
            hidden = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            out[start:start + len(ids)] = hidden.float().mean(1).cpu().numpy()
            advance(len(ids))
    return np.nan_to_num(out)


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """The first `dims` principal components (signs fixed so the result is deterministic)."""
    dims = min(dims, x.shape[1], x.shape[0])
    centred = x - x.mean(0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / max(len(x) - 1, 1))
    components = eigvecs[:, ::-1][:, :dims].T
    scores = centred @ components.T
    signs = np.sign(scores[np.abs(scores).argmax(0), range(scores.shape[1])])
    return (scores * np.where(signs == 0, 1, signs)).astype(np.float32)


def sif_weights(vocab: int, coefficient: float = 1e-4) -> np.ndarray:
    """a / (a + p(token)), p estimated by Zipf's law from the token's rank (its id)."""
    inv_rank = 1.0 / np.arange(2, vocab + 2)
    p = inv_rank / inv_rank.sum()
    return (coefficient / (coefficient + p)).astype(np.float32)


def static_vectors(teacher, tokenizer, dims: int, sif: float = 1e-4) -> np.ndarray:
    vectors = pca(token_vectors(teacher, tokenizer), dims)
    return vectors * sif_weights(len(vectors), sif)[:, None]
