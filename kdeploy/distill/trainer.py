"""Training on transformers' Trainer: progress, per-epoch evaluation, best checkpoint,
resume, seeds, accumulation, mixed precision and DDP come from the library; kdeploy
only overrides `compute_loss` with the distillation loss."""
from __future__ import annotations

import contextlib

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..console import note, say
from ..errors import KdeployError
from ..modelio.heads import eager_attention
from ..metrics import TITLES, Scores, shown
from ..tasks import task_kind
from ..tasks.base import thresholds_of
from ..modelio.record import MODEL_RECORD
from ..modelio.torch_infer import reference_logits
from .config import TrainConfig
from .losses import get_loss


class DivergedError(KdeployError):
    """The loss became NaN or infinite: nothing is saved."""


class _Collator:
    """Pads token inputs; stacks the extra per-example fields the loss needs, and the
    teacher's cached intermediate features padded to the same length."""

    def __init__(self, tokenizer, feature_store=None):
        self.pad = DataCollatorWithPadding(tokenizer)
        self.store = feature_store

    def __call__(self, features):
        extra = {k: [f.pop(k) for f in features] for k in ("teacher_logits", "idx") if k in features[0]}
        batch = self.pad(features)
        if "teacher_logits" in extra:
            batch["teacher_logits"] = torch.tensor(np.asarray(extra["teacher_logits"]), dtype=torch.float32)
        if "idx" in extra:
            batch["idx"] = torch.tensor(extra["idx"], dtype=torch.long)
            if self.store is not None:
                lengths = self.store.lengths[extra["idx"]]
                if not np.array_equal(lengths, batch["attention_mask"].sum(1).numpy()):
                    raise KdeployError("cached teacher features do not line up with the student's tokens: "
                                       "teacher and student must share one tokenizer and max length")
                batch["teacher_features"] = self.store.batch(extra["idx"], batch["input_ids"].shape[1])
        return batch


class _WordCollator:
    """An entity tagger's batches: labels padded with -100 (transformers' token-classification
    collator), the teacher's per-token logits padded to the batch's length."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        self.pad = DataCollatorForTokenClassification(tokenizer)

    def __call__(self, features):
        extra = {k: [f.pop(k) for f in features] for k in ("teacher_logits", "idx") if k in features[0]}
        batch = self.pad(features)
        if "teacher_logits" in extra:
            rows = [np.asarray(t, dtype=np.float32) for t in extra["teacher_logits"]]
            out = np.zeros((len(rows), batch["input_ids"].shape[1], rows[0].shape[-1]), dtype=np.float32)
            for i, r in enumerate(rows):
                out[i, :len(r)] = r
            batch["teacher_logits"] = torch.from_numpy(out)
        if "idx" in extra:
            batch["idx"] = torch.tensor(extra["idx"], dtype=torch.long)
        return batch


class DistillTrainer(Trainer):
    def __init__(self, *args, alpha: float = 0.0, temperature: float = 1.0, loss: str = "kd",
                 layer_objective=None, task: str = "classification", **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha, self.temperature, self.task = alpha, temperature, task
        self.loss_fn = get_loss(loss)
        self.layer_objective = layer_objective
        if layer_objective is not None:
            layer_objective.to(self.args.device)
        self.seen_examples: list[int] = []
        self.layer_loss_sums: dict[str, float] = {}
        self.layer_loss_calls = 0
        self.model_accepts_loss_kwargs = False

    def create_optimizer(self):
        """The Trainer's optimiser, plus the layer objective's projections when it has any."""
        optimizer = super().create_optimizer()
        params = [p for p in (self.layer_objective.parameters() if self.layer_objective else []) if p.requires_grad]
        if params:
            optimizer.add_param_group({"params": params, "weight_decay": 0.0})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher_logits = inputs.pop("teacher_logits", None)
        teacher_features = inputs.pop("teacher_features", None)
        idx = inputs.pop("idx", None)
        labels = inputs.pop("labels", None)
        if idx is not None and model.training:
            self.seen_examples.extend(idx.tolist())
        layered = self.layer_objective is not None and teacher_features is not None and model.training
        if layered:
            outputs = model(**inputs, output_hidden_states=True,
                            output_attentions=self.layer_objective.needs_attentions)
        else:
            outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        alpha = self.alpha if (teacher_logits is not None and model.training) else 0.0
        loss = self.loss_fn(logits, teacher_logits, labels, alpha, self.temperature, task=self.task)
        if layered:
            extra, parts = self.layer_objective(outputs, teacher_features, inputs["attention_mask"])
            loss = loss + extra
            for name, value in parts.items():
                self.layer_loss_sums[name] = self.layer_loss_sums.get(name, 0.0) + value
            self.layer_loss_calls += 1
        if model.training and not torch.isfinite(loss.detach()).all():
            raise DivergedError(f"training diverged: the loss became {float(loss.detach())} at step "
                                f"{self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f}); nothing was saved. "
                                "Lower the learning rate, or check the teacher's logits and the temperature")
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        inputs.pop("teacher_logits", None)
        inputs.pop("idx", None)
        with torch.no_grad():
            inputs = self._prepare_inputs(inputs)
            logits = model(**inputs)["logits"]
            loss = None
            if labels is not None:
                loss = task_kind(self.task).hard_loss(logits, labels.to(logits.device)).detach()
        return loss, logits.detach(), labels


class _EpochTimer(TrainerCallback):
    """Wall time of each epoch's training steps (evaluation excluded)."""

    def __init__(self):
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.epoch_seconds.append(time.perf_counter() - self._start)


class _EpochPrinter(TrainerCallback):
    """One readable line per epoch instead of the Trainer's raw log dicts."""

    def __init__(self, task: str):
        self.metrics = task_kind(task).metrics[:2]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics or "eval_main" not in metrics:
            return
        loss = next((e["loss"] for e in reversed(state.log_history) if "loss" in e), float("nan"))
        figures = ", ".join(f"{TITLES[m]} {shown(m, metrics[f'eval_{m}'])}" for m in self.metrics)
        say(f"epoch {round(state.epoch, 2):g}/{args.num_train_epochs:g}: train loss {loss:.4f}, validation {figures}")


class _StepHeartbeat(TrainerCallback):
    """Training steps to a file or a pipe: a line every ~30 s between the epoch lines (a long
    epoch was minutes of silence in CI logs and under nohup)."""

    def on_train_begin(self, args, state, control, **kwargs):
        from ..progress import Heartbeat

        self.beat = Heartbeat("training steps", state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.beat.done = state.global_step - 1
            self.beat()


class _QuietProgress(ProgressCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def metrics_of(task: str, label_names: list[str] | None = None):
    """The Trainer's compute_metrics: the task's named metrics, and its main one as "main" (what
    the best epoch is kept by). A task with decision thresholds is judged at thresholds tuned on
    the split itself, as it would ship: at 0.5, a multi-label model early in training answers
    its majority label only (GoEmotions, epoch 1: macro-F1 2.4 at 0.5), which says nothing about
    which epoch is best."""
    kind = task_kind(task)

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        thresholds = None
        if kind.thresholds:
            names = [str(i) for i in range(np.asarray(logits).shape[-1])]
            thresholds = thresholds_of(kind.tune(logits, labels, names), names)
        scores = kind.score(logits, labels, thresholds=thresholds, label_names=label_names)
        return {"main": scores.main, **scores.metrics}

    return compute


def tokenize_splits(splits, tokenizer, max_length: int, teacher_logits: np.ndarray | None = None,
                    pair_truncation: str = "longest_first"):
    """Token ids per split (a pair as [CLS] a [SEP] b [SEP], token types 0/1); eval splits
    sorted by length (less padding, same metrics)."""
    import datasets

    from ..modelio.inputs import tokenize

    datasets.disable_progress_bars()
    out = {}
    for name, ds in splits.items():
        pairs = "text_pair" in ds.column_names

        def encode(b, pairs=pairs):
            texts = list(zip(b["text"], b["text_pair"])) if pairs else b["text"]
            return tokenize(tokenizer, texts, max_length, padding=False, pair_truncation=pair_truncation)

        enc = ds.map(encode, batched=True, remove_columns=["text", "text_pair"] if pairs else ["text"], desc=None)
        enc = enc.rename_column("label", "labels")
        if name == "train":
            enc = enc.add_column("idx", list(range(len(enc))))
            if teacher_logits is not None:
                enc = enc.add_column("teacher_logits", teacher_logits.tolist())
        else:
            lengths = [len(x) for x in enc["input_ids"]]
            enc = enc.select(np.argsort(lengths, kind="stable"))
        out[name] = enc
    return out


def tokenize_word_splits(splits, tokenizer, max_length: int, teacher_logits: list | None = None):
    """An entity tagger's splits as token ids with each word's tag on its first sub-token
    (`kdeploy.modelio.words`); words past the window are counted and said."""
    import datasets

    from ..modelio.words import encode_words

    datasets.disable_progress_bars()
    out = {}
    for name, ds in splits.items():
        enc, cut = encode_words(tokenizer, list(ds["words"]), max_length, list(ds["label"]))
        columns = {k: list(v) for k, v in enc.items()}
        if sum(cut):
            note(f"{name}: {sum(cut):,} words in {sum(1 for c in cut if c):,} sentences are past the {max_length}-token "
                 "window: trained and scored on none here (export scores them as O; a longer --max-length reads them)")
        if name == "train":
            columns["idx"] = list(range(len(ds)))
            if teacher_logits is not None:
                columns["teacher_logits"] = [np.asarray(t).tolist() for t in teacher_logits]
        enc_ds = datasets.Dataset.from_dict(columns)
        if name != "train":
            enc_ds = enc_ds.select(np.argsort([len(x) for x in columns["input_ids"]], kind="stable"))
        out[name] = enc_ds
    return out


def training_arguments(cfg: TrainConfig, work_dir: Path) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    mp = cfg.mixed_precision
    fp16 = cuda and mp in ("auto", "fp16")
    bf16 = cuda and mp == "bf16"
    if not cuda and mp in ("fp16", "bf16"):
        note(f"--mixed-precision {mp} needs a CUDA GPU; training in fp32 on the CPU (kdeploy.json records "
             "precision: fp32)")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=float(cfg.warmup_ratio),  # transformers 5: a float below 1 is a ratio
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="main",
        greater_is_better=True,
        save_total_limit=1,
        save_only_model=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        fp16=fp16,
        bf16=bf16,
        use_cpu=not cuda,
        ddp_backend=("gloo" if not cuda else None) if distributed else None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        ddp_find_unused_parameters=False,
        remove_unused_columns=False,
        report_to=[],
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        disable_tqdm=not sys.stderr.isatty(),
        log_level="warning",
    )


def _readable_progress(trainer) -> None:
    """The epoch lines instead of the Trainer's log dicts; a bar on a terminal, a heartbeat elsewhere."""
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_QuietProgress())
    elif not sys.stderr.isatty():
        trainer.add_callback(_StepHeartbeat())


def within_budget(args: TrainingArguments, examples: int) -> TrainingArguments:
    """A fractional --epochs as whole optimiser steps that stay within it: the Trainer rounds the
    steps up (--epochs 0.5 trained 0.6 of an epoch and said "epoch 0.6/0.5")."""
    import math

    epochs = float(args.num_train_epochs)
    if epochs == int(epochs) or args.max_steps > 0:
        return args
    world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    batches = math.ceil(examples / (args.per_device_train_batch_size * world))
    per_epoch = max(1, batches // max(1, args.gradient_accumulation_steps))
    args.max_steps = max(1, math.floor(epochs * per_epoch))
    return args


def last_checkpoint(work_dir: Path) -> str | None:
    """The newest *complete* checkpoint: one whose trainer_state.json (the Trainer writes it last)
    is there. A run interrupted while saving leaves a newer, partial folder, which resuming from
    would crash on; the one before it is taken instead (transformers' get_last_checkpoint
    looks at folder names only)."""
    import re

    folder = work_dir / "checkpoints"
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    complete = [(n, p) for n, p in steps if (p / "trainer_state.json").is_file()]
    return str(max(complete)[1]) if complete else None


@dataclass
class Fitted:
    """What one training run measured: the fields of the model's record that training fills in."""

    train_seconds: float
    epoch_seconds: list[float]
    epochs: list[dict]
    precision: str
    still_improving: bool | None = None
    resumed_from: str | None = None
    best_checkpoint: str | None = None
    data_parallel: dict | None = None
    reference: dict | None = None  # logits of the model as training left it, on a few texts
    layer_loss_means: dict[str, float] | None = None
    validation: Scores | None = None
    test: Scores | None = None
    thresholds: dict[str, float] | None = None  # decisions per label, tuned on validation (multi-label)


def fit(model, tokenizer, data, cfg: TrainConfig, args: TrainingArguments, work_dir: Path, resume: bool = False,
        teacher_logits: np.ndarray | None = None, alpha: float = 0.0, temperature: float = 1.0,
        layer_objective=None, feature_store=None, callbacks: list | None = None, loss: str = "kd", quiet: bool = False):
    """Train, keep the best epoch by the task's main validation metric, score validation and test.

    Returns (trainer, metrics and timings); the caller saves the model (main process only).
    """
    if model.config.num_labels != data.num_labels:
        raise KdeployError(f"the model has {model.config.num_labels} outputs but the data has "
                           + data.kind.describe_outputs(data.label_names))
    words = data.kind.word_labels  # a tag per word: labels and teacher outputs per token
    encoded = tokenize_word_splits(data.splits, tokenizer, cfg.max_length, teacher_logits) if words else \
        tokenize_splits(data.splits, tokenizer, cfg.max_length, teacher_logits, data.pair_truncation)
    args = within_budget(args, len(encoded["train"]))
    timer = _EpochTimer()
    trainer = DistillTrainer(
        model=model,
        args=args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        data_collator=_WordCollator(tokenizer) if words else
        _Collator(tokenizer, feature_store if layer_objective is not None else None),
        compute_metrics=metrics_of(data.task, data.label_names),
        callbacks=[timer, *([] if quiet else [_EpochPrinter(data.task)]), *_stopping(cfg), *(callbacks or [])],
        alpha=alpha if teacher_logits is not None else 0.0,
        temperature=temperature,
        loss=loss,
        layer_objective=layer_objective,
        task=data.task,
    )
    _readable_progress(trainer)
    resume_from = last_checkpoint(work_dir) if resume else None
    started = time.perf_counter()
    with eager_attention(model) if getattr(layer_objective, "needs_attentions", False) else contextlib.nullcontext():
        trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - started
    for callback in _stopping(cfg):  # the final scoring passes are not epochs to stop on (it would warn)
        trainer.remove_callback(type(callback))

    epochs = _epoch_history(trainer.state.log_history, data.kind.metrics)
    split = "validation" if "validation" in data.splits else "train"
    result = Fitted(
        resumed_from=Path(resume_from).name if resume_from else None, train_seconds=round(train_seconds, 2),
        epoch_seconds=[round(s, 2) for s in timer.epoch_seconds], epochs=epochs,
        best_checkpoint=Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        data_parallel=_shard_record(trainer),
        precision="fp16" if trainer.args.fp16 else "bf16" if trainer.args.bf16 else "fp32",  # what ran, not what was asked
        still_improving=None if quiet else _still_improving(epochs, cfg, data.kind.metrics[0]),
        reference=None if words else reference_logits(trainer.model, tokenizer, data.texts(split), cfg.max_length),
        layer_loss_means={k: round(v / trainer.layer_loss_calls, 6) for k, v in trainer.layer_loss_sums.items()}
        if trainer.layer_loss_calls else None)
    _final_scores(trainer, encoded, data, result)
    return trainer, result


def _final_scores(trainer, encoded, data, result: Fitted) -> None:
    """Validation and test scored with the kept model; a task with decision thresholds tunes
    them on validation first (and the record keeps them)."""
    predicted = {}
    for split in ("validation", "test"):
        if split in encoded:
            t0 = time.perf_counter()
            predicted[split] = (trainer.predict(encoded[split], metric_key_prefix=split), time.perf_counter() - t0)
    if "validation" in predicted:
        out = predicted["validation"][0]
        result.thresholds = data.kind.tune(out.predictions, out.label_ids, data.label_names)
    for split, (out, seconds) in predicted.items():
        scores = data.kind.score(out.predictions, out.label_ids, thresholds=thresholds_of(result.thresholds,
                                                                                          data.label_names),
                                 label_names=data.label_names)
        scores.loss, scores.seconds = out.metrics[f"{split}_loss"], round(seconds, 2)
        setattr(result, split, scores)


def _stopping(cfg: TrainConfig) -> list:
    """Early stopping on the validation score (the Trainer keeps the best epoch either way)."""
    if not cfg.early_stopping:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping)]


def _still_improving(epochs: list[dict], cfg: TrainConfig, metric: str = "accuracy") -> bool:
    """Whether the last epoch was the best so far on the main metric: the model may be
    undertrained; said plainly."""
    scores = [e[f"validation_{metric}"] for e in epochs if e.get(f"validation_{metric}") is not None]
    rising = len(scores) >= 2 and scores[-1] > max(scores[:-1])
    if rising:
        path = " → ".join(shown(metric, v) for v in scores)
        note(f"validation {TITLES[metric]} was still rising at the last epoch ({path}): the model may be undertrained; "
             f"give more --epochs{'' if cfg.early_stopping else ' with --early-stopping 2'} to train until it stops "
             "improving")
    return rising


def _epoch_history(log_history: list[dict], metrics: tuple[str, ...] = ("accuracy", "macro_f1")) -> list[dict]:
    epochs: dict[float, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        row = epochs.setdefault(round(entry["epoch"], 2), {"epoch": round(entry["epoch"], 2)})
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
        for key in [f"eval_{m}" for m in metrics] + ["eval_loss"]:
            if key in entry:
                row[key.replace("eval_", "validation_")] = entry[key]
    return [r for r in epochs.values() if len(r) > 1]


def _shard_record(trainer) -> dict:
    """Which training examples each process saw: evidence that DDP split the data."""
    seen = sorted(set(trainer.seen_examples))
    world = trainer.args.world_size
    if world > 1 and torch.distributed.is_initialized():
        gathered: list = [None] * world
        torch.distributed.all_gather_object(gathered, seen)
    else:
        gathered = [seen]
    sets = [set(g) for g in gathered]
    overlap = set.intersection(*sets) if len(sets) > 1 else set()
    return {
        "world_size": world,
        "examples_seen_per_rank": [len(s) for s in sets],
        "examples_seen_by_every_rank": len(overlap),
        "backend": trainer.args.ddp_backend if world > 1 else None,
    }


def refuse_diverged(model) -> None:
    """A model with a NaN or infinite weight is never saved."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise DivergedError(f"the trained model has NaN or infinite weights ({bad[0]}, ...); nothing was saved. "
                            "Lower the learning rate")


def save_model(trainer, tokenizer, target: Path, record, overwrite: bool = False) -> None:
    """Main process only: save_pretrained into a temp folder, then rename into place.
    A model with a NaN or infinite weight is never saved."""
    from ..environment import library_versions, machine
    from ..fsutil import atomic_dir

    if not trainer.is_world_process_zero():
        return
    model = trainer.model
    refuse_diverged(model)
    record.versions, record.machine = library_versions(), machine()
    with atomic_dir(target, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record.save(tmp / MODEL_RECORD)
