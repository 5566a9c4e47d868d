"""Whether a folder is a sentence-transformers embedder: standard library only, so records, the
export stage and the loader can ask without loading anything."""
from __future__ import annotations

import json
from pathlib import Path

from ..names import MODEL_CONFIG

MODULES = "modules.json"  # sentence-transformers' list of the model's modules
_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")  # MaskedLM: what
# all-mpnet-base-v2 and others still name in their config (its base's architecture), not a head they use


def is_embedder(folder: str | Path) -> bool:
    """A sentence-transformers folder whose encoder has no task head (a CrossEncoder's has one)."""
    folder = Path(folder)
    if not (folder / MODULES).is_file():
        return False
    try:
        architectures = json.loads((folder / MODEL_CONFIG).read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return True
    return not any(str(a).endswith(_HEADS) for a in architectures)
