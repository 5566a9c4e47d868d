"""A model folder's kdeploy record (`kdeploy.json`) and what it implies, read without torch."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KdeployError
from ..names import BUNDLE_MANIFEST, MODEL_CONFIG, MODEL_RECORD  # noqa: F401  (MODEL_RECORD: re-exported)
from .exported import ExportedModel

DEFAULT_MAX_LENGTH = 128  # what training uses unless told otherwise
POSITION_CAP = 512


def read_record(model_dir: str | Path) -> dict:
    """The record kdeploy wrote beside a model, as JSON, or {} for a model from elsewhere. Only
    `ModelRecord` reads it; a stage that adds to a record (prune) copies it whole."""
    path = Path(model_dir) / MODEL_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KdeployError(f"{path}: not a valid kdeploy record ({exc}); remove it or re-run the stage") from None
    return record if isinstance(record, dict) else {}


@dataclass(frozen=True)
class ModelRecord:
    """What later stages read of a model kdeploy trained (its kdeploy.json), parsed in this one
    place: the window it was trained with, how it cut long texts, its data, the encoder it
    started from, its reference logits and its pruning. Torch-free; a model from elsewhere
    gives an empty record (falsy). The stage's own typed view is `TrainingResult`."""

    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, model_dir: str | Path) -> "ModelRecord":
        folder = Path(model_dir)
        return cls(read_record(folder) if folder.is_dir() else {})

    def __bool__(self) -> bool:
        return bool(self.raw)

    def _at(self, *path: str, kind: type = str):
        """The value at a path of keys, when it is of `kind` (a hand-edited type reads as absent)."""
        value = self.raw
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)) else None

    @property
    def max_length(self) -> int | None:
        """The token window training used (records of every version: settings.train or train)."""
        return self._at("config", "settings", "train", "max_length", kind=int) or \
            self._at("config", "train", "max_length", kind=int)

    @property
    def truncation(self) -> str | None:
        return self._at("data", "truncation")

    @property
    def retention(self):
        """The student's verdict against its teacher and the trivial answer (None: not a distilled
        student, or a record from before verdicts)."""
        from ..retention import Retention

        return Retention.from_record(self._at("retention", kind=dict))

    @property
    def thresholds(self) -> dict[str, float] | None:
        """Multi-label: each label's decision threshold, tuned on validation when the model was trained."""
        raw = self._at("thresholds", kind=dict)
        if not raw or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
                              for v in raw.values()):
            return None
        return {str(k): float(v) for k, v in raw.items()}

    @property
    def pairs(self) -> bool | None:
        """Whether the training data were text pairs (None: the record does not say)."""
        return bool(self._at("data", "pairs", kind=bool)) if self._at("data", "label_names", kind=list) else None

    @property
    def data_config(self) -> dict | None:
        """The data configuration training was given (for `data_still_there`)."""
        return self._at("config", "data", kind=dict) or None

    @property
    def base_model(self) -> str | None:
        """The model training started from (a fine-tuned teacher's encoder)."""
        return self._at("model", "model")

    @property
    def reference(self) -> dict | None:
        """Logits of the model as training left it, on a few texts: a reload must give them back."""
        return self._at("reference", kind=dict) or None

    @property
    def pruning(self) -> dict | None:
        return self._at("pruning", kind=dict) or None

    @property
    def provenance(self) -> dict:
        """What an export keeps of where its model came from (stage, teachers, T, α, data)."""
        kept = {k: self.raw[k] for k in ("stage", "teacher", "model", "alpha", "temperature")
                if self.raw.get(k) is not None}
        return {**kept, "data": self.data_config} if self.data_config else kept


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MODEL_CONFIG
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KdeployError(f"{path}: not valid JSON ({exc})") from None


def truncation_of(model_dir: str | Path) -> str | None:
    """How a model reads a long text (kdeploy.truncation), as recorded: an export's config,
    else the data record of its training; None for a model from elsewhere (read: head)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        return None
    exported = ExportedModel.from_config(read_config(folder))
    if exported and exported.truncation:
        return exported.truncation
    return ModelRecord.of(folder).truncation


#: Models whose position ids start after the padding index: two of their positions are never read.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "bart", "mbart")


def position_limit(config: dict) -> int | None:
    """How many tokens a model's position embeddings can read (None: no position table, as
    kdeploy's BiLSTM, CNN and static students)."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return None
    return positions - 2 if config.get("model_type") in _OFFSET_POSITIONS else positions


def check_max_length(given: int | None, config: dict, where: str) -> None:
    """Refuse a --max-length the model cannot read, before any work (past its position table
    the model would fail deep inside, or silently wrap)."""
    limit = position_limit(config)
    if given and limit and int(given) > limit:
        raise KdeployError(f"--max-length {given} is more than {where} can read: its position embeddings hold "
                           f"{limit} tokens; give --max-length {limit} or less (longer documents: split them, "
                           "or use a long-context model)")


def check_room(max_length: int, tokenizer, pairs: bool) -> None:
    """Refuse a window that holds only special tokens: `--max-length 2` made every text
    `[CLS][SEP]`, and the model learned nothing from the texts, silently."""
    try:
        specials = tokenizer.num_special_tokens_to_add(pair=pairs)
    except (AttributeError, TypeError):  # a tokenizer without the count: nothing to check against
        return
    need = specials + (2 if pairs else 1)
    if max_length < need:
        raise KdeployError(f"--max-length {max_length} leaves no room for the text: the tokenizer adds {specials} "
                           f"special tokens per {'pair' if pairs else 'text'}; give --max-length {need} or more "
                           "(32 or more to read a sentence)")


def resolve_max_length(given: int | None, model_dir: str | Path, positions: int | None = None,
                       tokenizer_limit: int | None = None) -> int:
    """The one rule for how many tokens a model reads: what was asked (within its position
    table); else what it was trained with (its record, or an export's config); else its
    position limit, capped at 512."""
    model_dir = Path(model_dir)
    if given:
        config = read_config(model_dir)
        if positions and "max_position_embeddings" not in config:
            config = {**config, "max_position_embeddings": positions}
        check_max_length(given, config, f"the model in {model_dir}")
        return int(given)
    recorded = ModelRecord.of(model_dir).max_length
    if recorded:
        return recorded
    config = read_config(model_dir)
    exported = ExportedModel.from_config(config)
    if exported and exported.max_length:
        return exported.max_length
    limits = [v for v in (positions or config.get("max_position_embeddings"), tokenizer_limit, POSITION_CAP) if v]
    return int(min(limits))


def label_names_in(model_dir: str | Path) -> list[str] | None:
    """A model folder's label names in id order (from config.json, torch-free), or None when
    they are transformers' LABEL_0.. placeholders."""
    import re

    config = read_config(model_dir)
    exported = ExportedModel.from_config(config)
    names = exported.label_names if exported else None
    if not names:
        id2label = config.get("id2label") or {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else None
    if not names or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return list(names)


def pairs_of_model(path: str | Path) -> bool | None:
    """Whether a model reads text pairs, as the model itself says (an export's config, a
    bundle's manifest, the record of the data it was trained on); None for a model from
    elsewhere, which says nothing. The data given to export or bench must be of this kind."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    value = _manifest_value(folder, "pairs")
    if isinstance(value, bool):
        return value
    exported = ExportedModel.from_config(read_config(folder))
    if exported and exported.pairs is not None:
        return exported.pairs
    return ModelRecord.of(folder).pairs


def _manifest_value(folder: Path, key: str):
    """One value of a bundle folder's manifest, unchecked (None without a readable one)."""
    manifest = folder / BUNDLE_MANIFEST
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get(key)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def check_data_kind(model: str | Path, pairs: bool, where: str, known: bool | None = None) -> None:
    """Refuse data of the other kind: a one-text model scored on pairs (or the reverse) gives
    an accuracy that means nothing, and an export would record the data's kind as the model's."""
    known = pairs_of_model(model) if known is None else known  # `known`: what a loaded bundle's manifest said
    if known is None or known == bool(pairs):
        return
    model_kind, data_kind = ("text pairs", "single texts") if known else ("single texts", "text pairs")
    raise KdeployError(f"{model}: the model reads {model_kind}, but the {where} holds {data_kind}; give data of the "
                       f"model's kind" + (" (two text columns, e.g. sentence1/sentence2)" if known else
                                          " (one text column)"))


def task_of_model(path: str | Path) -> str | None:
    """The task kind a model was trained for, as the model itself says (a bundle's manifest, an
    export's config block, a trained folder's config.json problem_type); None where nothing says.
    Data given to export or bench is read as this task: the model says what its labels are."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    value = _manifest_value(folder, "task")
    if isinstance(value, str):
        return value
    config = read_config(folder)
    from .st_folder import is_embedder

    if ExportedModel.from_config(config) is None and is_embedder(folder):
        from ..tasks import TASKS

        return next(t.name for t in TASKS.values() if t.sentence_vectors)
    exported = ExportedModel.from_config(config)
    if exported is not None:
        return exported.task
    if config:
        from ..tasks import kind_of_config

        return kind_of_config(config).name
    return None


def as_model_task(data, task: str | None):
    """A DataConfig read as the model's task (`task`, from `task_of_model` or its config): the
    model says what its labels are, so export and bench need no --task. Unchanged when the model
    says nothing."""
    import dataclasses

    return data if task is None or data.task == task else dataclasses.replace(data, task=task)
