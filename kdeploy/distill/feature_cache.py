"""The teacher's intermediate features (hidden states, attention maps, embedding output),
computed once per (teacher, text, layers) and kept on disk like its logits.

The teacher runs in eval mode, so its features are a pure function of the text: caching
them makes an intermediate-layer distillation epoch cost about a logits-only one instead
of adding a teacher forward pass to every step. Ragged per-example arrays are stored
flat (fp16) with offsets and read back memory-mapped.
"""
from __future__ import annotations

import contextlib

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..fsutil import cache_lock
from ..modelio.heads import eager_attention
from ..modelio.inputs import select_inputs, tokenize
from ..progress import progress_bar
from .logits_cache import cache_root

KINDS = ("hidden", "attention", "embedding")


def feature_key(teacher_fingerprint: str, text_fingerprint: str, max_length: int, layers: list[int],
                kinds: set[str]) -> str:
    spec = f"f1|{teacher_fingerprint}|{text_fingerprint}|{max_length}|{layers}|{sorted(kinds)}"
    return hashlib.sha256(spec.encode()).hexdigest()[:24]


@dataclass
class FeatureStore:
    """Per-example teacher features, indexed like the training set."""

    lengths: np.ndarray  # tokens per example
    offsets: np.ndarray  # token offset of each example in the flat token arrays
    hidden: np.ndarray | None = None  # [Σ tokens, layers, width]
    embedding: np.ndarray | None = None  # [Σ tokens, width]
    attention: np.ndarray | None = None  # flat: per example layers × heads × L × L
    attention_offsets: np.ndarray | None = None
    layers: int = 0
    heads: int = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx: list[int], padded: int) -> dict[str, torch.Tensor]:
        """Features for examples `idx`, zero-padded to `padded` tokens (right padding, as the collator)."""
        out: dict[str, torch.Tensor] = {}
        n = len(idx)
        if self.hidden is not None:
            h = np.zeros((n, self.layers, padded, self.hidden.shape[-1]), dtype=np.float32)
            for row, i in enumerate(idx):
                a, L = self.offsets[i], self.lengths[i]
                h[row, :, :L] = np.swapaxes(self.hidden[a:a + L], 0, 1)
            out["hidden"] = torch.from_numpy(h)
        if self.embedding is not None:
            e = np.zeros((n, padded, self.embedding.shape[-1]), dtype=np.float32)
            for row, i in enumerate(idx):
                a, L = self.offsets[i], self.lengths[i]
                e[row, :L] = self.embedding[a:a + L]
            out["embedding"] = torch.from_numpy(e)
        if self.attention is not None:
            att = np.zeros((n, self.layers, self.heads, padded, padded), dtype=np.float32)
            for row, i in enumerate(idx):
                a, L = self.attention_offsets[i], self.lengths[i]
                att[row, :, :, :L, :L] = self.attention[a:a + self.layers * self.heads * L * L].reshape(
                    self.layers, self.heads, L, L)
            out["attention"] = torch.from_numpy(att)
        return out


@torch.inference_mode()
def compute_features(model, tokenizer, texts: list[str], max_length: int, layers: list[int], kinds: set[str],
                     folder: Path, batch_size: int = 32) -> None:
    """Run the teacher over `texts` and write the requested features into `folder`."""
    model.eval()
    device = next(model.parameters()).device
    lengths = np.array([len(ids) for ids in tokenize(tokenizer, texts, max_length, padding=False)["input_ids"]],
                       dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    width = model.config.hidden_size
    heads = model.config.num_attention_heads
    total = int(lengths.sum())
    arrays = {}
    if "hidden" in kinds:
        arrays["hidden"] = np.lib.format.open_memmap(folder / "hidden.npy", mode="w+", dtype=np.float16,
                                                     shape=(total, len(layers), width))
    if "embedding" in kinds:
        arrays["embedding"] = np.lib.format.open_memmap(folder / "embedding.npy", mode="w+", dtype=np.float16,
                                                        shape=(total, width))
    att_offsets = None
    if "attention" in kinds:
        sizes = len(layers) * heads * lengths ** 2
        att_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        arrays["attention"] = np.lib.format.open_memmap(folder / "attention.npy", mode="w+", dtype=np.float16,
                                                        shape=(int(sizes.sum()),))
    order = np.argsort(lengths, kind="stable")
    with progress_bar("teacher features", total=len(texts)) as advance, \
            (eager_attention(model) if "attention" in kinds else contextlib.nullcontext()):
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenize(tokenizer, [texts[i] for i in idx], max_length, return_tensors="pt")
            enc = {k: v.to(device) for k, v in select_inputs(enc).items()}
            out = model(**enc, output_hidden_states=True, output_attentions="attention" in kinds)
            for row, i in enumerate(idx):
                L, a = int(lengths[i]), int(offsets[i])
                if "hidden" in kinds:
                    h = torch.stack([out.hidden_states[t + 1][row, :L] for t in layers], dim=1)
                    arrays["hidden"][a:a + L] = h.float().cpu().numpy()
                if "embedding" in kinds:
                    arrays["embedding"][a:a + L] = out.hidden_states[0][row, :L].float().cpu().numpy()
                if "attention" in kinds:
                    att = torch.stack([out.attentions[t][row, :, :L, :L] for t in layers])
                    b = int(att_offsets[i])
                    arrays["attention"][b:b + att.numel()] = att.float().cpu().numpy().ravel()
            advance(len(idx))
    for array in arrays.values():
        array.flush()
    np.save(folder / "lengths.npy", lengths)
    if att_offsets is not None:
        np.save(folder / "attention_offsets.npy", att_offsets)
    (folder / "meta.json").write_text(json.dumps({"examples": len(texts), "layers": layers, "heads": heads,
                                                  "width": width, "kinds": sorted(kinds), "max_length": max_length}))


def cached_teacher_features(model, tokenizer, texts: list[str], key: str, max_length: int, layers: list[int],
                            kinds: set[str], cache_dir: Path | None = None) -> tuple[FeatureStore, bool]:
    """Return (store, was_cached); a half-written cache never becomes visible (temp dir + rename)."""
    root = (cache_dir or cache_root()) / "teacher-features"
    folder = root / key
    hit = (folder / "meta.json").exists()
    if not hit:
        with cache_lock(folder):
            hit = (folder / "meta.json").exists()  # another process may have written it while we waited
            if not hit:
                tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
                try:
                    compute_features(model, tokenizer, texts, max_length, layers, kinds, tmp)
                    if folder.exists():  # a damaged entry without meta.json
                        shutil.rmtree(folder)
                    os.replace(tmp, folder)
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
    return load_store(folder), hit


def load_store(folder: Path) -> FeatureStore:
    meta = json.loads((folder / "meta.json").read_text())
    lengths = np.load(folder / "lengths.npy")
    load = lambda name: np.load(folder / name, mmap_mode="r") if (folder / name).exists() else None  # noqa: E731
    return FeatureStore(
        lengths=lengths,
        offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        hidden=load("hidden.npy"), embedding=load("embedding.npy"), attention=load("attention.npy"),
        attention_offsets=load("attention_offsets.npy"), layers=len(meta["layers"]), heads=meta["heads"],
    )
