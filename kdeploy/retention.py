"""The retention verdict: how much of what the teacher learned the student kept, measured from
the trivial answer up, and the gate export and package apply to it. Torch-free.

Retention as a plain ratio (student ÷ teacher accuracy) hides a student that learned nothing: on
a paraphrase task where a constant "paraphrase" scores 66.5%, a student at 67.4% validation
against a teacher at 81.2% keeps "83%" of the teacher and every other gate stayed green. So the
verdict also measures both models from the trivial baseline — the majority class of the training
labels (for classes), a constant score (for scores, whose Pearson r is 0), every label always (for
multi-label; each task kind's entry says its own) — and the gate reads the
share of the teacher's gain over that baseline the student kept:

    learned = (student − trivial) / (teacher − trivial)

Floor `LEARNED_FLOOR` = 0.5: a student that kept less than half of what its teacher learned above
the trivial answer is not shipped without `--allow-low-retention`. On the test splits the project has
measured, shipped students sit far above it and the failure far below (trivial = the training
majority class scored on test):

    SST-2 (bench/results/sst2_ladder.md; teacher 88.63, trivial 49.9): width 86.55 → 95%,
        BiLSTM 85.80 → 93%, static 82.23 → 83%
    SICK entailment (sick_entailment.md; teacher 85.83, trivial 56.7): 3 layers 85.33 → 98%
    the demo (Rotten Tomatoes; teacher 81.57, trivial ~50): student 81.65 → 100%
    the unseen paraphrase task of issue 44 (teacher 78.26, trivial 66.5): 2 layers 64.81 → −14%

A teacher within `TEACHER_MARGIN` of the trivial answer has learned nothing to keep: the verdict
says so and the gate does not judge the student.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import KdeployError

LEARNED_FLOOR = 0.5  # share of the teacher's gain over the trivial answer a shipped student keeps
TEACHER_MARGIN = 0.02  # a teacher closer than this (2 points, or r 0.02) to the trivial answer taught nothing


@dataclass
class Retention:
    """One split's figures on the task's main metric (accuracy, Pearson r, macro-F1), as fractions."""

    metric: str  # the main metric's name (kdeploy.metrics.TITLES)
    split: str
    student: float
    teacher: float
    trivial: float
    trivial_answer: str  # what the trivial model answers ("positive", "a constant score")

    @classmethod
    def from_record(cls, raw) -> "Retention | None":
        """A verdict as a record, report or manifest holds it; None where it is absent or not one
        (a hand-edited file: no verdict rather than a wrong one, or a crash)."""
        import math

        if not isinstance(raw, dict):
            return None
        try:
            out = cls(**{f: raw[f] for f in ("metric", "split", "student", "teacher", "trivial", "trivial_answer")})
        except (KeyError, TypeError):
            return None
        numbers = (out.student, out.teacher, out.trivial)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            return None
        return out

    @property
    def ratio(self) -> float | None:
        return self.student / self.teacher if self.teacher > 0 else None

    @property
    def margin(self) -> float:
        """The student above the trivial answer, in points (or in r)."""
        return self.student - self.trivial

    @property
    def teacher_margin(self) -> float:
        return self.teacher - self.trivial

    @property
    def learned(self) -> float | None:
        """The share of the teacher's gain over the trivial answer the student kept (None: the
        teacher has no gain to keep)."""
        return self.margin / self.teacher_margin if self.teacher_margin >= TEACHER_MARGIN else None

    @property
    def passed(self) -> bool:
        return self.learned is None or self.learned >= LEARNED_FLOOR - 1e-9  # at the floor is above it

    def line(self) -> str:
        """The verdict in one plain line."""
        from .metrics import PERCENT, TITLES

        share = self.metric in PERCENT
        scale, unit = (100, " points") if share else (1, "")
        title = "" if self.metric == "accuracy" else f"{TITLES.get(self.metric, self.metric)} "
        f = (lambda v: f"{title}{100 * v:.2f}%") if share else (lambda v: f"{title}{v:.3f}")
        trivial = f"the trivial answer ({self.trivial_answer}: {f(self.trivial)})"
        kept = f"{100 * self.ratio:.1f}% of the teacher" if self.ratio is not None else "?"
        head = (f"retention on {self.split}: student {f(self.student)}, teacher {f(self.teacher)} ({kept}); "
                f"{scale * self.margin:+.2f}{unit} over {trivial}")
        if self.learned is None:
            return head + "; the teacher itself is not above the trivial answer: nothing to judge the student by"
        verdict = f"it kept {100 * self.learned:.0f}% of the teacher's gain over it"
        if not self.passed:
            verdict += (f", below the {100 * LEARNED_FLOOR:.0f}% floor: the student learned little (try more layers, "
                        "more epochs or more transfer text)")
        return f"{head}; {verdict}"

    def check(self, allowed: bool, what: str) -> None:
        """The gate: refuse below the floor unless allowed (then the verdict travels with the model)."""
        if self.passed or allowed:
            return
        raise KdeployError(f"{what}: {self.line()}; not shipped as a usable model (--allow-low-retention to "
                           "ship it anyway, with this verdict recorded)")


def trivial_answer(train_labels, eval_labels, label_names: list[str], task: str = "classification") -> tuple[float, str]:
    """(score of the trivial model on the evaluated split, what it answers): the task kind's own
    (the training split's majority class; a constant score; every label, always)."""
    from .tasks import task_kind

    return task_kind(task).trivial_score(train_labels, eval_labels, label_names)


def verdict(student_scores, teacher_scores, train_labels, eval_labels, label_names: list[str],
            split: str, task: str = "classification") -> Retention | None:
    """The verdict from a student's and a teacher's `Scores` on one split (None: one is missing)."""
    if student_scores is None or teacher_scores is None:
        return None
    trivial, answer = trivial_answer(train_labels, eval_labels, label_names, task)
    return Retention(metric=student_scores.metric, split=split, student=float(student_scores.main),
                     teacher=float(teacher_scores.main), trivial=float(trivial), trivial_answer=answer)
