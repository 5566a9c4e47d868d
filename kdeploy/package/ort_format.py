"""ONNX → ORT format, for ONNX Runtime Mobile and other minimal builds.

onnxruntime's own converter does the work (`onnxruntime.tools.convert_onnx_models_to_ort`, the
"Fixed" optimisation style). It also writes `required_operators.config`, which is what a user
needs to build a reduced runtime holding only this model's operators, so both go into the bundle.
The NCHWc layout transformer is left out, so the file runs on ARM as well as x86.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

from ..errors import KdeployError

ORT_MODEL = "model.ort"
OPERATORS = "required_operators.config"


def convert_to_ort(onnx_model: Path, out_dir: Path) -> list[str]:
    """Write model.ort and required_operators.config into out_dir; return their names."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory(prefix="kdeploy-ort-") as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        shutil.copy2(onnx_model, src / "model.onnx")
        chatty = logging.getLogger("ort_format_model.utils")
        level = chatty.level
        chatty.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the converter narrates every step
                convert_onnx_models_to_ort(src / "model.onnx", output_dir=dst,
                                           optimization_styles=[OptimizationStyle.Fixed], target_platform="arm")
        except Exception as exc:  # the converter raises whatever the session raised
            raise KdeployError(f"ORT-format conversion of {onnx_model.name} failed: {str(exc).splitlines()[0]}") from None
        finally:
            chatty.setLevel(level)
        configs = sorted(dst.glob("*.config"))
        if not (dst / ORT_MODEL).is_file() or not configs:
            raise KdeployError(f"ORT-format conversion of {onnx_model.name} wrote no {ORT_MODEL}")
        shutil.copyfile(dst / ORT_MODEL, out_dir / ORT_MODEL)
        text = configs[0].read_text(encoding="utf-8")  # its header names the temporary path
        (out_dir / OPERATORS).write_text(text.replace(str(dst / ORT_MODEL), ORT_MODEL), encoding="utf-8")
    return [ORT_MODEL, OPERATORS]
