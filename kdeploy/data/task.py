"""Loading and normalising: every source becomes `TaskData`: splits of `text` (and `text_pair`
for sentence-pair tasks) with a `label` (ClassLabel, or a float score for regression)."""
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
# A score task's target: STS-B's and SICK's own column names first, then the classification names
SCORE_COLUMNS = ("score", "similarity_score", "relatedness_score", "similarity", "relatedness") + LABEL_COLUMNS
# Two text columns that make a pair when both are present (first match wins).
PAIR_COLUMNS = (("sentence1", "sentence2"), ("premise", "hypothesis"), ("question1", "question2"),
                ("query", "passage"), ("query", "document"), ("question", "answer"), ("question", "sentence"),
                ("text", "text_pair"))


@dataclass
class TaskData:
    """The splits (`text`, `label`), the label names in id order, and a content fingerprint."""

    splits: Any  # datasets.DatasetDict
    label_names: list[str]  # classes in id order; for regression, the one score's name
    fingerprint: str
    sources: dict[str, str] = field(default_factory=dict)
    ids_only: bool = False  # the labels were bare integers with no names given
    pairs: bool = False  # examples are (text, text_pair)
    task: str = "classification"
    pair_truncation: str = "longest_first"
    truncation: str | None = None  # single texts past max_length: head, tail, head+tail[:N]; None: the model's own

    @property
    def num_labels(self) -> int:
        return 1 if self.task == "regression" else len(self.label_names)

    def texts(self, split: str) -> list:
        """The split's inputs: strings, or (first, second) tuples for a pair task."""
        ds = self.splits[split]
        return list(zip(ds["text"], ds["text_pair"])) if self.pairs else list(ds["text"])

    @property
    def eval_split(self) -> str:
        """The split that scores a model: test when there is one."""
        return "test" if "test" in self.splits else "validation" if "validation" in self.splits else "train"

    def require_train(self, stage: str) -> None:
        if "train" not in self.splits:
            raise KdeployError(f"{stage} trains, so it needs training data: give --train FILE or --dataset NAME")

    def split_fingerprint(self, split: str) -> str:
        return fingerprint_of(self.texts(split), self.splits[split]["label"], self.label_names)

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
        if model_names is None or self.task == "regression":
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
            **({"pairs": True} if self.pairs else {}), **({"task": self.task} if self.task != "classification" else {}),
            **({"truncation": self.truncation} if self.truncation and not self.pairs else {}),
        }


def features_of(names: list[str], pairs: bool, task: str):
    import datasets

    columns = {"text": datasets.Value("string")}
    if pairs:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = datasets.Value("float32") if task == "regression" else datasets.ClassLabel(names=names)
    return datasets.Features(columns)


def _renamed(data: TaskData, names: list[str], mapping: list[int] | None) -> TaskData:
    import datasets

    features = features_of(names, data.pairs, data.task)
    splits = {}
    for split, ds in data.splits.items():
        labels = [mapping[v] for v in ds["label"]] if mapping else list(ds["label"])
        columns = {"text": list(ds["text"]), **({"text_pair": list(ds["text_pair"])} if data.pairs else {}),
                   "label": labels}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    splits = datasets.DatasetDict(splits)
    return replace(data, splits=splits, label_names=list(names), fingerprint=_fingerprint(splits, names, data.pairs),
                   ids_only=False)


def _as_text(item) -> str:
    """One example's text(s) as one string for hashing: a pair's halves joined by \x1f."""
    return "\x1f".join(item) if isinstance(item, (tuple, list)) else f"{item}"


def fingerprint_of(texts: list, labels: list, label_names: list[str]) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(label_names).encode())
    for text, label in zip(texts, labels):
        h.update(f"{label}\x1e{_as_text(text)}\x1d".encode())
    return h.hexdigest()[:16]


def text_fingerprint(texts: list) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(f"{_as_text(text)}\x1d".encode())
    return h.hexdigest()[:16]


def _fingerprint(splits, label_names: list[str], pairs: bool = False) -> str:
    h = hashlib.sha256()
    for name, ds in splits.items():
        h.update(name.encode())
        texts = list(zip(ds["text"], ds["text_pair"])) if pairs else ds["text"]
        h.update(fingerprint_of(texts, ds["label"], label_names).encode())
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


def data_still_there(raw: dict | None) -> DataConfig | None:
    """A recorded data configuration (a record's, an export report's provenance) as a DataConfig,
    when its files are still there; None otherwise."""
    from ..configtools import from_dict

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


def _headerless(columns: dict) -> bool:
    """Whether a file's "column names" read like a row of data (a file with no header line):
    none is a known column name, and one is a number or holds a space."""
    names = [str(c) for c in columns]
    known = set(TEXT_COLUMNS) | set(SCORE_COLUMNS) | {n for pair in PAIR_COLUMNS for n in pair}
    return not known & set(names) and any(" " in n.strip() or n.strip().lstrip("-").replace(".", "", 1).isdigit()
                                          for n in names)


def _pick(columns: dict, wanted: str | None, candidates: tuple[str, ...], what: str, where: str, flag: str) -> str:
    if wanted in columns or (not wanted and any(c in columns for c in candidates)):
        return wanted or next(c for c in candidates if c in columns)
    if _headerless(columns):  # a flag cannot name a column the file has no header for
        raise KdeployError(f"{where}: the first line ({', '.join(map(str, columns))[:80]!r}) reads like data, not a "
                           "header; add a header line naming the columns (e.g. sentence<TAB>label)")
    if wanted:
        raise KdeployError(f"{where}: no column {wanted!r} (columns: {', '.join(map(str, columns))}); set {flag}")
    raise KdeployError(f"{where}: no {what} column among {', '.join(map(str, columns))}; name it with {flag}")


def text_columns(columns: dict, cfg: DataConfig, where: str) -> tuple[str, str | None]:
    """(first text column, second text column or None): --text-pair-column, else a known pair
    of columns (sentence1/sentence2, premise/hypothesis, …) when both are there, else one text."""
    if cfg.text_pair_column:
        second = _pick(columns, cfg.text_pair_column, (), "second text", where, "--text-pair-column")
        first_default = tuple(a for a, b in PAIR_COLUMNS if b == second) + TEXT_COLUMNS
        return _pick(columns, cfg.text_column, first_default, "text", where, "--text-column"), second
    if cfg.text_column is None:
        for first, second in PAIR_COLUMNS:
            if first in columns and second in columns:
                return first, second
    return _pick(columns, cfg.text_column, TEXT_COLUMNS, "text", where, "--text-column"), None


def _check_texts(texts, column: str, where: str, cfg: DataConfig, second: bool) -> None:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise KdeployError(f"{where}: row {i + 1} has no text in column {column!r} (got {t!r})")
        if second and not t.strip():
            raise KdeployError(f"{where}: row {i + 1} has an empty second text in column {column!r}; a pair task "
                               "needs both texts (drop the row, or use --text-column for one-text examples)")
        if cfg.reject_replacement_characters and "\ufffd" in t:
            raise KdeployError(f"{where}: row {i + 1} holds U+FFFD (an undecodable character); fix the file's "
                               "encoding, or drop reject_replacement_characters")


def _parse_split(split: str, entry, cfg: DataConfig) -> tuple[list[str], list[str] | None, list, str] | None:
    columns, where = entry[0], entry[1]
    tcol, pcol = text_columns(columns, cfg, where)
    lcol = _pick(columns, cfg.label_column, SCORE_COLUMNS if cfg.task == "regression" else LABEL_COLUMNS,
                 "score" if cfg.task == "regression" else "label", where, "--label-column")
    texts, labels = columns[tcol], columns[lcol]
    if len(texts) == 0:
        raise KdeployError(f"{where}: the {split} split is empty")
    _check_texts(texts, tcol, where, cfg, second=False)
    if not any(t.strip() for t in texts):
        raise KdeployError(f"{where}: every text in column {tcol!r} of the {split} split is empty; is the text in "
                           "another column? (name it with --text-column)")
    pairs = None
    if pcol is not None:
        pairs = columns[pcol]
        _check_texts(pairs, pcol, where, cfg, second=True)
        pairs = list(pairs)
    if all(is_missing(v) for v in labels):  # hub test splits without labels (GLUE uses -1) cannot be scored
        if split == "train":
            raise KdeployError(f"{where}: the train split has no labels")
        note(f"{where} has no labels; it is not used")
        return None
    for i, v in enumerate(labels):
        if is_missing(v):
            raise KdeployError(f"{where}: row {i + 1} has no label in column {lcol!r}")
    return list(texts), pairs, list(labels), where


def _scores(labels: list, where: str) -> list[float]:
    out = []
    for i, v in enumerate(labels):
        try:
            value = float(v)
        except (TypeError, ValueError):
            raise KdeployError(f"{where}: row {i + 1} has label {v!r}, not a number; a regression task needs "
                               "numeric scores (or drop --task regression for classes)") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise KdeployError(f"{where}: row {i + 1} has a non-finite score {v!r}")
        out.append(value)
    return out


def _looks_like_scores(labels: list) -> bool:
    """Numbers that are not all whole: a score column given to a classification task."""
    try:
        values = [float(v) for v in labels]
    except (TypeError, ValueError):
        return False
    return any(v != int(v) for v in values if v == v and abs(v) != float("inf"))


def _normalise(raw: dict, cfg: DataConfig, sources: dict) -> TaskData:
    import datasets

    parsed: dict[str, tuple[list[str], list[str] | None, list, str]] = {}
    class_names: list[str] | None = None
    for split, entry in raw.items():
        if entry[2] is not None:
            class_names = entry[2][1]
        rows = _parse_split(split, entry, cfg)
        if rows is not None:
            parsed[split] = rows
    if not parsed:
        raise KdeployError("no labelled data in any split")
    pair_splits = {s for s, r in parsed.items() if r[1] is not None}
    if pair_splits and pair_splits != set(parsed):
        single = sorted(set(parsed) - pair_splits)
        raise KdeployError(f"{parsed[single[0]][3]}: one text per row, but {parsed[next(iter(pair_splits))][3]} has "
                           "pairs; give every split both columns (or --text-column to use one)")
    pairs = bool(pair_splits)
    space_split = "train" if "train" in parsed else next(iter(parsed))
    encoded = {}
    if cfg.task == "regression":
        label_names = [cfg.label_column or "score"]
        for split, (texts, seconds, labels, where) in parsed.items():
            encoded[split] = {"text": texts, **({"text_pair": seconds} if pairs else {}), "label": _scores(labels, where)}
        ids_only = False
    else:
        all_labels = [v for s in ([space_split] if space_split == "train" else parsed) for v in parsed[s][2]]
        if _looks_like_scores(all_labels):
            raise KdeployError(f"{parsed[space_split][3]}: the labels look like scores ({', '.join(map(str, all_labels[:3]))}"
                               ", …); for a score task use --task regression")
        label_names, to_id, ids_only = label_space(all_labels, class_names, cfg.label_names, parsed[space_split][3])
        if space_split == "train" and len(label_names) < 2:
            raise KdeployError(f"{parsed['train'][3]}: train has only one label ({label_names[0]!r}); "
                               "a classifier needs at least two")
        for split, (texts, seconds, labels, where) in parsed.items():
            ids = []
            for i, v in enumerate(labels):
                key = label_key(v)
                if key not in to_id:
                    raise KdeployError(f"{where}: label {v!r} (row {i + 1}) never occurs in train "
                                       f"(train labels: {', '.join(label_names)})")
                ids.append(to_id[key])
            encoded[split] = {"text": texts, **({"text_pair": seconds} if pairs else {}), "label": ids}

    features = features_of(label_names, pairs, cfg.task)
    splits = datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in encoded.items()})
    if "train" in splits and "validation" not in splits:
        _carve_validation(splits, cfg, sources, parsed["train"][3])
    if cfg.max_train_samples and "train" in splits and len(splits["train"]) > cfg.max_train_samples:
        splits["train"] = splits["train"].shuffle(seed=cfg.split_seed).select(range(cfg.max_train_samples))
    if cfg.max_eval_samples:
        for name in ("validation", "test"):
            if name in splits and len(splits[name]) > cfg.max_eval_samples:
                splits[name] = splits[name].shuffle(seed=cfg.split_seed).select(range(cfg.max_eval_samples))
    splits = datasets.DatasetDict({k: splits[k] for k in ("train", "validation", "test") if k in splits})
    return TaskData(splits=splits, label_names=label_names, fingerprint=_fingerprint(splits, label_names, pairs),
                    sources=sources, ids_only=ids_only, pairs=pairs, task=cfg.task, pair_truncation=cfg.pair_truncation,
                    truncation=cfg.truncation)


def _carve_validation(splits, cfg: DataConfig, sources: dict, where: str) -> None:
    """A seeded validation split from train, stratified when every class can give one example."""
    from collections import Counter

    train = splits["train"]
    regression = cfg.task == "regression"
    if (not regression and len(set(train["label"])) < 2) or len(train) < 10:
        raise KdeployError(f"{where}: too little training data to carve a validation split; give --validation")
    import math

    if regression:
        carved = train.train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed)
        splits["train"], splits["validation"] = carved["train"], carved["test"]
        sources["validation"] = f"{cfg.validation_fraction:.0%} of train, seed {cfg.split_seed}"
        return

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
