"""The prune stage's Python API: `prune(PruneSettings(...), model=..., data=..., out=...)`
writes a smaller model folder that export and package take as they take any student.

Vocabulary trimming changes no logit on kept text and needs no training. Head pruning
does change the model, so it is followed by a short distillation (the distill stage's own
API) in which the unpruned model (or `teacher`) teaches the pruned one.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import DataConfig, TaskData, data_still_there, load_task_data, load_unlabeled_texts
from ..errors import KdeployError
from ..fsutil import claimed_output
from ..metrics import Scores
from ..tasks.base import thresholds_of
from ..modelio.record import MODEL_RECORD, ModelRecord, resolve_max_length
from .config import PruneSettings
from .result import PruneResult


def prune(settings: PruneSettings, model: str | Path, out: str | Path, data: DataConfig | None = None,
          extra_corpus: str | None = None, teacher: str | None = None, overwrite: bool = False) -> PruneResult:
    model_dir, out = Path(model), Path(out)
    if not model_dir.is_dir():
        raise KdeployError(f"{model_dir}: not a model folder")
    from ..modelio.record import task_of_model
    from ..tasks import task_kind

    task = task_of_model(model_dir)
    if task is not None and task_kind(task).word_labels:
        raise KdeployError(f"{model_dir}: kdeploy prune scores what it removes on a classifier's or scorer's labels; "
                           f"a {task} model is not supported yet (distil a shallower student instead)")
    record = ModelRecord.of(model_dir)
    data = data or data_still_there(record.data_config)
    if data is None:
        raise KdeployError(f"{model_dir}: which text's tokens to keep? give the training data (--train or --dataset)")
    settings = _trimmable_or_said(settings, model_dir)
    with claimed_output(out, [model_dir, teacher, extra_corpus, *data.files()], overwrite, "kdeploy prune"):
        return _prune(settings, model_dir, out, data, extra_corpus, teacher, record, overwrite)


def _trimmable_or_said(settings: PruneSettings, model_dir: Path) -> PruneSettings:
    """Vocabulary trimming reads the tokenizer's kind before any work: a kind it cannot trim is
    refused when trimming is all that was asked, and otherwise skipped with a note, so head and
    feed-forward pruning still run (instead of failing after their importance pass and recovery)."""
    from dataclasses import replace

    from ..console import note
    from .vocab import TRIMMABLE, tokenizer_kind

    kind = tokenizer_kind(model_dir)
    if not settings.vocab or kind in TRIMMABLE:
        return settings
    why = (f"vocabulary trimming supports {', '.join(TRIMMABLE)} tokenizers; "
           + (f"{model_dir}'s is {kind}" if kind else f"{model_dir} has no tokenizer.json (a fast tokenizer)"))
    if not (settings.heads or settings.ffn):
        raise KdeployError(f"{why}, and trimming is all this prune was asked to do; give --heads or --ffn, "
                           "or skip the prune stage")
    note(f"{why}: its vocabulary is kept, the rest is pruned (--no-vocab says so)")
    return replace(settings, vocab=False)


def _prune(settings: PruneSettings, model_dir: Path, out: Path, data_cfg: DataConfig, extra_corpus, teacher,
           record: ModelRecord, overwrite: bool) -> PruneResult:
    from ..modelio.loading import label_names_of, load_classifier, load_tokenizer
    from .vocab import trim_vocabulary, vocabulary_coverage

    model = load_classifier(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    data = load_task_data(data_cfg).aligned_to(label_names_of(model), "model")
    data.require_train("prune")
    max_length = resolve_max_length(settings.max_length, model_dir)
    split = data.eval_split
    before, before_logits, params_before = _score(model, tokenizer, data, split, max_length)
    extra: dict = {}
    started = time.perf_counter()
    _structural(settings, model, tokenizer, data, split, max_length, extra)
    seconds = round(time.perf_counter() - started, 2)

    if (settings.heads or settings.ffn) and settings.recover_epochs:
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-", dir=out.parent) as tmp:
            pruned, recovered = Path(tmp) / "pruned", Path(tmp) / "recovered"
            model.save_pretrained(pruned, safe_serialization=True)
            tokenizer.save_pretrained(pruned)
            extra["recovery"] = _recover(settings, data_cfg, pruned, recovered, teacher or str(model_dir), max_length)
            model = load_classifier(str(recovered))
            tokenizer = load_tokenizer(str(recovered))
            record = ModelRecord.of(recovered)
    if settings.vocab:  # last: trimming changes no logit on kept text, and the recovery keeps the teacher's tokens
        texts = [t for s in ("train", "validation") if s in data.splits for t in data.texts(s)]
        if extra_corpus:
            texts += load_unlabeled_texts(extra_corpus, data_cfg.text_column, data_cfg.encoding,
                                          data_cfg.encoding_errors)
        model, tokenizer, extra["vocab"] = trim_vocabulary(model, tokenizer, texts, max_length)
        extra["eval_token_coverage"] = vocabulary_coverage(tokenizer, data.texts(split))
    after, after_logits, params = _score(model, tokenizer, data, split, max_length, reference=before_logits)
    result = PruneResult(
        eval_split=split, config={"settings": to_dict(settings), "inputs": {"model": str(model_dir),
                                                                          "extra_corpus": extra_corpus,
                                                                          "teacher": teacher}},
        before=before, after=after, parameters_before=params_before, parameters=params,
        agreement=after.agreement,  # the task's own: same class, same label set, or the scores' correlation
        accuracy_change_points=after.points(before), seconds=seconds, **extra)
    _save(out, model, tokenizer, {**record.raw, "pruning": result.to_dict()}, data.texts(split), max_length, overwrite)
    return result


def _structural(settings: PruneSettings, model, tokenizer, data: TaskData, split: str, max_length: int,
                extra: dict) -> None:
    """Heads, then feed-forward neurons, by importance on a seeded sample of the training text."""
    from .ffn import prune_ffn
    from .heads import prune_heads

    order = np.random.default_rng(settings.seed).permutation(len(data.splits["train"]))[:settings.importance_samples]
    every, labels = data.texts("train"), data.splits["train"]["label"]
    train_texts, train_labels = [every[i] for i in order], [labels[i] for i in order]
    if settings.heads:
        extra["heads"] = prune_heads(model, tokenizer, train_texts, train_labels, settings.heads, max_length)
        extra["after_head_pruning"] = _score(model, tokenizer, data, split, max_length)[0]
    if settings.ffn:
        extra["ffn"] = prune_ffn(model, tokenizer, train_texts, train_labels, settings.ffn, max_length)
        extra["after_width_pruning"] = _score(model, tokenizer, data, split, max_length)[0]


def _save(out: Path, model, tokenizer, record: dict, texts: list, max_length: int, overwrite: bool) -> None:
    """The pruned model, its tokenizer and its record, with the logits it now gives (checked on reload)."""
    from ..environment import library_versions, machine
    from ..fsutil import atomic_dir, write_json
    from ..modelio.torch_infer import reference_logits

    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / MODEL_RECORD, {**record, "reference": reference_logits(model, tokenizer, texts, max_length),
                                        "versions": library_versions(), "machine": machine()})


def _score(model, tokenizer, data: TaskData, split: str, max_length: int,
           reference: np.ndarray | None = None) -> tuple[Scores, np.ndarray, int]:
    from ..modelio.torch_infer import compute_logits

    logits = compute_logits(model, tokenizer, data.texts(split), max_length)
    thresholds = thresholds_of(ModelRecord.of(getattr(model, "name_or_path", "") or ".").thresholds, data.label_names) \
        if data.kind.thresholds else None
    return (data.kind.score(logits, np.asarray(data.splits[split]["label"]), reference, thresholds), logits,
            sum(p.numel() for p in model.parameters()))


def _recover(settings: PruneSettings, data: DataConfig, pruned_dir: Path, out: Path, teacher: str,
             max_length: int) -> dict:
    """A short logit distillation of the pruned model from the unpruned one (or `teacher`)."""
    from ..distill.api import distill
    from ..distill.config import DistillSettings, StudentConfig, TrainConfig

    r = distill(DistillSettings(student=StudentConfig(kind=str(pruned_dir)),
                                layer_losses=settings.recover_layer_loss or {},
                                train=TrainConfig(epochs=settings.recover_epochs,
                                                  learning_rate=settings.recover_learning_rate, seed=settings.seed,
                                                  max_length=max_length)),
                teacher=teacher, data=data, out=out)
    return {"teacher": teacher, "epochs": settings.recover_epochs,
            "validation": r.validation, "test": r.test, "train_seconds": r.train_seconds}
