"""The prune stage's Python API: `prune(PruneConfig)` writes a smaller model folder that
export and package take as they take any student.

Vocabulary trimming changes no logit on kept text and needs no training. Head pruning
does change the model, so it is followed by a short distillation in which the unpruned
model (or `teacher`) teaches the pruned one.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import DataConfig, load_task_data, load_unlabeled_texts, recorded_data
from ..errors import KdeployError


@dataclass
class PruneConfig:
    model: str
    out: str
    data: DataConfig | None = None  # default: the data recorded in the model's kdeploy.json
    vocab: bool = True  # keep the tokens of the training and validation text (never the test split's)
    extra_corpus: str | None = None  # more text whose tokens to keep (.txt one per line, or a table)
    heads: float = 0.0  # fraction of attention heads to prune by importance (0 = none)
    importance_samples: int = 2000  # labelled training examples scored for head importance
    recover_epochs: float = 1.0  # distillation after head pruning (0 = none)
    recover_learning_rate: float = 1e-4
    teacher: str | None = None  # for the recovery; default: the unpruned model itself
    max_length: int | None = None  # default: the training max length
    seed: int = 42

    def __post_init__(self) -> None:
        if not self.vocab and not self.heads:
            raise KdeployError("nothing to prune: enable vocab trimming or give a head fraction")
        if not 0 <= self.heads < 1:
            raise KdeployError(f"heads is the fraction of attention heads to prune, in [0, 1); got {self.heads}")
        if self.recover_epochs < 0:
            raise KdeployError("recover_epochs must be zero or more")


def prune(cfg: PruneConfig) -> dict:
    from ..distill.teachers import load_classifier, load_tokenizer
    from ..distill.trainer import read_record
    from ..environment import library_versions, machine
    from ..fsutil import atomic_dir, write_json
    from .heads import prune_heads
    from .vocab import trim_vocabulary, vocabulary_coverage

    model_dir = Path(cfg.model)
    record = read_record(model_dir)
    data_cfg = cfg.data or recorded_data(record)
    if data_cfg is None:
        raise KdeployError(f"{model_dir}: which text's tokens to keep? give the training data (--train or --dataset)")
    data = load_task_data(data_cfg)
    max_length = cfg.max_length or (record.get("config", {}).get("train", {}) or {}).get("max_length") or 128
    model = load_classifier(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    eval_split = "test" if "test" in data.splits else "validation"
    result: dict = {"stage": "prune", "eval_split": eval_split, "config": to_dict(cfg)}
    before = _score(model, tokenizer, data, eval_split, max_length)
    started = time.perf_counter()
    if cfg.heads:
        train = data.splits["train"].shuffle(seed=cfg.seed).select(range(min(cfg.importance_samples,
                                                                               len(data.splits["train"]))))
        result["heads"] = prune_heads(model, tokenizer, list(train["text"]), list(train["label"]), cfg.heads,
                                      max_length)
        result["after_head_pruning"] = _score(model, tokenizer, data, eval_split, max_length)[0]
    if cfg.vocab:
        texts = [t for split in ("train", "validation") if split in data.splits for t in data.splits[split]["text"]]
        if cfg.extra_corpus:
            texts += load_unlabeled_texts(cfg.extra_corpus)
        model, tokenizer, result["vocab"] = trim_vocabulary(model, tokenizer, texts, max_length)
        result["eval_token_coverage"] = vocabulary_coverage(tokenizer, list(data.splits[eval_split]["text"]))
    result["seconds"] = round(time.perf_counter() - started, 2)

    out = Path(cfg.out)
    if cfg.heads and cfg.recover_epochs:
        with tempfile.TemporaryDirectory(prefix=".prune-", dir=out.parent if out.parent.exists() else None) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            result["recovery"] = _recover(cfg, data_cfg, tmp, out, max_length)
        model = load_classifier(str(out))
        tokenizer = load_tokenizer(str(out))
        record = read_record(out)
    after = _score(model, tokenizer, data, eval_split, max_length)
    result.update({
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameters_before": before[2],
        "before": before[0], "after": after[0],
        "agreement": float((before[1].argmax(-1) == after[1].argmax(-1)).mean()),
    })
    result["accuracy_change_points"] = round(100 * (after[0]["accuracy"] - before[0]["accuracy"]), 3)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "kdeploy.json", {**record, "pruning": result, "versions": library_versions(),
                                          "machine": machine()})
    return result


def _score(model, tokenizer, data, split: str, max_length: int):
    from ..export.parity import torch_logits
    from ..metrics import classification_metrics
    from ..runtime.accuracy import batched_logits

    model.eval()
    logits = batched_logits(lambda t: torch_logits(model, tokenizer, t, max_length), list(data.splits[split]["text"]))
    return (classification_metrics(logits, np.asarray(data.splits[split]["label"])), logits,
            sum(p.numel() for p in model.parameters()))


def _recover(cfg: PruneConfig, data_cfg: DataConfig, pruned_dir: str, out: Path, max_length: int) -> dict:
    """A short logit distillation of the pruned model from the unpruned one (or `teacher`)."""
    from ..distill.api import DistillConfig, distill
    from ..distill.students import StudentConfig
    from ..distill.trainer import TrainConfig

    r = distill(DistillConfig(teacher=cfg.teacher or cfg.model, out=str(out), data=data_cfg,
                              student=StudentConfig(kind=pruned_dir),
                              train=TrainConfig(epochs=cfg.recover_epochs, learning_rate=cfg.recover_learning_rate,
                                                seed=cfg.seed, max_length=max_length)))
    return {"teacher": cfg.teacher or cfg.model, "epochs": cfg.recover_epochs,
            "validation": r.get("validation"), "test": r.get("test"), "train_seconds": r["train_seconds"]}
