"""The export stage's files, declared once: each role (fp32, optimised, int8, fp16, OpenVINO)
with its file name, what it holds and which runtime reads it. Every other module names an
export file through its role, so renaming a file or adding a role is one edit here.
Torch-free."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileRole:
    role: str  # fp32 | optimised | int8 | fp16 | openvino
    file: str  # its name inside an export folder
    doc: str
    runtime: str = "onnxruntime"
    companions: tuple[str, ...] = ()  # files that travel with it (OpenVINO's weights)
    derived: bool = True  # made from the fp32 export and gated against it (accuracy), not against PyTorch

    @property
    def quantised(self) -> bool:
        return self.role == "int8"


FP32 = FileRole("fp32", "model.onnx", "the exported graph in fp32, parity-gated against PyTorch", derived=False)
OPTIMISED = FileRole("optimised", "model.opt.onnx", "onnxruntime's fusions (the fastest plan here), parity-gated",
                     derived=False)
INT8 = FileRole("int8", "model.int8.onnx", "int8 (calibrated by default: batch-invariant), accuracy-gated")
FP16 = FileRole("fp16", "model.fp16.onnx", "fp16 weights and compute (for GPUs), accuracy-gated")
OPENVINO = FileRole("openvino", "model.ov.xml", "OpenVINO IR (fp16 weights, bf16 compute), accuracy-gated",
                    runtime="openvino", companions=("model.ov.bin",))

ROLES: dict[str, FileRole] = {r.role: r for r in (FP32, OPTIMISED, INT8, FP16, OPENVINO)}
BY_FILE: dict[str, FileRole] = {r.file: r for r in ROLES.values()}

#: Which file a consumer of an export takes when it is not told: the most deployable one present.
PREFERENCE: tuple[FileRole, ...] = (INT8, OPTIMISED, FP32)


def role_of(file_name: str) -> FileRole | None:
    """The role of an export file name (None for a file kdeploy's export does not write)."""
    return BY_FILE.get(file_name)
