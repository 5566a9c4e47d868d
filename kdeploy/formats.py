"""The bundle formats, one entry each with both of its sides: the writer that lays the bundle
out (package, on the workstation) and the reader that opens it (the predictor, on the device),
with the model card's "Use" section and what `kdeploy package` says after writing one. Adding
a format is one entry here plus its two functions. Torch-free: both sides are named as
"module:function" and imported only when used, so the device side never imports the writer's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .registry import named as _named


@dataclass(frozen=True)
class BundleFormat:
    name: str
    doc: str  # what the bundle is for, and what runs it
    writer: str  # (tmp, export_dir, source, manifest, settings, export, data) -> (file names, gate figures or None)
    reader: str  # (folder, manifest, model file, provider, threads, allow_fallback, spin_wait) -> a session
    card: str  # (manifest) -> the model card's "Use" lines
    after: str | None = None  # what `kdeploy package` says once it is written ({bundle}: its folder)

    def write(self) -> Callable:
        return _named(self.writer)

    def read(self) -> Callable:
        return _named(self.reader)

    def use(self) -> Callable:
        return _named(self.card)


FORMATS: dict[str, BundleFormat] = {f.name: f for f in (
    BundleFormat("python", "model.onnx + tokenizer.json for kdeploy.edge.Predictor / kdeploy predict (or an OpenVINO IR)",
                 writer="kdeploy.package.writers:python", reader="kdeploy.edge:read_python",
                 card="kdeploy.package.card:use_python"),
    BundleFormat("onnx-e2e", "one ONNX file, text in and label out (the tokenizer as onnxruntime-extensions ops)",
                 writer="kdeploy.package.writers:e2e", reader="kdeploy.edge:read_e2e",
                 card="kdeploy.package.card:use_e2e"),
    BundleFormat("web", "the folder transformers.js loads offline, with an index.html page (onnxruntime-web WASM)",
                 writer="kdeploy.package.writers:web", reader="kdeploy.edge:read_python",
                 card="kdeploy.package.card:use_web",
                 after="web page: put transformers.js in {bundle}/vendor/ (the npm commands are in its README.md), "
                       "run `python -m http.server 8000 -d {bundle}` and open http://localhost:8000/index.html"),
)}
