"""A benchmark's outcome: models side by side, saved as report.json and rendered as
Markdown, HTML (with plots) and a terminal table from the same object."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..metrics import Scores
from ..modelio.invariance import Invariance
from ..names import BENCH_REPORT
from ..results import Result, pct, print_table
from ..results import markdown_table as _markdown_table
from .latency import LatencySummary

REPORT = BENCH_REPORT


@dataclass
class BenchScores(Scores):
    drop_points_vs_reference: float | None = None
    retention: float | None = None  # the main metric as a share of the reference's


@dataclass
class VsReference:
    size_ratio: float | None = None
    p50_speedup: dict[int, float] = field(default_factory=dict)
    throughput_ratio: dict[int, float] = field(default_factory=dict)
    # against the fastest runtime variant of the reference (bf16, compile, ONNX int8, OpenVINO, ...)
    p50_speedup_vs_fastest_reference: dict[int, float] = field(default_factory=dict)
    throughput_ratio_vs_fastest_reference: dict[int, float] = field(default_factory=dict)


@dataclass
class Efficiency:
    """How close a model came to the machine's limit at one batch size."""

    achieved_gmacs: float | None = None  # multiply-accumulates per second, padding included
    peak_share: float | None = None  # of the machine's GEMM peak for its precision
    padding_share: float | None = None  # of the tokens computed, how many were padding


@dataclass
class ModelBench:
    name: str
    kind: str  # pytorch | pytorch-int8 | onnx
    path: str
    size_mib: float
    provider: str
    provider_requested: str
    threads: int | None
    latency: dict[int, LatencySummary] = field(default_factory=dict)
    tokenizer_ms: dict[int, float] = field(default_factory=dict)
    memory_mib: float | None = None
    accuracy: BenchScores | None = None
    vs_reference: VsReference = field(default_factory=VsReference)
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"
    origin: str = ""  # the model it was made from: runtime variants of one model share it
    efficiency: dict[int, Efficiency] = field(default_factory=dict)
    macs_per_sequence: dict | None = None  # a + b*S + c*S^2, and what counted it
    invariance: Invariance | None = None  # each scored text alone vs batched vs beside the longest
    train_seconds: float | None = None  # a baseline: how long it took to fit on the train split


@dataclass
class BenchReport(Result):
    config: dict
    models: list[ModelBench]
    reference: str
    latency_inputs: str
    environment: dict
    data: dict | None = None
    accuracy_split: str | None = None
    process_peak_rss_mib: float | None = None
    peaks: dict | None = None  # the machine's int8 / fp32 GEMM GMAC/s, measured in this run
    machine_load: dict | None = None  # how busy the machine was while this ran
    skipped: list[str] = field(default_factory=list)  # runtime kinds not installed here
    headline: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # the baselines against each student (also in the headline)
    title = "benchmark"

    @classmethod
    def of_folder(cls, folder) -> "BenchReport":
        """The bench folder's report, typed."""
        return cls.load(Path(folder) / REPORT)

    def model(self, name: str) -> ModelBench:
        return next(m for m in self.models if m.name == name)

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.models[0].latency)

    def table(self):
        headers = ["model", "provider"]
        for bs in self.batch_sizes:
            headers += [f"p50 ms bs{bs}", f"sent/s bs{bs}"]
        headers += ["MiB", self.metric_titles()[0], "drop pts", "batch-invariant"]
        rows = []
        for m in self.models:
            row = [m.name, m.provider]
            for bs in self.batch_sizes:
                row += [f"{m.latency[bs].p50_ms:.2f}", f"{m.latency[bs].throughput_per_s:.0f}"]
            a = m.accuracy
            row += [f"{m.size_mib:.1f}", a.cells(1)[0] if a else "-",
                    f"{a.drop_points_vs_reference:+.2f}" if a and a.drop_points_vs_reference is not None else "-",
                    _invariance_cell(m.invariance)]
            rows.append(row)
        return headers, rows

    def metric_titles(self) -> list[str]:
        """The titles of the scored models' first two metrics (accuracy, macro-F1 for classes)."""
        from ..metrics import TITLES

        scored = next((m.accuracy for m in self.models if m.accuracy is not None), None)
        names = list(scored.metrics)[:2] if scored is not None else ["accuracy", "macro_f1"]
        return [TITLES.get(n, n) for n in names] + ["-"] * (2 - len(names))

    def render(self, title: str | None = None) -> None:
        from ..console import errors, say

        headers, rows = self.table()
        print_table(title or f"benchmark ({self.config.get('provider')}, {self.environment.get('threads')} threads)",
                    headers, rows)
        for line in self.headline:
            say(line)
        machine = self.environment.get("machine") or {}
        if machine.get("cpu_class"):
            flags = ", ".join(machine.get("isa") or []) or "no AVX2"
            say(f"CPU: {machine.get('cpu')}, class {machine['cpu_class']} ({flags}): int8 speed-ups differ 2-3x between "
                "AVX2-only and VNNI machines; compare figures of one class")
        for m in self.models:
            for n in m.notes:
                errors.print(f"note: {m.name}: {n}", markup=False)
        for n in self.skipped:
            errors.print(f"note: {n}", markup=False)
        if self.machine_load and self.machine_load.get("warning"):
            errors.print(f"warning: {self.machine_load['warning']}", markup=False, style="yellow")

    def to_markdown(self) -> str:
        env = self.environment
        machine = env.get("machine", {})
        lines = ["# kdeploy benchmark", "",
                 f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores"
                 + (f", GPU {machine['gpu']}" if machine.get("gpu") else "")
                 + f"; threads {env.get('threads')}; provider requested: {self.config.get('provider')}; "
                 f"latency inputs: {self.latency_inputs}.",
                 "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()), ""]
        for bs in self.batch_sizes:
            rows = []
            for m in self.models:
                s = m.latency[bs]
                rows.append([m.name, m.provider, f"{s.p50_ms:.2f}", f"{s.p90_ms:.2f}", f"{s.p95_ms:.2f}",
                             f"{s.p99_ms:.2f}", f"{s.mean_ms:.2f} ± {s.stdev_ms:.2f}", f"{s.throughput_per_s:.1f}",
                             f"{m.tokenizer_ms[bs]:.2f}", f"{m.vs_reference.p50_speedup[bs]:.2f}×"])
            lines += [f"## Batch {bs}", "", markdown_table(
                ["model", "provider", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "mean ± sd ms", "sentences/s",
                 "tokenizer ms", "speed-up vs reference"], rows), ""]
        sizes = []
        for m in self.models:
            a = m.accuracy
            ratio = m.vs_reference.size_ratio
            sizes.append([m.name, f"{m.size_mib:.1f}", f"{ratio:.3f}" if ratio is not None else "-",
                          f"{m.memory_mib:.1f}" if m.memory_mib is not None else "-",
                         *(a.cells(2) if a else ["-", "-"]),
                         pct(a.agreement if a else None),
                         a.drop_points_vs_reference if a and a.drop_points_vs_reference is not None else "-",
                         _invariance_cell(m.invariance)])
        if self.peaks:
            rows = []  # the latency rows are done with; these are the efficiency rows
            for m in self.models:
                for bs, e in m.efficiency.items():
                    rows.append([m.name, bs, m.precision, f"{e.achieved_gmacs:.1f}" if e.achieved_gmacs else "-",
                                 pct(e.peak_share), pct(e.padding_share)])
            lines += ["## How close to the machine's limit", "",
                      f"Measured in this run: int8 GEMM {self.peaks['int8_gmacs']:.0f} GMAC/s, bf16 "
                      f"{self.peaks.get('bf16_gmacs') or 0:.0f}, fp32 {self.peaks['fp32_gmacs']:.0f} "
                      f"({self.peaks['method']}, {self.peaks['threads']} threads). A model's share is of the peak of its "
                      "precision. MACs include padding.", "",
                      markdown_table(["model", "batch", "precision", "GMAC/s", "% of peak", "% padding"], rows), ""]
        lines += ["## Size, memory and accuracy", "", markdown_table(
            ["model", "size MiB", "size ratio", "RSS growth on load MiB", *self.metric_titles(),
             "agreement with reference", "drop (points)", "batch-invariant (max |Δp|, flips)"], sizes)]
        notes = [f"- {m.name}: {n}" for m in self.models for n in m.notes] + [f"- {n}" for n in self.skipped]
        if self.machine_load:
            load = self.machine_load
            notes.append(f"- machine load while timing: other processes {load.get('other_processes_cores')} cores on "
                         f"average, load average {load.get('load_average_start')} → {load.get('load_average_end')}"
                         + (f". WARNING: {load['warning']}" if load.get("warning") else " (quiet)"))
        if notes:
            lines += ["", "Notes:", *notes]
        if self.headline:
            lines = lines[:4] + ["## Headline", "", *[f"- {h}" for h in self.headline], ""] + lines[4:]
        lines += ["", f"Reference model: {self.reference}. Process peak RSS: {self.process_peak_rss_mib} MiB.", ""]
        return "\n".join(lines)


def markdown_table(headers: list, rows: list[list]) -> str:
    """The shared table, its cells' `|` escaped (`\\|`, as Markdown reads it): a header such as
    "max |Δp|" or a model's path must stay one cell (report.html splits on unescaped bars)."""
    def esc(cell) -> str:
        return str(cell).replace("|", "\\|")
    return _markdown_table([esc(h) for h in headers], [[esc(c) for c in row] for row in rows])


def _invariance_cell(inv: Invariance | None) -> str:
    if inv is None:
        return "-"
    return f"{'yes' if inv.passed else 'NO'} ({inv.max_abs_diff:.0e}, {inv.flips})"
