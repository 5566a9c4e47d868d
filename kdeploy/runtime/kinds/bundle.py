"""A kdeploy bundle (folder or archive) through its own predictor, timed from text to probabilities."""
from __future__ import annotations

import numpy as np

from ...errors import KdeployError
from ...modelio.sizes import mib
from .base import Candidate, register_kind


class _BundleTokens:
    """The bundle's own tokenizer.json, answering like a transformers tokenizer (numpy), for the
    bench's padding and token accounting; the timed call tokenises again, inside the bundle."""

    def __init__(self, predictor):
        self.predictor = predictor

    def __call__(self, texts, text_pair=None, truncation=True, max_length=None, padding=True, return_tensors="np"):
        items = list(zip(texts, text_pair)) if text_pair is not None else list(texts)
        rows = [e.ids[:max_length] if max_length else e.ids for e in self.predictor._encode(items)]
        longest = max(map(len, rows), default=1) or 1
        ids = np.full((len(rows), longest), self.predictor.manifest.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        return {"input_ids": ids, "attention_mask": mask}


@register_kind("bundle", needs=("onnxruntime", "tokenizers"), applies_to="bundle")
def _bundle(name, path, ctx) -> Candidate:
    """A bundle of any format (python, onnx-e2e, web; folder or archive), timed end to end: text in, probabilities out."""
    from ...edge import Predictor

    if ctx.provider != "cpu":
        raise KdeployError(f"{path}: bundles are timed on the CPU here (their predictor's default)")
    predictor = Predictor(path, threads=ctx.threads)
    model = predictor.folder / predictor.manifest.model

    def run(enc: dict) -> np.ndarray:  # one call, as predict() makes it, read back as logits by the task kind
        return predictor.kind.logits_of(predictor.outputs(enc["texts"]))

    cand = Candidate(name, "bundle", path, mib(path) if path.is_dir() else mib(path), _BundleTokens(predictor),
                     predictor.max_length, run, provider=f"{predictor.manifest.kind} bundle", threads=ctx.threads,
                     precision=predictor.manifest.dtype if predictor.manifest.dtype in ("int8", "fp32") else "fp32",
                     end_to_end=True, keep=predictor, thresholds=predictor.threshold_array)
    if model.suffix == ".onnx" and not predictor.e2e:
        from ..macs import onnx_mac_count

        cand.macs = onnx_mac_count(model)
    return cand
