"""What the export stage wrote and checked: saved as the folder's export_report.json."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..metrics import Scores
from ..modelio.invariance import Invariance
from ..names import EXPORT_REPORT
from ..results import Result, pct
from ..retention import Retention
from .files import FileRole, role_of

REPORT = EXPORT_REPORT


@dataclass
class Parity:
    """The comparison of one ONNX file with PyTorch on real inputs at several shapes."""

    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    tolerance: float | None = None  # None: measured only (quantised files are gated on accuracy instead)
    cases: list[dict] = field(default_factory=list)
    passed: bool | None = None
    skipped: str | None = None


@dataclass
class GatedScores(Scores):
    agreement_with: str | None = None  # pytorch, or model.onnx for derived files
    max_abs_diff_vs_pytorch: float | None = None
    drop_points: float | None = None  # accuracy points below the fp32 export
    gate_passed: bool | None = None
    paired_test: dict | None = None  # how sure the verdict is: McNemar on the disagreements, 95% CI of the drop


@dataclass
class ExportAccuracy:
    split: str
    examples: int
    pytorch: Scores
    files: dict[str, GatedScores] = field(default_factory=dict)


@dataclass
class ExportFile:
    mib: float
    dtype: str
    opset: int | None = None
    source: str | None = None
    optimization: dict | None = None
    quantization: dict | None = None
    size_ratio_to_fp32: float | None = None
    advice: str | None = None
    runtime: str | None = None  # openvino for an IR; onnxruntime otherwise
    invariance: Invariance | None = None  # alone vs batched vs beside long texts (export's evaluation texts)

    @property
    def batch_invariant(self) -> bool | None:
        return None if self.invariance is None else self.invariance.passed


@dataclass
class ExportEntry:
    """One export file as a consumer sees it: its role, and everything checked about it."""

    role: FileRole
    info: ExportFile
    parity: Parity
    scores: GatedScores | None

    @property
    def file(self) -> str:
        return self.role.file

    @property
    def quantisation(self) -> dict | None:
        return self.info.quantization

    @property
    def batch_invariant(self) -> bool | None:
        return self.info.batch_invariant


@dataclass
class ExportResult(Result):
    model: str
    config: dict
    max_length: int
    label_names: list[str]
    exporter: str = ""
    files: dict[str, ExportFile] = field(default_factory=dict)
    parity: dict[str, Parity] = field(default_factory=dict)
    accuracy: ExportAccuracy | None = None
    choice: dict | None = None  # which fusion plan / quantisation ran fastest here, with the timings and why
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    data_fingerprint: str | None = None
    retention: Retention | None = None  # the student's verdict, from its record
    low_retention_allowed: bool | None = None  # shipped below the floor with --allow-low-retention
    versions: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    title = "export"

    @classmethod
    def of_folder(cls, folder) -> "ExportResult":
        """The export folder's report, typed."""
        return cls.load(Path(folder) / REPORT)

    def finish(self, record, data_fingerprint: str | None, started: float, folder: Path) -> None:
        """What every export records last (its time, the model's provenance and retention verdict,
        versions, machine), then the report saved into the export's folder."""
        import time

        from ..environment import library_versions, machine

        self.timings["total_seconds"] = round(time.perf_counter() - started, 2)
        self.provenance = {**record.provenance, **self.provenance}  # its data: for later gates
        self.data_fingerprint = data_fingerprint
        self.retention = record.retention
        self.low_retention_allowed = True if record.retention is not None and not record.retention.passed else None
        self.versions, self.machine = library_versions(), machine()
        self.save(folder / REPORT)

    def scores(self, name: str) -> GatedScores | None:
        return self.accuracy.files.get(name) if self.accuracy else None

    def entry(self, role: FileRole) -> ExportEntry | None:
        """The file of this role with its parity and scores (None when the export did not write it)."""
        info = self.files.get(role.file)
        if info is None:
            return None
        return ExportEntry(role, info, self.parity.get(role.file) or Parity(), self.scores(role.file))

    def entries(self) -> list[ExportEntry]:
        """Every file this export wrote that has a role, in the order they were written."""
        return [self.entry(r) for r in (role_of(name) for name in self.files) if r is not None]

    def table(self):
        rows = []
        for name, info in self.files.items():
            parity, acc = self.parity.get(name) or Parity(), self.scores(name)
            gate = parity.passed if acc is None or acc.gate_passed is None else acc.gate_passed
            inv = info.invariance
            rows.append([name, f"{info.mib:.1f}",
                         f"{parity.max_abs_diff:.1e}" if parity.max_abs_diff is not None else "-",
                         pct(parity.argmax_agreement), acc.cells(1)[0] if acc else "-",
                         f"{acc.drop_points:+.2f}" if acc and acc.drop_points is not None else "-",
                         "-" if inv is None else f"{'yes' if inv.passed else 'NO'} ({inv.max_abs_diff:.0e}, "
                                                 f"{inv.flips} flips)",
                         {True: "pass", False: "FAIL", None: "-"}[gate]])
        return ["file", "MiB", "max |Δlogit|", "argmax agree", "accuracy", "drop (pts)", "batch-invariant",
                "gate"], rows
