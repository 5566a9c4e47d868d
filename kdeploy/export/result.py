"""What the export stage wrote and checked: saved as the folder's export_report.json."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..metrics import Scores
from ..modelio.invariance import Invariance
from ..results import Result, pct

REPORT = "export_report.json"


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
    versions: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    title = "export"

    def scores(self, name: str) -> GatedScores | None:
        return self.accuracy.files.get(name) if self.accuracy else None

    def table(self):
        rows = []
        for name, info in self.files.items():
            parity, acc = self.parity.get(name) or Parity(), self.scores(name)
            gate = parity.passed if acc is None or acc.gate_passed is None else acc.gate_passed
            inv = info.invariance
            rows.append([name, f"{info.mib:.1f}",
                         f"{parity.max_abs_diff:.1e}" if parity.max_abs_diff is not None else "-",
                         pct(parity.argmax_agreement), pct(acc.accuracy if acc else None),
                         f"{acc.drop_points:+.2f}" if acc and acc.drop_points is not None else "-",
                         "-" if inv is None else f"{'yes' if inv.passed else 'NO'} ({inv.max_abs_diff:.0e}, "
                                                 f"{inv.flips} flips)",
                         {True: "pass", False: "FAIL", None: "-"}[gate]])
        return ["file", "MiB", "max |Δlogit|", "argmax agree", "accuracy", "drop (pts)", "batch-invariant",
                "gate"], rows
