"""One class per text (or sentence pair): sentiment, topic, entailment. Softmax over the
classes; Hinton's KD; accuracy and macro-F1; the trivial answer is the training majority class."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import KdeployError
from .base import IGNORE_INDEX, TaskKind, check_teacher, mixed
from .predictions import ClassPrediction


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@dataclass(frozen=True)
class Classification(TaskKind):
    def outputs(self, logits):
        return softmax(logits)

    def logits_of(self, outputs):
        return np.log(np.clip(np.asarray(outputs, dtype=np.float64), 1e-30, None))  # up to a constant per row

    def decisions(self, outputs, thresholds=None):
        return np.asarray(outputs).argmax(-1)

    def score(self, logits, labels, reference=None, thresholds=None, label_names=None):
        from ..metrics import Scores, accuracy, agreement, macro_f1

        pred, labels = np.asarray(logits).argmax(-1), np.asarray(labels)
        return Scores({"accuracy": accuracy(pred, labels), "macro_f1": macro_f1(pred, labels)},
                      examples=int(len(labels)),
                      agreement=agreement(pred, np.asarray(reference).argmax(-1)) if reference is not None else None)

    def trivial_score(self, train_labels, eval_labels, label_names):
        counts = Counter(int(v) for v in train_labels)
        if not counts or len(eval_labels) == 0:
            raise KdeployError("no labels to find the trivial answer with")
        majority = min(counts, key=lambda k: (-counts[k], k))
        share = sum(int(v) == majority for v in eval_labels) / len(eval_labels)
        name = label_names[majority] if 0 <= majority < len(label_names) else str(majority)
        return share, f"always {name}"

    def prediction(self, row, label_names, thresholds=None):
        k = int(np.argmax(row))
        return ClassPrediction(label_names[k], float(row[k]), {n: float(v) for n, v in zip(label_names, row)})

    def hard_loss(self, logits, labels):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels.long())

    def kd_loss(self, student, teacher, labels, alpha, temperature):
        """Hinton et al.: (1-α)·CE(y, s) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)). α weighs the KD
        term (torchdistill weighs CE by α; we do not); T² keeps the soft term's gradient on the
        scale of the hard one as T grows; KL averaged per example."""
        import torch.nn.functional as F

        def soft():
            check_teacher(student, teacher)
            t = temperature
            log_s = F.log_softmax(student.float() / t, dim=-1)
            log_t = F.log_softmax(teacher.detach().float() / t, dim=-1)
            return (t * t) * F.kl_div(log_s, log_t, reduction="batchmean", log_target=True)

        return mixed(self, student, labels, alpha, soft)

    def label_feature(self, label_names):
        import datasets

        return datasets.ClassLabel(names=label_names)

    def no_label(self, label_names):
        return IGNORE_INDEX

    def encode_labels(self, parsed, label_names_given, class_names, cfg):
        from .labels import (
            label_key,
            label_space,
            looks_like_labels_lists,
            looks_like_scores,
        )

        space_split = "train" if "train" in parsed else next(iter(parsed))
        all_labels = [v for s in ([space_split] if space_split == "train" else parsed) for v in parsed[s][2]]
        where = parsed[space_split][3]
        if looks_like_scores(all_labels):
            raise KdeployError(f"{where}: the labels look like scores ({', '.join(map(str, all_labels[:3]))}, …); "
                               "for a score task use --task regression")
        joined = looks_like_labels_lists(all_labels, cfg.label_separator)
        if joined:
            raise KdeployError(f"{where}: the labels look like several labels per text ({joined}); for a "
                               "multi-label task use --task multi-label")
        label_names, to_id, ids_only = label_space(all_labels, class_names, label_names_given, where)
        if space_split == "train" and len(label_names) < 2:
            raise KdeployError(f"{where}: train has only one label ({label_names[0]!r}); a classifier needs at least two")
        encoded = {}
        for split, (_, _, labels, where) in parsed.items():
            ids = []
            for i, v in enumerate(labels):
                key = label_key(v)
                if key not in to_id:
                    raise KdeployError(f"{where}: label {v!r} (row {i + 1}) never occurs in train "
                                       f"(train labels: {', '.join(label_names)})")
                ids.append(to_id[key])
            encoded[split] = ids
        return label_names, encoded, ids_only

    def carve(self, train, cfg, where):
        """Stratified when every class can give one example."""
        counts = Counter(train["label"])
        if len(counts) < 2 or len(train) < 10:
            raise KdeployError(f"{where}: too little training data to carve a validation split; give --validation")
        held_out = math.ceil(cfg.validation_fraction * len(train))
        rare = [train.features["label"].names[k] for k, n in counts.items() if n < 2]
        stratified = not rare and held_out >= len(counts) and len(train) - held_out >= len(counts)
        from ..console import note

        if rare:
            note(f"{where}: class {', '.join(map(repr, rare))} occurs once, so the validation split is carved "
                 "without stratification; give --validation for a better one")
        elif not stratified:
            note(f"{where}: too few examples to hold out one of each of the {len(counts)} classes, so the validation "
                 "split is carved without stratification; give --validation for a better one")
        carved = train.train_test_split(test_size=cfg.validation_fraction, seed=cfg.split_seed,
                                        stratify_by_column="label" if stratified else None)
        return carved["train"], carved["test"]

    def describe_outputs(self, label_names):
        return f"{len(label_names)} classes"

    def paired_test(self, reference, candidate, labels, thresholds=None, label_names=None):
        """McNemar on the examples where the two disagree about being right."""
        from ..metrics import mcnemar

        labels = np.asarray(labels)
        return mcnemar(np.asarray(reference).argmax(-1) == labels, np.asarray(candidate).argmax(-1) == labels)


CLASSIFICATION = Classification(
    name="classification",
    doc="one class per text or sentence pair (sentiment, topic, entailment): softmax, accuracy and macro-F1",
    labels="one label per row: a name or an integer id",
    problem_type="single_label_classification",
    activation="softmax",
    metrics=("accuracy", "macro_f1"),
    trivial="the training split's majority class",
)
