"""Loading and normalising: every source becomes `TaskData`: splits of `text` (and `text_pair`
for sentence-pair tasks) with a `label` in the task kind's schema (`kdeploy.tasks`): a class id,
a float score, or a multi-hot row of labels."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..console import note
from ..errors import KdeployError
from ..tasks import task_kind
from .config import DataConfig
from .files import file_kind, read_table, read_text_lines
from ..tasks.labels import alignment, is_missing

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
    label_names: list[str]  # labels in id order; for a score task, the one score's name
    fingerprint: str
    sources: dict[str, str] = field(default_factory=dict)
    ids_only: bool = False  # the labels were bare integers with no names given
    pairs: bool = False  # examples are (text, text_pair)
    task: str = "classification"
    pair_truncation: str = "longest_first"
    truncation: str | None = None  # single texts past max_length: head, tail, head+tail[:N]; None: the model's own

    @property
    def kind(self):
        """The task kind's registry entry (`kdeploy.tasks.TaskKind`)."""
        from ..tasks import task_kind

        return task_kind(self.task)

    @property
    def num_labels(self) -> int:
        return self.kind.num_labels(self.label_names)

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
        if model_names is None or not self.kind.named_labels:
            return self
        if self.kind.word_labels:  # tags per word: renumbered per word
            return _retagged(self, model_names, what)
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


def _retagged(data: TaskData, names: list[str], where: str) -> TaskData:
    """The data with its tag ids renumbered to a model's tag order (a teacher's)."""
    if names == data.label_names:
        return data
    missing = sorted(set(data.label_names) - set(names))
    if missing:
        raise KdeployError(f"{where} has no tag {', '.join(missing[:5])} (its tags: {', '.join(names)}); the data "
                           "and the model must share one tag set")
    import datasets

    move = [names.index(n) for n in data.label_names]
    splits = datasets.DatasetDict({s: ds.map(lambda b: {"label": [[move[i] for i in x] for x in b["label"]]},
                                              batched=True) for s, ds in data.splits.items()})
    return replace(data, splits=splits, label_names=list(names))


def features_of(names: list[str], pairs: bool, task: str):
    import datasets

    from ..tasks import task_kind

    columns = {"text": datasets.Value("string")}
    if pairs:
        columns["text_pair"] = datasets.Value("string")
    columns["label"] = task_kind(task).label_feature(names)
    return datasets.Features(columns)


def _renamed(data: TaskData, names: list[str], mapping: list[int] | None) -> TaskData:
    import datasets

    features = features_of(names, data.pairs, data.task)
    splits = {}
    for split, ds in data.splits.items():
        labels = _remapped(list(ds["label"]), mapping) if mapping else list(ds["label"])
        columns = {"text": list(ds["text"]), **({"text_pair": list(ds["text_pair"])} if data.pairs else {}),
                   "label": labels}
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    splits = datasets.DatasetDict(splits)
    return replace(data, splits=splits, label_names=list(names), fingerprint=_fingerprint(splits, names, data.pairs),
                   ids_only=False)


def _remapped(labels: list, mapping: list[int]) -> list:
    """Labels renumbered: class ids through the mapping, multi-hot rows with their columns moved."""
    if labels and isinstance(labels[0], list):
        out = []
        for row in labels:
            new = [0.0] * len(row)
            for old, value in enumerate(row):
                new[mapping[old]] = value
            out.append(new)
        return out
    return [mapping[v] for v in labels]


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
    """Load, validate and normalise; every problem is one KdeployError naming what and where.
    (An entity tagger's words and tags: `kdeploy.data.load`.)"""
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
    kind = task_kind(cfg.task)
    texts = columns[tcol]
    if kind.empty_labels and cfg.label_column and "," in cfg.label_column:  # several 0/1 columns, one per label
        lcol, labels = cfg.label_column, _indicator_columns(columns, cfg.label_column, where)
    else:
        lcol = _pick(columns, cfg.label_column, LABEL_COLUMNS if kind.named_labels else SCORE_COLUMNS,
                     "label" if kind.named_labels else "score", where, "--label-column")
        labels = columns[lcol]
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
        if is_missing(v) and not kind.empty_labels:
            raise KdeployError(f"{where}: row {i + 1} has no label in column {lcol!r}")
    return list(texts), pairs, list(labels), where


def _indicator_columns(columns: dict, named: str, where: str) -> list[list[str]]:
    """Several 0/1 columns (--label-column toxic,obscene,threat) as each row's list of names."""
    names = [n.strip() for n in named.split(",") if n.strip()]
    missing = [n for n in names if n not in columns]
    if missing:
        raise KdeployError(f"{where}: no column {missing[0]!r} (columns: {', '.join(map(str, columns))}); "
                           "set --label-column to the 0/1 label columns, joined by ','")
    rows = []
    for i in range(len(columns[names[0]])):
        row = []
        for n in names:
            v = columns[n][i]
            key = str(v).strip()
            if key in ("1", "1.0", "True", "true"):
                row.append(n)
            elif key not in ("0", "0.0", "False", "false", ""):
                raise KdeployError(f"{where}: row {i + 1} has {v!r} in label column {n!r}; each label column "
                                   "holds 0 or 1")
        rows.append(row)
    return rows


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
    kind = task_kind(cfg.task)
    label_names, labels, ids_only = kind.encode_labels(parsed, cfg.label_names, class_names, cfg)
    encoded = {split: {"text": texts, **({"text_pair": seconds} if pairs else {}), "label": labels[split]}
               for split, (texts, seconds, _, _) in parsed.items()}

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
    """A seeded validation split from train (stratified where the task kind can)."""
    splits["train"], splits["validation"] = task_kind(cfg.task).carve(splits["train"], cfg, where)
    sources["validation"] = f"{cfg.validation_fraction:.0%} of train, seed {cfg.split_seed}"
