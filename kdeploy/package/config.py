"""The package stage's settings (torch-free): the only place they and their defaults are declared."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import KdeployError
from ..formats import FORMATS as BUNDLE_FORMATS

ARCHIVES = ("tar.gz", "zip")
FORMATS = tuple(BUNDLE_FORMATS)  # python, onnx-e2e, web: declared with their writers and readers


@dataclass
class PackageSettings:
    model_file: str | None = None  # default: int8, else optimised, else fp32
    archive: str | None = "tar.gz"  # tar.gz, zip, or none
    ort_format: bool = False  # also model.ort (+ required_operators.config) for ONNX Runtime Mobile
    formats: list[str] = field(default_factory=lambda: ["python"])  # the first goes to --out, others to OUT-FORMAT
    allow_low_retention: bool = False  # bundle a student below the retention floor (export may have allowed it already)

    def __post_init__(self) -> None:
        if self.archive is not None and str(self.archive).lower() in ("none", "no", ""):
            self.archive = None
        if self.archive not in (None, *ARCHIVES):
            raise KdeployError(f"--archive must be tar.gz, zip or none, got {self.archive!r}")
        if self.model_file is not None and ("/" in self.model_file or not self.model_file.endswith((".onnx", ".xml"))):
            raise KdeployError(f"--model-file names an .onnx file (or model.ov.xml) in the export folder, "
                               f"got {self.model_file!r}")
        if isinstance(self.formats, str):
            self.formats = [f.strip() for f in self.formats.split(",") if f.strip()]
        unknown = [f for f in self.formats if f not in FORMATS]
        if not self.formats or unknown or len(set(self.formats)) != len(self.formats):
            raise KdeployError(f"--format takes distinct formats from {', '.join(FORMATS)} (comma-separated), "
                               f"got {','.join(self.formats) or 'none'}")
        if self.ort_format and "python" not in self.formats:
            raise KdeployError("--ort-format adds model.ort to the python format; add python to --format")
