"""The export stage's settings (torch-free): the only place they and their defaults are declared."""
from __future__ import annotations

from dataclasses import dataclass

from ..configtools import check_finite
from ..errors import KdeployError

OPTIMIZE_LEVELS = ("O1", "O2", "O3", "O4")  # optimum's names for ORT transformer fusions
# int8: calibrated (static QDQ) int8, batch-invariant — the default; int8-static says the same
# explicitly; int8-dynamic: activations scaled per call (faster to make, answers move with the batch).
QUANTIZE_MODES = ("int8", "int8-static", "int8-dynamic")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# How calibrated int8 is written: auto times both and keeps the faster; integer: onnxruntime's
# integer operators (QAttention, MatMulIntegerToFloat) on the fused graph, scales frozen;
# qdq: QuantizeLinear/DequantizeLinear pairs on the unfused graph, the portable form that
# OpenVINO, TensorRT and onnxruntime's other providers read.
INT8_FORMATS = ("auto", "integer", "qdq")
# int8 weight type and reduce_range per instruction set, as optimum's AutoQuantizationConfig sets
# them: AVX2 without VNNI saturates u8×s8 products, so its preset uses u8 weights.
# Static (calibrated) int8 follows onnxruntime's CPU guidance in quantize_static: u8 activations
# and s8 weights on x86, 7-bit weights (reduce_range) where no VNNI guards the u8×s8 sums, s8×s8 on ARM.
PRESETS: dict[str, dict] = {
    "avx2": {"weight_type": "QUInt8", "reduce_range": False,
             "static_activation_type": "QUInt8", "static_weight_type": "QInt8", "static_reduce_range": True},
    "avx512": {"weight_type": "QInt8", "reduce_range": False,
               "static_activation_type": "QUInt8", "static_weight_type": "QInt8", "static_reduce_range": True},
    "avx512_vnni": {"weight_type": "QInt8", "reduce_range": False,
                    "static_activation_type": "QUInt8", "static_weight_type": "QInt8", "static_reduce_range": False},
    "arm64": {"weight_type": "QInt8", "reduce_range": False,
              "static_activation_type": "QInt8", "static_weight_type": "QInt8", "static_reduce_range": False},
}


def _none(value):
    return None if value is None or str(value).strip().lower() in ("none", "no", "off", "") else value


@dataclass
class ExportSettings:
    """ONNX (parity-gated), fused at an optimum O-level, quantised (accuracy-gated)."""

    optimize: str | None = "O2"  # O1..O4, or none
    quantize: str | None = "int8"  # int8 (= int8-static: calibrated, batch-invariant), int8-dynamic, or none
    fp16: bool = False  # also model.fp16.onnx, for the CUDA execution provider
    openvino: bool = False  # also model.ov.xml: OpenVINO IR (fp16 weights, bf16 compute on AMX), accuracy-gated
    isa: str = "auto"  # int8 preset: auto (detected), avx2, avx512, avx512_vnni, arm64
    per_channel: bool = True  # a weight scale per output channel: same speed, closer to fp32 (bench/results/static_int8_*_per_channel.md)
    calibration_samples: int = 256  # training texts, a seeded sample (calibration_seed)
    calibration_seed: int = 0
    int8_format: str = "auto"  # calibrated int8: auto (the faster here), integer (onnxruntime), qdq (portable)
    calibration_method: str = "minmax"
    opset: int = 18
    atol: float = 1e-4  # parity: max |logit difference| vs PyTorch
    max_accuracy_drop: float = 1.0  # points of accuracy a quantised file may lose
    max_length: int | None = None  # default: the model's training max length
    eval_split: str = "test"  # falls back to validation when absent
    allow_low_retention: bool = False  # export a student below the retention floor anyway (its verdict travels with it)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        check_finite(self)
        self.optimize = _none(self.optimize)
        self.quantize = _none(self.quantize)
        if self.optimize is not None:
            self.optimize = str(self.optimize).upper()
            if self.optimize not in OPTIMIZE_LEVELS:
                raise KdeployError(f"--optimize must be one of {', '.join(OPTIMIZE_LEVELS)} or none, got {self.optimize!r}")
        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise KdeployError(f"--quantize must be int8, int8-static, int8-dynamic or none, got {self.quantize!r}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise KdeployError(f"--calibration-method must be one of {', '.join(CALIBRATION_METHODS)}")
        if self.int8_format not in INT8_FORMATS:
            raise KdeployError(f"--int8-format must be one of {', '.join(INT8_FORMATS)}, got {self.int8_format!r}")
        if self.int8_format == "integer" and self.calibration_method != "minmax":
            raise KdeployError(f"--int8-format integer freezes minmax ranges; --calibration-method "
                               f"{self.calibration_method} needs --int8-format qdq (or auto)")
        if self.isa != "auto" and self.isa not in PRESETS:
            raise KdeployError(f"--isa must be auto or one of {', '.join(PRESETS)}, got {self.isa!r}")
        if not 7 <= self.opset <= 21:
            raise KdeployError(f"opset {self.opset} is out of the supported range 7..21")
        if self.atol <= 0 or self.max_accuracy_drop < 0:
            raise KdeployError("atol must be positive and max_accuracy_drop non-negative")
        if self.calibration_samples < 1:
            raise KdeployError("calibration_samples must be at least 1")
        if self.eval_split not in ("test", "validation"):
            raise KdeployError("eval_split must be test or validation")
        if self.max_length is not None and self.max_length < 2:
            raise KdeployError(f"--max-length must be at least 2 tokens, got {self.max_length}")

    @property
    def static(self) -> bool:
        """Calibrated int8: the file must pass the batch-invariance gate."""
        return self.quantize in ("int8", "int8-static")

    @property
    def gated(self) -> bool:
        """Whether a derived (quantised, fp16, OpenVINO) file needs labelled data for its accuracy gate."""
        return self.quantize is not None or self.fp16 or self.openvino
