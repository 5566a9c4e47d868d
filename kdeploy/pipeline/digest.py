"""What makes a stage stale, judged by content, never by paths: its settings (defaults
included), the bytes of every file and folder it reads (data, teacher weights, transfer text,
upstream outputs), and the versions of the libraries that change results."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..configtools import to_dict
from ..data import DataConfig
from ..safety import sha256_of

_IGNORED = (".lock",)
RESULT_LIBRARIES = ("kdeploy", "torch", "transformers", "tokenizers", "datasets", "optimum", "optimum-onnx", "onnx",
                    "onnxruntime", "onnxruntime-gpu", "numpy")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def result_versions() -> dict[str, str]:
    from ..environment import library_versions

    return library_versions(RESULT_LIBRARIES)


class Contents:
    """Content digests of paths, each computed once per run."""

    def __init__(self):
        self._memo: dict[Path, str] = {}

    def of(self, path: str | Path) -> str:
        path = Path(path)
        key = path.resolve()
        if key not in self._memo:
            self._memo[key] = self._compute(path)
        return self._memo[key]

    def forget(self, path: str | Path) -> None:
        self._memo.pop(Path(path).resolve(), None)

    @staticmethod
    def _compute(path: Path) -> str:
        if path.is_file():
            return sha256_of(path)
        if path.is_dir():
            h = hashlib.sha256()
            for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(_IGNORED)):
                h.update(f"{f.relative_to(path).as_posix()}\0{sha256_of(f)}\n".encode())
            return h.hexdigest()
        return "missing"

    def of_reference(self, ref: str | None) -> str | None:
        """A model or file given by name: its content when it is local, else the name (a hub id)."""
        if ref is None:
            return None
        if ref.startswith("builtin:"):
            from ..assets import BUILTIN_DIGESTS

            return BUILTIN_DIGESTS.get(ref, ref)
        return self.of(ref) if Path(ref).exists() else f"hub:{ref}"

    def of_data(self, data: DataConfig) -> str:
        spec = to_dict(data)
        for key in ("train", "validation", "test"):
            if spec.get(key):
                spec[key] = self.of(spec[key])
        if data.dataset:
            spec["dataset"] = self.of_reference(data.dataset)
        return _hash(spec)


def stage_digest(name: str, settings, inputs: dict, contents: Contents, data: DataConfig | None) -> str:
    """The digest a finished stage's output must have been made from to count as up to date."""
    def value(v):
        if isinstance(v, (list, tuple)):
            return [value(x) for x in v]
        if isinstance(v, DataConfig):
            return contents.of_data(v)
        if isinstance(v, (str, Path)) and str(v) and (Path(v).exists() or str(v).startswith("builtin:")):
            return contents.of_reference(str(v))
        return to_dict(v)

    spec = {"stage": name, "settings": to_dict(settings), "data": contents.of_data(data) if data else None,
            "inputs": {k: value(v) for k, v in sorted(inputs.items()) if k not in ("resume", "data")},
            "versions": result_versions()}
    return _hash(spec)
