"""A model folder's kdeploy record (`kdeploy.json`) and what it implies, read without torch."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import KdeployError

MODEL_RECORD = "kdeploy.json"
DEFAULT_MAX_LENGTH = 128  # what training uses unless told otherwise
POSITION_CAP = 512


def read_record(model_dir: str | Path) -> dict:
    """The record kdeploy wrote beside a model, or {} for a model from elsewhere."""
    path = Path(model_dir) / MODEL_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KdeployError(f"{path}: not a valid kdeploy record ({exc}); remove it or re-run the stage") from None
    return record if isinstance(record, dict) else {}


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KdeployError(f"{path}: not valid JSON ({exc})") from None


def trained_max_length(record: dict) -> int | None:
    train = ((record.get("config") or {}).get("settings") or record.get("config") or {}).get("train") or {}
    value = train.get("max_length")
    return int(value) if isinstance(value, int) else None


def resolve_max_length(given: int | None, model_dir: str | Path, positions: int | None = None,
                       tokenizer_limit: int | None = None) -> int:
    """The one rule for how many tokens a model reads: what was asked; else what it was
    trained with (its record, or an export's config); else its position limit, capped at 512."""
    if given:
        return int(given)
    model_dir = Path(model_dir)
    recorded = trained_max_length(read_record(model_dir))
    if recorded:
        return recorded
    config = read_config(model_dir)
    exported = (config.get("kdeploy") or {}).get("max_length")
    if exported:
        return int(exported)
    limits = [v for v in (positions or config.get("max_position_embeddings"), tokenizer_limit, POSITION_CAP) if v]
    return int(min(limits))


def label_names_in(model_dir: str | Path) -> list[str] | None:
    """A model folder's label names in id order (from config.json, torch-free), or None when
    they are transformers' LABEL_0.. placeholders."""
    import re

    config = read_config(model_dir)
    names = (config.get("kdeploy") or {}).get("label_names")
    if not names:
        id2label = config.get("id2label") or {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else None
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return list(names)
