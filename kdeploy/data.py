"""Every data source becomes one shape: a DatasetDict with `text` and `label` (ClassLabel).

Sources: local CSV/TSV/JSON Lines/Parquet files, a Hugging Face hub dataset
(`imdb`, `glue/sst2`), a `save_to_disk` folder, or the embedded Rotten Tomatoes data.
The label names are kept from here to the exported bundle.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import KdeployError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "sentence1")
LABEL_COLUMNS = ("label", "labels", "category", "class", "target")
_SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test",),
}
_READERS = {".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"}


@dataclass
class DataConfig:
    """Where the labelled data comes from. Either files (`train`, ...) or `dataset`."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    dataset: str | None = None  # hub name ("imdb", "glue/sst2"), save_to_disk folder, or builtin:rotten_tomatoes
    dataset_config: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    label_names: list[str] | None = None  # names for integer labels, in id order
    validation_fraction: float = 0.1  # carved from train (seeded, stratified) when no validation split exists
    split_seed: int = 42
    max_train_samples: int | None = None
    max_eval_samples: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.label_names, str):
            self.label_names = [s.strip() for s in self.label_names.split(",") if s.strip()]
        if not self.train and not self.dataset:
            raise KdeployError("no training data: give --train FILE or --dataset NAME")
        if self.train and self.dataset:
            raise KdeployError("give either --train files or --dataset, not both")
        if not 0.0 < self.validation_fraction < 0.5:
            raise KdeployError(f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KdeployError(f"{name} must be positive, got {value}")


@dataclass
class TaskData:
    """The splits (`text`, `label`), the label names in id order, and a content fingerprint."""

    splits: Any  # datasets.DatasetDict
    label_names: list[str]
    fingerprint: str
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split_fingerprint(self, split: str) -> str:
        return fingerprint_of(self.splits[split]["text"], self.splits[split]["label"], self.label_names)

    def with_train(self, train) -> "TaskData":
        """The same task with another training split (labelled data plus transfer text)."""
        import datasets

        if train is self.splits["train"]:
            return self
        splits = datasets.DatasetDict({**self.splits, "train": train})
        return TaskData(splits=splits, label_names=self.label_names, fingerprint=self.fingerprint, sources=self.sources)

    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "fingerprint": self.fingerprint,
            "label_names": self.label_names,
            "sizes": {name: len(ds) for name, ds in self.splits.items()},
        }


def fingerprint_of(texts: list[str], labels: list[int], label_names: list[str]) -> str:
    h = hashlib.sha256()
    h.update("\x1f".join(label_names).encode())
    for text, label in zip(texts, labels):
        h.update(f"{label}\x1e{text}\x1d".encode())
    return h.hexdigest()[:16]


def load_task_data(cfg: DataConfig) -> TaskData:
    """Load, validate and normalise; every problem is one KdeployError naming what and where."""
    if cfg.dataset:
        raw, sources = _load_dataset_source(cfg)
    else:
        raw = {}
        sources = {}
        for split in ("train", "validation", "test"):
            path = getattr(cfg, split)
            if path:
                raw[split] = _read_file(Path(path))
                sources[split] = str(path)
    return _normalise(raw, cfg, sources)


def recorded_data(record: dict) -> DataConfig | None:
    """The data a model was trained on, from its kdeploy.json, when those files are still there:
    later stages (prune, export) then need no data flags."""
    from .configtools import from_dict

    raw = (record.get("config") or {}).get("data")
    if not raw:
        return None
    for key in ("train", "validation", "test"):
        if raw.get(key) and not Path(raw[key]).exists():
            return None
    return from_dict(DataConfig, raw, "recorded data")


def load_unlabeled_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """Unlabelled transfer text: a .txt file with one text per line, or any supported
    table with a text column (labels, if present, are ignored)."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.exists():
            raise KdeployError(f"{path}: file not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise KdeployError(f"{path}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8") from None
        texts = [line.strip() for line in lines if line.strip()]
    else:
        columns, where = _read_file(path)
        column = _pick(columns, text_column, TEXT_COLUMNS, "text", where, "--text-column")
        texts = [str(t) for t in columns[column] if not _is_missing(t) and str(t).strip()]
    if not texts:
        raise KdeployError(f"{path}: no text in the unlabelled file")
    return texts


def text_fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(f"{text}\x1d".encode())
    return h.hexdigest()[:16]


# --- reading -------------------------------------------------------------------------------

def _read_file(path: Path):
    import pandas as pd

    if not path.exists():
        raise KdeployError(f"{path}: file not found")
    if path.is_dir():
        raise KdeployError(f"{path}: is a folder; give a CSV/TSV/JSONL/Parquet file (or --dataset for a save_to_disk folder)")
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2", ".xz", ".zip")]
    kind = suffixes[-1] if suffixes else ""
    if kind not in _READERS:
        raise KdeployError(f"{path}: unknown file type {kind or '(none)'!r}; use .csv, .tsv, .jsonl or .parquet")
    try:
        if kind in (".tsv", ".txt"):
            # GLUE-style TSV: no quoting, so a stray quote inside a sentence is just a character.
            df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8", dtype=str, keep_default_na=False)
        elif kind == ".csv":
            df = pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False)
        elif kind in (".jsonl", ".json"):
            df = pd.read_json(path, lines=(kind == ".jsonl" or _looks_like_jsonl(path)), encoding="utf-8", dtype=False)
        else:
            df = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise KdeployError(f"{path}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise KdeployError(f"{path}: the file is empty") from None
    except ValueError as exc:  # includes pandas' ParserError
        raise KdeployError(f"{path}: cannot parse as {kind[1:]}: {str(exc).strip().splitlines()[0]}") from None
    return {c: df[c].tolist() for c in df.columns}, str(path)


def _looks_like_jsonl(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1).lstrip()
    return head != b"["


def _load_dataset_source(cfg: DataConfig):
    name = cfg.dataset
    if name.startswith("builtin:"):
        return _load_builtin(name, cfg), {"dataset": name}
    import datasets

    local = Path(name)
    try:
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "dataset_info.json").exists()):
            ds = datasets.load_from_disk(str(local))
        else:
            path, config = name, cfg.dataset_config
            if config is None and "/" in name and not local.exists() and name.count("/") == 1 and name.split("/")[0] in ("glue", "super_glue"):
                path, config = name.split("/")
            ds = datasets.load_dataset(path, config)
    except FileNotFoundError as exc:
        raise KdeployError(f"dataset {name!r} not found: {exc}") from None
    except (ConnectionError, OSError) as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (offline mode is on: use local files or a save_to_disk folder)" if offline else ""
        raise KdeployError(f"cannot load dataset {name!r}{hint}: {str(exc).splitlines()[0]}") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    raw = {}
    for split, aliases in _SPLIT_ALIASES.items():
        found = next((a for a in aliases if a in ds), None)
        if found is None:
            continue
        part = ds[found]
        columns = {c: part[c] for c in part.column_names}
        label_feature = None
        for col, feat in part.features.items():
            if getattr(feat, "names", None):
                label_feature = (col, list(feat.names))
        raw[split] = (columns, f"{name}[{found}]", label_feature)
    if "train" not in raw:
        raise KdeployError(f"dataset {name!r} has no train split (splits: {', '.join(ds)})")
    return raw, {"dataset": name, "config": cfg.dataset_config}


def _load_builtin(name: str, cfg: DataConfig):
    """Rotten Tomatoes fresh/rotten sentences; `plot` rows are a different task and are dropped."""
    import pandas as pd

    from .assets import BUILTIN_DATASETS, rotten_tomatoes_file

    if name not in BUILTIN_DATASETS:
        raise KdeployError(f"unknown builtin dataset {name!r}; known: {', '.join(sorted(BUILTIN_DATASETS))}")
    df = pd.read_csv(rotten_tomatoes_file())
    df = df[df["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    df = df.sample(frac=1.0, random_state=cfg.split_seed).reset_index(drop=True)
    n_test = len(df) // 10
    splits = {"test": df.iloc[:n_test], "train": df.iloc[n_test:]}
    return {k: ({"text": v["text"].tolist(), "label": v["category"].tolist()}, f"{name}[{k}]") for k, v in splits.items()}


# --- normalising ---------------------------------------------------------------------------

def _pick(columns: dict, wanted: str | None, candidates: tuple[str, ...], what: str, where: str, flag: str) -> str:
    if wanted:
        if wanted not in columns:
            raise KdeployError(f"{where}: no column {wanted!r} (columns: {', '.join(map(str, columns))}); set {flag}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise KdeployError(f"{where}: no {what} column among {', '.join(map(str, columns))}; name it with {flag}")


def _normalise(raw: dict, cfg: DataConfig, sources: dict) -> TaskData:
    import datasets

    parsed: dict[str, tuple[list[str], list]] = {}
    class_names: list[str] | None = None
    for split, entry in raw.items():
        columns, where = entry[0], entry[1]
        if len(entry) > 2 and entry[2] is not None:
            class_names = entry[2][1]
        tcol = _pick(columns, cfg.text_column, TEXT_COLUMNS, "text", where, "--text-column")
        lcol = _pick(columns, cfg.label_column, LABEL_COLUMNS, "label", where, "--label-column")
        texts, labels = columns[tcol], columns[lcol]
        if len(texts) == 0:
            raise KdeployError(f"{where}: the {split} split is empty")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise KdeployError(f"{where}: row {i + 1} has no text in column {tcol!r} (got {t!r})")
            if isinstance(t, str) and "\ufffd" in t:
                raise KdeployError(f"{where}: row {i + 1} has undecodable characters (U+FFFD); fix the file's encoding")
        # Hub test splits without labels (GLUE uses -1) cannot be scored: drop them, say so.
        if all(_is_missing(l) for l in labels):
            if split == "train":
                raise KdeployError(f"{where}: the train split has no labels")
            print(f"note: {where} has no labels; it is not used")
            continue
        for i, l in enumerate(labels):
            if _is_missing(l):
                raise KdeployError(f"{where}: row {i + 1} has no label in column {lcol!r}")
        parsed[split] = (list(texts), list(labels), where)

    label_names, to_id = _label_space(parsed["train"][1], class_names, cfg.label_names, parsed["train"][2])
    encoded = {}
    for split, (texts, labels, where) in parsed.items():
        ids = []
        for i, l in enumerate(labels):
            key = _label_key(l)
            if key not in to_id:
                raise KdeployError(
                    f"{where}: label {l!r} (row {i + 1}) never occurs in train (train labels: {', '.join(label_names)})"
                )
            ids.append(to_id[key])
        encoded[split] = {"text": texts, "label": ids}

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=label_names)})
    splits = datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in encoded.items()})
    if "validation" not in splits:
        if len(set(splits["train"]["label"])) < 2 or len(splits["train"]) < 10:
            raise KdeployError(f"{parsed['train'][2]}: too little training data to carve a validation split; give --validation")
        carved = splits["train"].train_test_split(
            test_size=cfg.validation_fraction, seed=cfg.split_seed, stratify_by_column="label"
        )
        splits["train"], splits["validation"] = carved["train"], carved["test"]
        sources["validation"] = f"{cfg.validation_fraction:.0%} of train, seed {cfg.split_seed}"
    if cfg.max_train_samples and len(splits["train"]) > cfg.max_train_samples:
        splits["train"] = splits["train"].shuffle(seed=cfg.split_seed).select(range(cfg.max_train_samples))
    if cfg.max_eval_samples:
        for name in ("validation", "test"):
            if name in splits and len(splits[name]) > cfg.max_eval_samples:
                splits[name] = splits[name].shuffle(seed=cfg.split_seed).select(range(cfg.max_eval_samples))
    splits = datasets.DatasetDict({k: splits[k] for k in ("train", "validation", "test") if k in splits})
    h = hashlib.sha256()
    for name, ds in splits.items():
        h.update(name.encode())
        h.update(fingerprint_of(ds["text"], ds["label"], label_names).encode())
    return TaskData(splits=splits, label_names=label_names, fingerprint=h.hexdigest()[:16], sources=sources)


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    if isinstance(value, str) and value.strip() == "":
        return True
    return isinstance(value, (int,)) and not isinstance(value, bool) and value < 0


def _label_key(value) -> str:
    """Labels compare as text so that 1, "1" and 1.0 from different file types agree."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _label_space(train_labels: list, class_names: list[str] | None, given: list[str] | None, where: str):
    keys = sorted({_label_key(l) for l in train_labels}, key=lambda k: (not _is_int(k), int(k) if _is_int(k) else 0, k))
    if len(keys) < 2:
        raise KdeployError(f"{where}: train has only one label ({keys[0]!r}); a classifier needs at least two")
    all_int = all(_is_int(k) for k in keys)
    if all_int:
        ints = [int(k) for k in keys]
        names = given or class_names
        if ints == list(range(len(ints))) or (names and max(ints) < len(names)):
            n = max(len(names), max(ints) + 1) if names else max(ints) + 1
            if names and len(names) < n:
                raise KdeployError(f"{where}: {n} label ids but only {len(names)} label names given")
            label_names = list(names) if names else [str(i) for i in range(n)]
            return label_names, {str(i): i for i in range(n)}
        label_names = [str(i) for i in ints]
        return label_names, {k: i for i, k in enumerate(keys)}
    if given:
        missing = [k for k in keys if k not in given]
        if missing:
            raise KdeployError(f"{where}: labels {missing} are not among --label-names {given}")
        return list(given), {k: i for i, k in enumerate(given)}
    return keys, {k: i for i, k in enumerate(keys)}


def _is_int(key: str) -> bool:
    try:
        int(key)
        return True
    except ValueError:
        return False
