"""Datasets that are not local files: the Hugging Face hub, `save_to_disk` folders, and the
embedded Rotten Tomatoes data."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import KdeployError
from .config import DataConfig

SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test",),
}


def load_dataset_source(cfg: DataConfig):
    """({split: (columns, where, (label column, class names) or None)}, sources)."""
    name = cfg.dataset
    if name.startswith("builtin:"):
        return load_builtin(name, cfg), {"dataset": name}
    import datasets

    local = Path(name)
    try:
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "dataset_info.json").exists()):
            ds = datasets.load_from_disk(str(local))
        else:
            path, config = name, cfg.dataset_config
            if config is None and name.count("/") == 1 and not local.exists() and name.split("/")[0] in ("glue", "super_glue"):
                path, config = name.split("/")
            ds = datasets.load_dataset(path, config)
    except FileNotFoundError as exc:
        raise KdeployError(f"dataset {name!r} not found: {exc}") from None
    except (ConnectionError, OSError, ValueError) as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (offline mode is on: use local files or a save_to_disk folder)" if offline else ""
        raise KdeployError(f"cannot load dataset {name!r}{hint}: {str(exc).splitlines()[0]}") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    raw = {}
    for split, aliases in SPLIT_ALIASES.items():
        found = next((a for a in aliases if a in ds), None)
        if found is None:
            continue
        part = ds[found]
        columns = {c: part[c] for c in part.column_names}
        label_feature = None
        for col, feat in part.features.items():
            names = getattr(feat, "names", None) or getattr(getattr(feat, "feature", None), "names", None)
            if names:  # a class label, or a sequence of them (an entity tagger's tags per word)
                label_feature = (col, list(names))
        raw[split] = (columns, f"{name}[{found}]", label_feature)
    if "train" not in raw:
        raise KdeployError(f"dataset {name!r} has no train split (splits: {', '.join(ds)})")
    return raw, {"dataset": name, "config": cfg.dataset_config}


def load_builtin(name: str, cfg: DataConfig):
    """Rotten Tomatoes fresh/rotten sentences; `plot` rows are a different task and are dropped."""
    import pandas as pd

    from ..assets import BUILTIN_DATASETS, rotten_tomatoes_file

    if name not in BUILTIN_DATASETS:
        raise KdeployError(f"unknown builtin dataset {name!r}; known: {', '.join(sorted(BUILTIN_DATASETS))}")
    df = pd.read_csv(rotten_tomatoes_file())
    df = df[df["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    df = df.sample(frac=1.0, random_state=cfg.split_seed).reset_index(drop=True)
    n_test = len(df) // 10
    splits = {"test": df.iloc[:n_test], "train": df.iloc[n_test:]}
    return {k: ({"text": v["text"].tolist(), "label": v["category"].tolist()}, f"{name}[{k}]", None)
            for k, v in splits.items()}
