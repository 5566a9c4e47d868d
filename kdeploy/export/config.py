"""Export settings, validated at construction."""
from __future__ import annotations

from dataclasses import dataclass

from ..data import DataConfig
from ..errors import KdeployError

OPTIMIZE_LEVELS = ("O1", "O2", "O3", "O4")  # optimum's names for ORT transformer fusions
QUANTIZE_MODES = ("int8", "int8-static")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass
class ExportConfig:
    model: str  # a model folder (kdeploy distill/finetune output or any HF sequence classifier)
    out: str
    data: DataConfig | None = None  # default: the data recorded in the model's kdeploy.json
    opset: int = 18
    optimize: str | None = None
    quantize: str | None = None
    fp16: bool = False
    isa: str = "auto"  # int8 preset: auto (detected), avx2, avx512, avx512_vnni, arm64
    per_channel: bool = False
    calibration_samples: int = 256
    calibration_method: str = "minmax"
    atol: float = 1e-4
    max_accuracy_drop: float = 1.0  # points of accuracy
    max_length: int | None = None  # default: the training max length
    eval_split: str = "test"  # falls back to validation when absent
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.optimize is not None:
            self.optimize = str(self.optimize).upper()
            if self.optimize not in OPTIMIZE_LEVELS:
                raise KdeployError(f"--optimize must be one of {', '.join(OPTIMIZE_LEVELS)}, got {self.optimize!r}")
        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise KdeployError(f"--quantize must be int8 or int8-static, got {self.quantize!r}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise KdeployError(f"--calibration-method must be one of {', '.join(CALIBRATION_METHODS)}")
        from .quantize import PRESETS

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
