"""The prune stage's Python API: `prune(PruneConfig)` writes a smaller model folder that
export and package take as they take any student."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import DataConfig, load_task_data, load_unlabeled_texts
from ..errors import KdeployError


@dataclass
class PruneConfig:
    model: str
    out: str
    data: DataConfig | None = None  # default: the data recorded in the model's kdeploy.json
    vocab: bool = True  # keep the tokens of the training and validation text (never the test split's)
    extra_corpus: str | None = None  # more text whose tokens to keep (.txt one per line, or a table)
    max_length: int | None = None  # default: the training max length

    def __post_init__(self) -> None:
        if not self.vocab:
            raise KdeployError("nothing to prune: enable vocab trimming")


def prune(cfg: PruneConfig) -> dict:
    from ..distill.teachers import load_classifier, load_tokenizer
    from ..distill.trainer import read_record
    from ..environment import library_versions, machine
    from ..export.api import _data_from_record
    from ..export.parity import torch_logits
    from ..fsutil import atomic_dir, write_json
    from ..metrics import classification_metrics
    from ..runtime.accuracy import batched_logits
    from .vocab import trim_vocabulary, vocabulary_coverage

    model_dir = Path(cfg.model)
    record = read_record(model_dir)
    data_cfg = cfg.data or _data_from_record(record)
    if data_cfg is None:
        raise KdeployError(f"{model_dir}: which text's tokens to keep? give the training data (--train or --dataset)")
    data = load_task_data(data_cfg)
    max_length = cfg.max_length or (record.get("config", {}).get("train", {}) or {}).get("max_length") or 128
    model = load_classifier(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    texts = [t for split in ("train", "validation") if split in data.splits for t in data.splits[split]["text"]]
    if cfg.extra_corpus:
        texts += load_unlabeled_texts(cfg.extra_corpus)
    eval_split = "test" if "test" in data.splits else "validation"
    eval_texts = list(data.splits[eval_split]["text"])
    labels = np.asarray(data.splits[eval_split]["label"])
    model.eval()
    before = batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), eval_texts)
    started = time.perf_counter()
    model, trimmed, vocab_record = trim_vocabulary(model, tokenizer, texts, max_length)
    seconds = time.perf_counter() - started
    after = batched_logits(lambda t: torch_logits(model, trimmed, t, max_length), eval_texts)
    result = {
        "stage": "prune",
        "vocab": vocab_record,
        "parameters": sum(p.numel() for p in model.parameters()),
        "eval_split": eval_split,
        "before": classification_metrics(before, labels),
        "after": classification_metrics(after, labels),
        "eval_token_coverage": vocabulary_coverage(trimmed, eval_texts),
        "agreement": float((before.argmax(-1) == after.argmax(-1)).mean()),
        "seconds": round(seconds, 2),
        "config": to_dict(cfg),
    }
    result["accuracy_change_points"] = round(100 * (result["after"]["accuracy"] - result["before"]["accuracy"]), 3)
    with atomic_dir(Path(cfg.out)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        trimmed.save_pretrained(tmp)
        write_json(tmp / "kdeploy.json", {**record, "pruning": result, "versions": library_versions(),
                                          "machine": machine()})
    return result
