"""The predictor for devices: onnxruntime, tokenizers and numpy only — no torch, no transformers.

    pip install onnxruntime tokenizers numpy   # plus this file's package, kdeploy, without extras
    from kdeploy.edge import Predictor
    p = Predictor("bundle.tar.gz")
    p.predict(["a gripping film"])  # [{"label": "positive", "score": 0.97, "probabilities": {...}}]

A bundle's files are checked against the sha256 in its manifest before anything is loaded.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import KdeployError
from .safety import safe_extract, sha256_of

MANIFEST = "kdeploy.json"
BUNDLE_FORMAT = "kdeploy-bundle/1"


class BundleError(KdeployError):
    pass


def verify_bundle(folder: str | os.PathLike) -> dict:
    """Read the manifest and check every file it lists; raise BundleError on any mismatch."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder}: no {MANIFEST}; not a kdeploy bundle (make one with kdeploy package)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc.msg})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: unknown bundle format {manifest.get('format')!r}; expected {BUNDLE_FORMAT}")
    for name, info in manifest.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{folder}: {name} is missing from the bundle")
        if sha256_of(file) != info["sha256"]:
            raise BundleError(f"{folder}: {name} does not match its sha256 in {MANIFEST}; "
                              "the bundle was modified or damaged, refusing to load it")
    return manifest


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class Predictor:
    """Loads a verified bundle (folder or .tar.gz/.zip) and classifies text."""

    def __init__(self, bundle: str | os.PathLike, threads: int | None = None, provider: str = "cpu",
                 extract_to: str | os.PathLike | None = None, model_format: str = "onnx"):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        bundle = Path(bundle)
        if not bundle.exists():
            raise BundleError(f"{bundle}: no such bundle")
        if bundle.is_file():
            self._tmp = None
            if extract_to is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="kdeploy-bundle-")
                extract_to = self._tmp.name
            bundle = safe_extract(bundle, extract_to)
            inner = [p for p in bundle.iterdir() if p.is_dir()]
            if not (bundle / MANIFEST).exists() and len(inner) == 1:
                bundle = inner[0]
        self.folder = bundle
        self.manifest = verify_bundle(bundle)
        m = self.manifest
        self.labels: list[str] = m["label_names"]
        self.max_length: int = m["max_length"]
        self.tokenizer = Tokenizer.from_file(str(bundle / m["tokenizer"]))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=m["pad_token_id"], pad_token=m["pad_token"])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
        if model_format not in ("onnx", "ort"):
            raise BundleError(f"model_format must be onnx or ort, got {model_format!r}")
        if model_format == "ort" and not m.get("ort_model"):
            raise BundleError(f"{bundle}: the bundle has no ORT-format model; package it with --ort-format")
        model = m["ort_model"] if model_format == "ort" else m["model"]
        self.session = ort.InferenceSession(str(bundle / model), options, providers=providers)
        self._inputs = [i.name for i in self.session.get_inputs()]

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
        if isinstance(texts, str):
            texts = [texts]
        results: list[dict] = [{}] * len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")  # batches of similar length pad little
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            probs = _softmax(self.logits([texts[i] for i in idx]))
            for i, p in zip(idx, probs):
                k = int(p.argmax())
                results[i] = {"label": self.labels[k], "score": float(p[k]),
                              "probabilities": {l: float(v) for l, v in zip(self.labels, p)}}
        return results
