"""Loading and normalising: every source becomes `TaskData` (splits of text + ClassLabel)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..console import note
from ..errors import KdeployError
from .config import DataConfig
from .files import file_kind, read_table, read_text_lines
from .labels import alignment, is_missing, label_key, label_space

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "sentence1")
LABEL_COLUMNS = ("label", "labels", "category", "class", "target")


@dataclass
class TaskData:
    """The splits (`text`, `label`), the label names in id order, and a content fingerprint."""

    splits: Any  # datasets.DatasetDict
    label_names: list[str]
    fingerprint: str
    sources: dict[str, str] = field(default_factory=dict)
    ids_only: bool = False  # the labels were bare integers with no names given

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def eval_split(self) -> str:
        """The split that scores a model: test when there is one."""
        return "test" if "test" in self.splits else "validation" if "validation" in self.splits else "train"

    def require_train(self, stage: str) -> None:
        if "train" not in self.splits:
            raise KdeployError(f"{stage} trains, so it needs training data: give --train FILE or --dataset NAME")

    def split_fingerprint(self, split: str) -> str:
        return fingerprint_of(self.splits[split]["text"], self.splits[split]["label"], self.label_names)

    def with_train(self, train) -> "TaskData":
        """The same task with another training split (labelled data plus transfer text)."""
        import datasets

        if train is self.splits["train"]:
            return self
        splits = datasets.DatasetDict({**self.splits, "train": train})
        return replace(self, splits=splits)

    def aligned_to(self, model_names: list[str] | None, what: str) -> "TaskData":
        """The data with its label ids renumbered to a model's label order (names matched
        case-insensitively; bare integer ids take the model's names)."""
        if model_names is None:
            return self
        mapping, message = alignment(self.label_names, model_names, self.ids_only, what)
        if message:
            note(message)
        if mapping is None:
            return self if self.label_names == model_names else _renamed(self, model_names, None)
        return _renamed(self, model_names, mapping)

    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "fingerprint": self.fingerprint,
            "label_names": self.label_names,
            "sizes": {name: len(ds) for name, ds in self.splits.items()},
        }


def _renamed(data: TaskData, names: list[str], mapping: list[int] | None) -> TaskData:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    splits = {}
    for split, ds in data.splits.items():
        labels = [mapping[v] for v in ds["label"]] if mapping else list(ds["label"])
        splits[split] = datasets.Dataset.from_dict({"text": list(ds["text"]), "label": labels}, features=features)
    splits = datasets.DatasetDict(splits)
    return TaskData(splits=splits, label_names=list(names), fingerprint=_fingerprint(splits, names),
                    sources=data.sources, ids_only=False)


def fingerprint_of(texts: list[str], labels: list[int], label_names: list[str]) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(label_names).encode())
    for text, label in zip(texts, labels):
        h.update(f"{label}\x1e{text}\x1d".encode())
    return h.hexdigest()[:16]


def text_fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(f"{text}\x1d".encode())
    return h.hexdigest()[:16]


def _fingerprint(splits, label_names: list[str]) -> str:
    h = hashlib.sha256()
    for name, ds in splits.items():
        h.update(name.encode())
        h.update(fingerprint_of(ds["text"], ds["label"], label_names).encode())
    return h.hexdigest()[:16]


def load_task_data(cfg: DataConfig) -> TaskData:
    """Load, validate and normalise; every problem is one KdeployError naming what and where."""
    if cfg.dataset:
        from .hub import load_dataset_source

        raw, sources = load_dataset_source(cfg)
    else:
        raw, sources = {}, {}
        for split in ("train", "validation", "test"):
            path = getattr(cfg, split)
            if path:
                columns, where = read_table(Path(path), cfg.encoding, cfg.encoding_errors)
                raw[split] = (columns, where, None)
                sources[split] = str(path)
    return _normalise(raw, cfg, sources)


def recorded_data(record: dict) -> DataConfig | None:
    """The data a model was trained on, from its kdeploy.json, when those files are still there:
    later stages (prune, export) then need no data flags."""
    from ..configtools import from_dict

    raw = (record.get("config") or {}).get("data")
    if not raw:
        return None
    for key in ("train", "validation", "test"):
        if raw.get(key) and not Path(raw[key]).exists():
            return None
    return from_dict(DataConfig, raw, "recorded data")


def load_unlabeled_texts(path: str | Path, text_column: str | None = None, encoding: str = "utf-8",
                         errors: str = "strict") -> list[str]:
    """Unlabelled transfer text: a .txt file with one text per line, or any supported
    table with a text column (labels, if present, are ignored)."""
    path = Path(path)
    if file_kind(path) == ".txt":
        texts = [line.strip() for line in read_text_lines(path, encoding, errors) if line.strip()]
    else:
        columns, where = read_table(path, encoding, errors)
        column = _pick(columns, text_column, TEXT_COLUMNS, "text", where, "--text-column")
        texts = [str(t) for t in columns[column] if not is_missing(t) and str(t).strip()]
    if not texts:
        raise KdeployError(f"{path}: no text in the unlabelled file")
    return texts


def _pick(columns: dict, wanted: str | None, candidates: tuple[str, ...], what: str, where: str, flag: str) -> str:
    if wanted:
        if wanted not in columns:
            raise KdeployError(f"{where}: no column {wanted!r} (columns: {', '.join(map(str, columns))}); set {flag}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise KdeployError(f"{where}: no {what} column among {', '.join(map(str, columns))}; name it with {flag}")


def _parse_split(split: str, entry, cfg: DataConfig) -> tuple[list[str], list, str] | None:
    columns, where = entry[0], entry[1]
    tcol = _pick(columns, cfg.text_column, TEXT_COLUMNS, "text", where, "--text-column")
    lcol = _pick(columns, cfg.label_column, LABEL_COLUMNS, "label", where, "--label-column")
    texts, labels = columns[tcol], columns[lcol]
    if len(texts) == 0:
        raise KdeployError(f"{where}: the {split} split is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise KdeployError(f"{where}: row {i + 1} has no text in column {tcol!r} (got {t!r})")
        if cfg.reject_replacement_characters and "\ufffd" in t:
            raise KdeployError(f"{where}: row {i + 1} holds U+FFFD (an undecodable character); fix the file's "
                               "encoding, or drop reject_replacement_characters")
    if all(is_missing(v) for v in labels):  # hub test splits without labels (GLUE uses -1) cannot be scored
        if split == "train":
            raise KdeployError(f"{where}: the train split has no labels")
        note(f"{where} has no labels; it is not used")
        return None
    for i, v in enumerate(labels):
        if is_missing(v):
            raise KdeployError(f"{where}: row {i + 1} has no label in column {lcol!r}")
    return list(texts), list(labels), where


def _normalise(raw: dict, cfg: DataConfig, sources: dict) -> TaskData:
    import datasets

    parsed: dict[str, tuple[list[str], list, str]] = {}
    class_names: list[str] | None = None
    for split, entry in raw.items():
        if entry[2] is not None:
            class_names = entry[2][1]
        rows = _parse_split(split, entry, cfg)
        if rows is not None:
            parsed[split] = rows
    if not parsed:
        raise KdeployError("no labelled data in any split")
    space_split = "train" if "train" in parsed else next(iter(parsed))
    all_labels = [v for s in ([space_split] if space_split == "train" else parsed) for v in parsed[s][1]]
    label_names, to_id, ids_only = label_space(all_labels, class_names, cfg.label_names, parsed[space_split][2])
    if space_split == "train" and len(label_names) < 2:
        raise KdeployError(f"{parsed['train'][2]}: train has only one label ({label_names[0]!r}); "
                           "a classifier needs at least two")
    encoded = {}
    for split, (texts, labels, where) in parsed.items():
        ids = []
        for i, v in enumerate(labels):
            key = label_key(v)
            if key not in to_id:
                raise KdeployError(f"{where}: label {v!r} (row {i + 1}) never occurs in train "
                                   f"(train labels: {', '.join(label_names)})")
            ids.append(to_id[key])
        encoded[split] = {"text": texts, "label": ids}

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=label_names)})
    splits = datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in encoded.items()})
    if "train" in splits and "validation" not in splits:
        _carve_validation(splits, cfg, sources, parsed["train"][2])
    if cfg.max_train_samples and "train" in splits and len(splits["train"]) > cfg.max_train_samples:
        splits["train"] = splits["train"].shuffle(seed=cfg.split_seed).select(range(cfg.max_train_samples))
    if cfg.max_eval_samples:
        for name in ("validation", "test"):
            if name in splits and len(splits[name]) > cfg.max_eval_samples:
                splits[name] = splits[name].shuffle(seed=cfg.split_seed).select(range(cfg.max_eval_samples))
    splits = datasets.DatasetDict({k: splits[k] for k in ("train", "validation", "test") if k in splits})
    return TaskData(splits=splits, label_names=label_names, fingerprint=_fingerprint(splits, label_names),
                    sources=sources, ids_only=ids_only)


def _carve_validation(splits, cfg: DataConfig, sources: dict, where: str) -> None:
    """A seeded validation split from train, stratified when every class can give one example."""
    from collections import Counter

    train = splits["train"]
    if len(set(train["label"])) < 2 or len(train) < 10:
        raise KdeployError(f"{where}: too little training data to carve a validation split; give --validation")
    import math

    counts = Counter(train["label"])
    held_out = math.ceil(cfg.validation_fraction * len(train))
    rare = [train.features["label"].names[k] for k, n in counts.items() if n < 2]
    stratified = not rare and held_out >= len(counts) and len(train) - held_out >= len(counts)
    if rare:
        note(f"{where}: class {', '.join(map(repr, rare))} occurs once, so the validation split is carved "
             "without stratification; give --validation for a better one")
    elif not stratified:
        note(f"{where}: too few examples to hold out one of each of the {len(counts)} classes, so the validation "
             "split is carved without stratification; give --validation for a better one")
    carved = train.train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed,
                                    stratify_by_column="label" if stratified else None)
    splits["train"], splits["validation"] = carved["train"], carved["test"]
    sources["validation"] = f"{cfg.validation_fraction:.0%} of train, seed {cfg.split_seed}"
