"""The package stage's settings (torch-free): the only place they and their defaults are declared."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import KdeployError

ARCHIVES = ("tar.gz", "zip")


@dataclass
class PackageSettings:
    model_file: str | None = None  # default: int8, else optimised, else fp32
    archive: str | None = "tar.gz"  # tar.gz, zip, or none
    ort_format: bool = False  # also model.ort (+ required_operators.config) for ONNX Runtime Mobile

    def __post_init__(self) -> None:
        if self.archive is not None and str(self.archive).lower() in ("none", "no", ""):
            self.archive = None
        if self.archive not in (None, *ARCHIVES):
            raise KdeployError(f"--archive must be tar.gz, zip or none, got {self.archive!r}")
        if self.model_file is not None and ("/" in self.model_file or not self.model_file.endswith((".onnx", ".xml"))):
            raise KdeployError(f"--model-file names an .onnx file (or model.ov.xml) in the export folder, "
                               f"got {self.model_file!r}")
