"""A search's outcome: every trial, the Pareto front across student families, each family's
best point, and the verdict on the hand-picked default."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results import Result, markdown_table


@dataclass
class TrialRow:
    trial: int
    family: str  # layers | width | bilstm | cnn | static
    accuracy: float  # int8 ONNX, validation split
    latency_ms: float  # batch-1 p50 on this machine
    throughput_bs32: float | None = None  # texts/s in length-sorted batches of 32
    size_mib: float | None = None
    baseline: bool = False
    params: dict = field(default_factory=dict)  # the family's knobs, alpha, temperature, learning rate
    recipe: str | None = None
    machine: str | None = None  # where its latency was measured (a shared study has several)
    low_retention: bool = False  # kept less than half of its teacher's gain over the trivial answer: off the front

    def knobs(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("alpha", "temperature")}
        return ", ".join(f"{k} {_value(v)}" for k, v in shown.items())


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
    machine: str | None = None  # the front's trials were all timed here
    other_machines: dict[str, int] = field(default_factory=dict)  # trials timed elsewhere (a shared study)
    title = "search front"

    def best_per_family(self) -> dict[str, TrialRow]:
        """Each family's most accurate point (its cheapest among equals)."""
        best: dict[str, TrialRow] = {}
        for row in self.all:
            cur = best.get(row.family)
            if cur is None or (row.accuracy, -row.latency_ms) > (cur.accuracy, -cur.latency_ms):
                best[row.family] = row
        return best

    def table(self):
        rows = []
        shown = self.front + ([self.baseline] if self.baseline and self.baseline not in self.front else [])
        for row in shown:
            tag = " (default)" if row.baseline else ""
            rows.append([row.trial, row.family, f"{100 * row.accuracy:.2f}", f"{row.latency_ms:.2f}",
                         f"{row.throughput_bs32:.0f}" if row.throughput_bs32 else "", _value(row.size_mib),
                         row.knobs(), f"{Path(row.recipe).name if row.recipe else ''}{tag}"])
        return ["trial", "family", "accuracy", "p50 ms (bs 1)", "texts/s (bs 32)", "MiB", "knobs", "recipe"], rows

    def to_markdown(self) -> str:
        headers, rows = self.table()
        family = [[f, r.trial, f"{100 * r.accuracy:.2f}", f"{r.latency_ms:.2f}",
                   f"{r.throughput_bs32:.0f}" if r.throughput_bs32 else "", _value(r.size_mib), r.knobs()]
                  for f, r in sorted(self.best_per_family().items(), key=lambda kv: -kv[1].latency_ms)]
        return "\n".join(["# kdeploy search: accuracy/latency front", "",
                          "Objectives: int8 ONNX validation accuracy (max), batch-1 p50 latency on this machine "
                          f"(min). Trials: {self.trials}. {self.verdict}.", "",
                          *([f"Timed on {self.machine}; trials timed on other machines are on their own fronts: "
                             + ", ".join(f"{m} ({n})" for m, n in self.other_machines.items()), ""]
                            if self.other_machines else []),
                          markdown_table(headers, rows), "", "## Each family's best point", "",
                          markdown_table(["family", "trial", "accuracy", "p50 ms (bs 1)", "texts/s (bs 32)", "MiB",
                                          "knobs"], family), "", "![front](front.png)", ""])


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1e}" if v < 0.01 else f"{v:.2f}"
    return str(v)
