"""Label names written into the ONNX model itself, so that a manifest cannot relabel it."""
from __future__ import annotations

import json
from pathlib import Path

from ..manifest import METADATA_KEY


def bind_labels(src: Path, dst: Path, labels: list[str]) -> None:
    """Copy the model with its label names in its own metadata, so a manifest cannot relabel it."""
    import onnx

    model = onnx.load(str(src))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(labels, ensure_ascii=False)
    onnx.save(model, str(dst))
