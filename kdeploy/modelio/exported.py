"""The `kdeploy` block that export writes into a model's config.json: how every runtime must
read the model (window, truncation, inputs, labels, pairs, session settings). Declared, read
and written here only, so each reader gets the same typed values and the same defaults.
Torch-free."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..names import MODEL_CONFIG

KEY = "kdeploy"  # the block's key in config.json


@dataclass
class ExportedModel:
    max_length: int | None = None
    label_names: list[str] | None = None
    inputs: list[str] | None = None
    outputs: list[str] = field(default_factory=lambda: ["logits"])
    opset: int | None = None
    pairs: bool | None = None  # None: the config says nothing (a model from elsewhere)
    task: str = "classification"  # a task kind's name (kdeploy.tasks)
    thresholds: dict | None = None  # multi-label: {label: decision threshold}, tuned on validation
    pair_truncation: str = "longest_first"
    truncation: str | None = None  # kdeploy.truncation's strategy; None: head (pairs never truncate this way)
    session: dict = field(default_factory=dict)  # file name -> onnxruntime session settings
    pooling: dict | None = None  # an embedder's: {pooling, normalize, dimension}, done inside the graph

    @classmethod
    def from_config(cls, config: dict) -> ExportedModel | None:
        """The block of a parsed config.json; None when it has none. A value of the wrong
        type reads as absent (a hand-edited config must not crash a reader)."""
        block = config.get(KEY) if isinstance(config, dict) else None
        if not isinstance(block, dict):
            return None
        kinds = {"max_length": int, "label_names": list, "inputs": list, "outputs": list, "opset": int,
                 "pairs": bool, "task": str, "pair_truncation": str, "truncation": str, "session": dict,
                 "thresholds": dict, "pooling": dict}
        values = {f.name: block[f.name] for f in fields(cls)
                  if f.name in block and isinstance(block[f.name], kinds[f.name])
                  and not (kinds[f.name] is int and isinstance(block[f.name], bool))}
        return cls(**values)

    @classmethod
    def read(cls, folder: str | Path) -> ExportedModel | None:
        """The block of `folder/config.json`; None without one (or with a config that is not JSON)."""
        path = Path(folder) / MODEL_CONFIG
        try:
            return cls.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def session_of(self, file_name: str) -> dict:
        return dict(self.session.get(file_name) or {})

    def to_json(self, *only: str) -> dict:
        """The block as config.json holds it (`only`: just these keys, as the web bundle keeps)."""
        out = asdict(self)
        for key in ("truncation", "thresholds"):
            if out[key] is None:
                out.pop(key)
        return {k: out[k] for k in only} if only else out
