"""The student's depth when none is given (`--student-layers auto`, the default for a `layers`
student): a short probe, like the learning-rate probe. Each candidate depth (2, 3 and 4 of the
teacher's layers, fewer than the teacher has) is distilled for one epoch on a seeded slice of
the transfer set against the teacher's cached logits and scored on validation; the smallest
depth within `MARGIN_POINTS` of the best is kept, and the line that says so names every figure.

Why a probe and not a rule: a fixed 2 layers kept 100% of the teacher on Rotten Tomatoes, 88%
on SICK entailment (3 layers: 99%) and fell below the majority class on an unseen paraphrase
task (issue 44): how deep a student must be depends on the task, which the data shows in one
short epoch far more cheaply than a full distillation at the wrong depth.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..console import say

DEPTHS = (2, 3, 4)  # candidate depths, shallowest first
PROBE_EXAMPLES = 2000  # transfer-set examples each candidate trains on (one epoch)
PROBE_EVAL = 1000  # validation examples each candidate is scored on
MARGIN_POINTS = 1.0  # the smallest depth within this many points (×100 of the main metric) of the best wins


def candidate_depths(teacher_layers: int) -> list[int]:
    """The probed depths: those of DEPTHS below the teacher's own depth (at least one)."""
    return [d for d in DEPTHS if d < teacher_layers] or [max(1, teacher_layers - 1)]


def choose(scores: dict[int, float]) -> int:
    """The smallest depth whose main metric is within MARGIN_POINTS of the best (ties: smaller)."""
    best = max(scores.values())
    return min(d for d, s in scores.items() if 100 * (best - s) <= MARGIN_POINTS + 1e-9)


def probe_depth(settings, task, train_set, teacher_logits: np.ndarray | None, build,
                depths: list[int]) -> tuple[int, dict]:
    """(the chosen depth, what the probe measured). `build(depth)` returns (student, tokenizer)."""
    import datasets
    from transformers import set_seed

    from .trainer import fit, training_arguments

    started = time.perf_counter()
    rng = np.random.default_rng(settings.train.seed)
    rows = np.sort(rng.permutation(len(train_set))[:PROBE_EXAMPLES])
    held = "validation" if "validation" in task.splits else "train"
    evaluate = task.splits[held].select(range(min(PROBE_EVAL, len(task.splits[held]))))
    probe_task = replace(task, splits=datasets.DatasetDict({"train": train_set.select(rows), "validation": evaluate}))
    cfg = replace(settings.train, epochs=1.0, early_stopping=None)
    logits = teacher_logits[rows] if teacher_logits is not None else None
    scores = {}
    for depth in depths:
        set_seed(settings.train.seed)
        student, tokenizer = build(depth)
        with tempfile.TemporaryDirectory(prefix="kdeploy-depth-") as tmp:
            args = training_arguments(cfg, Path(tmp))
            _, fitted = fit(student, tokenizer, probe_task, cfg, args, Path(tmp), teacher_logits=logits,
                            alpha=settings.alpha if logits is not None else 0.0, temperature=settings.temperature,
                            loss=settings.loss, quiet=True)
        scores[depth] = round(float(fitted.validation.main), 6)
    chosen = choose(scores)
    measured = {"scores": {str(d): s for d, s in scores.items()}, "chosen": chosen, "metric": task.kind.metrics[0],
                "examples": int(len(rows)), "evaluated": int(len(evaluate)), "margin_points": MARGIN_POINTS,
                "seconds": round(time.perf_counter() - started, 1)}
    return chosen, measured


def say_choice(measured: dict) -> None:
    from ..metrics import TITLES, shown

    metric = measured["metric"]
    figures = ", ".join(f"{d} → {shown(metric, s)}" for d, s in measured["scores"].items())
    say(f"student depth: {measured['chosen']} layers, the smallest within {measured['margin_points']:g} point of the "
        f"best after one epoch on {measured['examples']:,} transfer examples (validation {TITLES[metric]}: {figures}; "
        f"{measured['seconds']:.0f} s); --student-layers N to choose")
