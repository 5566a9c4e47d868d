"""What finetune and distill produce: the record saved as the model folder's kdeploy.json."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..metrics import Scores
from ..modelio.record import MODEL_RECORD
from ..results import Result, metric_cells, metric_names
from ..retention import Retention


def record_config(settings, inputs: dict, data) -> dict:
    """What a record says the stage was given: its settings, its inputs, its data."""
    from ..configtools import to_dict

    return {"settings": to_dict(settings), "inputs": {k: v for k, v in inputs.items() if v is not None},
            "data": to_dict(data)}


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class TeacherSummary:
    model: str | list[str]
    fingerprint: str
    validation: Scores | None = None
    test: Scores | None = None
    weight: float | None = None


@dataclass
class TrainingResult(Result):
    """A trained model's record. `model` says what was trained (builder, kept layers, ...)."""

    stage: str  # finetune | distill (prune keeps the record it pruned and adds `pruning`)
    model: dict
    parameters: int
    config: dict  # {"settings": ..., "inputs": ..., "data": ...}
    data: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    train_seconds: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    validation: Scores | None = None
    test: Scores | None = None
    resumed_from: str | None = None
    best_checkpoint: str | None = None
    data_parallel: dict | None = None
    still_improving: bool | None = None  # the last epoch was the best: more epochs may help
    precision: str | None = None  # the arithmetic training ran in (fp16 asked on a CPU runs fp32)
    teacher: TeacherSummary | None = None
    teachers: list[TeacherSummary] | None = None  # an ensemble's members
    alpha: float | None = None
    temperature: float | None = None
    teacher_logits_cached: dict[str, bool] | None = None
    training_examples: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    layer_objective: dict | None = None
    layer_loss_means: dict[str, float] | None = None
    pruning: dict | None = None
    retention: Retention | None = None  # the student against its teacher and the trivial answer (validation)
    thresholds: dict[str, float] | None = None  # multi-label: each label's decision threshold, tuned on validation
    learning_rate_probe: dict | None = None  # finetune given no rate: each rate's validation loss after the probe
    depth_probe: dict | None = None  # distill given no depth: each depth's validation score after the probe
    reference: dict | None = None  # logits of the model as training left it, on a few texts (checked on reload)
    versions: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)

    @classmethod
    def trained(cls, fitted, **record) -> "TrainingResult":
        """The record of a model `fit` trained: what the stage knows (`record`), then what training measured."""
        return cls(**record, **{f.name: getattr(fitted, f.name) for f in fields(fitted)})

    @classmethod
    def of_folder(cls, folder) -> "TrainingResult":
        """The trained model's record (kdeploy.json), typed."""
        return cls.load(Path(folder) / MODEL_RECORD)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingResult":
        if "model" not in data and "student" in data:  # records written before 0.2 named it "student"
            data = {**data, "model": data["student"]}
        data = {"parameters": data.get("parameters") or (data.get("model") or {}).get("parameters") or 0, **data}
        return super().from_dict(data)

    @property
    def task(self) -> str:
        """The task kind's name, as the data was read."""
        from ..tasks import kind_of_scores

        recorded = (self.config.get("data") or {}).get("task") or (self.data or {}).get("task")
        return recorded or kind_of_scores(self.validation or self.test).name

    @property
    def description(self) -> str:
        m = self.model
        if m.get("builder") == "layers":
            return f"{len(m['teacher_layers'])} layers {m['teacher_layers']}"
        return m.get("builder", "?")

    def table(self) -> tuple[list[str], list[list[str]]]:
        main, second = metric_names(self.task)
        one = lambda sc: metric_cells(sc)[0]  # noqa: E731
        rows = []
        teacher = self.teacher
        if teacher and teacher.test:
            rows.append(["teacher", one(teacher.validation), *metric_cells(teacher.test), "", ""])
        rows.append(["student" if self.stage == "distill" else "model", one(self.validation),
                     *metric_cells(self.test), f"{self.parameters / 1e6:.1f}M", f"{self.train_seconds or 0:.0f}"])
        return ["model", f"val {main}", f"test {main}", f"test {second}", "params", "train s"], rows
