"""A search's outcome: every trial, the Pareto front, and the verdict on the default."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results import Result, markdown_table


@dataclass
class TrialRow:
    trial: int
    layers: int
    alpha: float
    temperature: float
    learning_rate: float
    heads: float
    vocab: bool
    accuracy: float  # int8 ONNX, validation split
    latency_ms: float  # batch-1 p50 on this machine
    size_mib: float | None = None
    baseline: bool = False
    recipe: str | None = None


@dataclass
class SearchResult(Result):
    front: list[TrialRow]
    baseline: TrialRow | None
    faster_at_no_lower_accuracy: list[TrialRow]
    verdict: str
    trials: dict[str, int]
    all: list[TrialRow] = field(default_factory=list)
    resumed_with_trials: int = 0
    seconds: float = 0.0
    environment: dict = field(default_factory=dict)
    title = "search front"

    def table(self):
        cols = ["trial", "layers", "alpha", "temperature", "learning_rate", "heads", "vocab", "accuracy",
                "latency_ms", "size_mib"]
        rows = []
        shown = self.front + ([self.baseline] if self.baseline and self.baseline not in self.front else [])
        for row in shown:
            tag = " (default)" if row.baseline else ""
            rows.append([_fmt(k, getattr(row, k)) for k in cols]
                        + [f"{Path(row.recipe).name if row.recipe else ''}{tag}"])
        return cols + ["recipe"], rows

    def to_markdown(self) -> str:
        headers, rows = self.table()
        return "\n".join(["# kdeploy search: accuracy/latency front", "",
                          "Objectives: int8 ONNX validation accuracy (max), batch-1 p50 latency on this machine "
                          f"(min). Trials: {self.trials}. {self.verdict}.", "",
                          markdown_table(headers, rows), "", "![front](front.png)", ""])


def _fmt(key, value) -> str:
    if value is None:
        return ""
    if key == "accuracy":
        return f"{100 * value:.2f}"
    if key in ("latency_ms", "size_mib", "alpha", "temperature", "heads"):
        return f"{value:.2f}"
    if key == "learning_rate":
        return f"{value:.1e}"
    return str(value)
