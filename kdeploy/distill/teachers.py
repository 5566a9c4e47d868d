"""The teachers' side of distillation: load them, line their labels up with the data, and
run each once over every text (cached), mixing an ensemble's outputs."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..console import say
from ..data import TaskData, text_fingerprint
from ..errors import KdeployError
from ..modelio.loading import label_names_of, load_classifier, load_tokenizer, model_fingerprint
from .result import TeacherSummary


@dataclass
class Teachers:
    names: list[str]
    models: list
    tokenizers: list
    fingerprints: list[str] = field(default_factory=list)
    per_teacher: list[dict] = field(default_factory=list)  # each teacher's logits by split


def load_teachers(names: list[str], data: TaskData, trust_remote_code: bool) -> tuple[Teachers, TaskData]:
    """The teachers, and the data with its labels numbered as the first teacher numbers them."""
    models, tokenizers = [], []
    for name in names:
        teacher = load_classifier(name, trust_remote_code=trust_remote_code, model_class=data.kind.model_class)
        if teacher.config.num_labels != data.num_labels:
            raise KdeployError(f"the teacher {name} has {teacher.config.num_labels} outputs but the data has "
                               f"{data.num_labels} labels ({', '.join(data.label_names)}); fine-tune a teacher on "
                               "this task first (kdeploy finetune)")
        data = data.aligned_to(label_names_of(teacher), f"teacher {name}")
        models.append(teacher)
        tokenizers.append(load_tokenizer(name, trust_remote_code))
    return Teachers(list(names), models, tokenizers), data


def teacher_reading(name: str, model, tokenizer, max_length: int, truncation: str | None) -> int:
    """How many tokens a teacher reads, and which: as it was trained (its kdeploy record:
    a long-context teacher gives soft labels from its whole window), else as the student,
    within its position table (a BiLSTM student may read more than the teacher can)."""
    from ..modelio.inputs import set_truncation, truncation_of_tokenizer
    from ..modelio.record import ModelRecord, position_limit, truncation_of
    from ..truncation import refit

    own = ModelRecord.of(name).max_length
    length = min(x for x in (own or max_length, position_limit(model.config.to_dict())) if x)
    if truncation_of(name) is None and truncation:
        set_truncation(tokenizer, refit(truncation, length))
    if length != max_length:
        why = "as it was trained" if length == own else "its position limit"
        say(f"teacher {name}: reads {length} tokens ({truncation_of_tokenizer(tokenizer)}), {why}; the student "
            f"reads {max_length}")
    return length


def teacher_outputs(teachers: Teachers, data: TaskData, transfer_texts: list[str], weights: np.ndarray,
                    temperature: float, max_length: int, cache_dir, device,
                    chunks: bool = False) -> tuple[dict, dict, float]:
    """({split: logits, with "train" extended by the transfer text}, cache hits, seconds).
    An ensemble's logits are mixed as T·log Σ w·softmax(t/T). Under a data-parallel launch
    every rank computes a share of each pass (all ranks must call this). `chunks`: a text longer
    than a teacher's window is read window by window and its logits averaged (chunk-and-pool)."""
    from ..modelio.inputs import truncation_of_tokenizer
    from .ensemble import ensemble_logits
    from .logits_cache import Shard, cache_key, cached_teacher_logits

    shard = Shard.current()
    teachers.fingerprints = [model_fingerprint(t) for t in teachers.models]
    for model in teachers.models:
        model.to(device)  # on a GPU the teacher pass is seconds, not minutes
    if data.kind.word_labels:  # per-token logits of each sentence, one teacher
        from .word_logits import token_teacher_logits

        logits, hits, seconds = token_teacher_logits(teachers.models[0], teachers.tokenizers[0],
                                                     teachers.fingerprints[0], data, max_length, cache_dir)
        teachers.per_teacher = [logits]
        return logits, hits, seconds
    hits: dict[str, bool] = {}
    per_teacher: list[dict[str, np.ndarray]] = [{} for _ in teachers.models]
    started = time.perf_counter()
    for k, (model, tok, fp) in enumerate(zip(teachers.models, teachers.tokenizers, teachers.fingerprints)):
        tag = (lambda split: split) if len(teachers.models) == 1 else (lambda split, k=k: f"{k}:{split}")
        length = teacher_reading(teachers.names[k], model, tok, max_length, None if data.pairs else data.truncation)
        cut = "chunks" if chunks else truncation_of_tokenizer(tok)
        for split in data.splits:
            key = cache_key(fp, data.split_fingerprint(split), length, cut)
            per_teacher[k][split], hits[tag(split)] = cached_teacher_logits(
                model, tok, data.texts(split), key, length, cache_dir, shard, chunks)
        if transfer_texts:
            key = cache_key(fp, text_fingerprint(transfer_texts), length, cut)
            extra, hits[tag("transfer")] = cached_teacher_logits(model, tok, transfer_texts, key, length,
                                                                 cache_dir, shard, chunks)
            per_teacher[k]["train"] = np.concatenate([per_teacher[k]["train"], extra])
    mixed = {split: ensemble_logits([p[split] for p in per_teacher], weights, temperature, data.task)
             for split in per_teacher[0]}
    teachers.per_teacher = per_teacher
    return mixed, hits, round(time.perf_counter() - started, 2)


def summaries(teachers: Teachers, logits_by_split: dict, data: TaskData, weights: np.ndarray) -> tuple[TeacherSummary, list]:
    """The (mixed) teacher's scores, and each member's when there are several."""
    from ..tasks.base import thresholds_of

    def scored(model, fp, logits, weight=None):
        labels = (lambda s: list(data.splits[s]["label"])) if data.kind.word_labels else \
            (lambda s: np.asarray(data.splits[s]["label"]))  # tags per word: ragged
        tuned = data.kind.tune(logits["validation"], labels("validation"),
                               data.label_names) if "validation" in logits else None  # as the student's will be
        splits = {s: data.kind.score(logits[s], labels(s), thresholds=thresholds_of(tuned, data.label_names),
                                     label_names=data.label_names)
                  for s in ("validation", "test") if s in logits}
        return TeacherSummary(model=model, fingerprint=fp, weight=weight, **splits)

    name = teachers.names if len(teachers.names) > 1 else teachers.names[0]
    mixed = scored(name, "+".join(teachers.fingerprints), logits_by_split)
    members = [scored(n, fp, p, float(w)) for n, fp, w, p in
               zip(teachers.names, teachers.fingerprints, weights, teachers.per_teacher)] if len(teachers.names) > 1 else None
    return mixed, members
