"""The predictor for devices: onnxruntime, tokenizers and numpy only — no torch, no transformers.

    pip install kdeploy            # the slim core: onnxruntime + tokenizers + numpy (+ the CLI's typer/rich/pyyaml)
    from kdeploy.edge import Predictor
    p = Predictor("bundle.tar.gz")
    p.predict(["a gripping film"])  # [{"label": "positive", "score": 0.97, "probabilities": {...}}]

A bundle is verified before anything in it is trusted: from an archive only the files its
manifest lists are extracted, each within its listed size and checked against its sha256;
the label names must be the ones bound into the model; the session must run on the provider
asked for (a fallback is refused unless allowed).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import KdeployError
from .manifest import (LEGACY_FORMAT, LEGACY_MANIFEST, MANIFEST, METADATA_KEY, BundleError, BundleManifest,
                       bundle_digest, verify_bundle)

__all__ = ["Predictor", "BundleError", "verify_bundle"]


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _extract(archive: Path, target: Path, expected_digest: str | None) -> Path:
    """Only the manifest's files, each capped at its size and checked while it streams."""
    from .safety import extract_listed, read_member

    name, raw = read_member(archive, {MANIFEST, LEGACY_MANIFEST})
    if expected_digest is not None and bundle_digest(raw) != expected_digest.strip():
        raise BundleError(f"{archive}: the bundle digest is {bundle_digest(raw)}, not the pinned {expected_digest}; "
                          "refusing it")
    manifest = BundleManifest.parse(raw, f"{archive}:{name}")
    folder = target / (name.parent.name or "bundle")
    extract_listed(archive, name.parent, {n: {"bytes": e.bytes, "sha256": e.sha256} for n, e in manifest.files.items()},
                   folder)
    (folder / name.name).write_bytes(raw)
    return folder


class Predictor:
    """Loads a verified bundle (folder or .tar.gz/.zip) and classifies text."""

    def __init__(self, bundle: str | os.PathLike, threads: int | None = None, provider: str = "cpu",
                 extract_to: str | os.PathLike | None = None, model_format: str = "onnx",
                 allow_fallback: bool = False, expected_digest: str | None = None):
        from tokenizers import Tokenizer

        from .modelio.onnx_session import create_session

        if model_format not in ("onnx", "ort"):
            raise BundleError(f"model_format must be onnx or ort, got {model_format!r}")
        bundle = Path(bundle)
        if not bundle.exists():
            raise BundleError(f"{bundle}: no such bundle")
        self._tmp = None
        if bundle.is_file():
            if extract_to is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="kdeploy-bundle-")
                extract_to = self._tmp.name
            bundle = _extract(bundle, Path(extract_to), expected_digest)
        self.folder = bundle
        self.manifest = verify_bundle(bundle, expected_digest)
        m = self.manifest
        if model_format == "ort" and not m.ort_model:
            raise BundleError(f"{bundle}: the bundle has no ORT-format model; package it with --ort-format")
        self.labels: list[str] = list(m.label_names)
        self.max_length: int = m.max_length
        try:
            self.tokenizer = Tokenizer.from_file(str(bundle / m.tokenizer))
        except Exception as exc:  # the tokenizers library raises its own exception type
            raise BundleError(f"{bundle}: cannot read {m.tokenizer} ({str(exc).splitlines()[0]})") from None
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=m.pad_token_id, pad_token=m.pad_token)
        model = m.ort_model if model_format == "ort" else m.model
        self.session = create_session(bundle / model, provider, threads, allow_fallback)
        self._check_labels(bundle / model)
        self._inputs = [i.name for i in self.session.get_inputs()]

    def _check_labels(self, model: Path) -> None:
        import json

        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY in meta:
            try:
                bound = json.loads(meta[METADATA_KEY])
            except json.JSONDecodeError:
                bound = None
            if bound != self.labels:
                raise BundleError(f"{self.folder}: the manifest's label names {self.labels} differ from the ones "
                                  f"bound into {model.name} ({bound}); refusing the bundle")
        elif self.manifest.format != LEGACY_FORMAT and model.suffix == ".onnx":
            raise BundleError(f"{self.folder}: {model.name} carries no label names ({METADATA_KEY}); "
                              "re-package the export with kdeploy package")
        outputs = self.session.get_outputs()[0].shape
        if outputs and isinstance(outputs[-1], int) and outputs[-1] != len(self.labels):
            raise BundleError(f"{self.folder}: the model has {outputs[-1]} outputs but the manifest names "
                              f"{len(self.labels)} labels; refusing the bundle")

    @property
    def digest(self) -> str:
        return bundle_digest((self.folder / (MANIFEST if (self.folder / MANIFEST).exists() else LEGACY_MANIFEST))
                             .read_bytes())

    def logits(self, texts: list[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch([t if isinstance(t, str) else str(t) for t in texts])
        feeds = {}
        for name in self._inputs:
            if name == "input_ids":
                feeds[name] = np.array([e.ids for e in encs], dtype=np.int64)
            elif name == "attention_mask":
                feeds[name] = np.array([e.attention_mask for e in encs], dtype=np.int64)
            elif name == "token_type_ids":
                feeds[name] = np.array([e.type_ids for e in encs], dtype=np.int64)
            else:
                raise BundleError(f"the model needs input {name!r}, which a tokenizer does not produce")
        return self.session.run(None, feeds)[0].astype(np.float32)

    def predict(self, texts: list[str] | str, batch_size: int = 32) -> list[dict]:
        """One result per text, in order: {"label", "score", "probabilities"}."""
        from .modelio.batching import buckets

        if isinstance(texts, str):
            texts = [texts]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise KdeployError(f"batch size must be a whole number of at least 1, got {batch_size!r}")
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        results: list[dict] = [{}] * len(texts)
        for idx in buckets(texts, batch_size):  # batches of similar length pad little
            probs = _softmax(self.logits([texts[i] for i in idx]))
            for i, p in zip(idx, probs):
                k = int(p.argmax())
                results[i] = {"label": self.labels[k], "score": float(p[k]),
                              "probabilities": {label: float(v) for label, v in zip(self.labels, p)}}
        return results

