"""int8 quantisation with onnxruntime's tools, with instruction-set presets as a registry.

Dynamic (weights int8 ahead of time, activations at run time) is the CPU default; static
calibrates activation ranges on training text. onnxruntime's `quantize_dynamic` also works
on graphs the fusion tool produced (optimum's ORTQuantizer did not, in our prototype).
"""
from __future__ import annotations

import contextlib
import logging
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KdeployError
from .config import PRESETS

_FLOAT = 1  # onnx.TensorProto.FLOAT: fused contrib ops (com.microsoft) defeat shape inference's type lookup


def detect_isa() -> str:
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return "avx2"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser logs advice through the root logger; keep the CLI readable."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_dynamic_int8(src: Path, dst: Path, isa: str, per_channel: bool, exclude: list[str] | None = None) -> dict:
    """Weights int8 ahead of time, activations at run time; `exclude` names nodes kept in fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    preset = PRESETS[isa]
    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, preset["weight_type"]),
                         per_channel=per_channel, reduce_range=preset["reduce_range"],
                         nodes_to_exclude=list(exclude or []),
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": _FLOAT})
    out = {"mode": "dynamic", "isa": isa, "per_channel": per_channel, **preset}
    if exclude:
        out["kept_fp32"] = list(exclude)
    return out


class _Calibration:
    """onnxruntime's CalibrationDataReader over tokenised training text."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - used by some ORT versions
        pass


def quantize_static_int8(src: Path, dst: Path, isa: str, per_channel: bool, method: str,
                         make_batches: Callable[[], list[dict[str, np.ndarray]]]) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    batches = make_batches()
    if not batches:
        raise KdeployError("static quantisation needs calibration text; give training data")
    prepped = dst.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimisation; quantise the original if it fails
        prepped = src
    preset = PRESETS[isa]
    try:
        with _quiet_root_logger():
            quantize_static(str(prepped), str(dst), _Calibration(batches), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=preset["reduce_range"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method],
                            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                            extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": False,
                                           "DefaultTensorType": _FLOAT})
    finally:
        if prepped != src:
            prepped.unlink(missing_ok=True)
    return {"mode": "static", "isa": isa, "per_channel": per_channel, "calibration_method": method,
            "calibration_batches": len(batches), "format": "QDQ"}
