"""OpenVINO behind the same small interface as an onnxruntime session (inputs, outputs, run),
so export's gates, bench and the predictor treat an OpenVINO IR like any other file.
Torch-free; openvino is imported only when such a session is made."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KdeployError

LABELS_KEY = ["kdeploy", "label_names"]  # where a bundle binds its label names into the IR
ONNX_LABELS_KEY = ["framework", "kdeploy.label_names"]  # an ONNX file's metadata_props, as OpenVINO shows them


@dataclass
class _Arg:
    name: str
    shape: list


class OpenVINOSession:
    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "bf16"):
        try:
            import openvino as ov
        except ImportError:
            raise KdeployError(f"{path} runs on OpenVINO, which is not installed: pip install openvino") from None
        core = ov.Core()
        try:
            self.model = core.read_model(str(path))
        except RuntimeError as exc:  # the ONNX front end lists every operator it could not convert
            raise KdeployError(f"OpenVINO cannot read {Path(path).name}: {_failed_operators(exc)}") from None
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(self.model, "CPU", config)
        except RuntimeError as exc:
            raise KdeployError(f"cannot load {path} in OpenVINO: {str(exc).splitlines()[0]}") from None
        self._request = compiled.create_infer_request()
        self._inputs = [_Arg(i.get_any_name(), []) for i in compiled.inputs]
        self._outputs = [_Arg(o.get_any_name(), [d.get_length() if d.is_static else None
                                                for d in o.get_partial_shape()]) for o in compiled.outputs]
        self.precision = precision

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def get_providers(self):
        return [f"OpenVINO-CPU ({self.precision})"]

    def run(self, output_names, feed: dict):
        result = self._request.infer({k: np.asarray(v, dtype=np.int64) for k, v in feed.items()})
        return [np.asarray(v) for v in result.values()]

    def label_names(self) -> list[str] | None:
        """The label names bound into the file: an IR's runtime info, or an ONNX file's metadata."""
        for key in (LABELS_KEY, ONNX_LABELS_KEY):
            try:
                return json.loads(self.model.get_rt_info(key).astype(str))
            except Exception:  # no such rt_info entry
                continue
        return None


def _failed_operators(exc: Exception) -> str:
    """OpenVINO's conversion report, cut to the operators it could not convert (it runs to many lines)."""
    import re

    failed = []
    for listed in re.findall(r"^-- (?:No conversion rule found for operations|Conversion is failed for): (.+)$",
                             str(exc), re.MULTILINE):
        failed += [op.strip() for op in listed.split(",") if op.strip()]
    failed = list(dict.fromkeys(failed))
    if failed:
        return "it has no conversion for " + ", ".join(failed[:6]) + (" ..." if len(failed) > 6 else "")
    return str(exc).strip().splitlines()[-1][:300]


def to_openvino(src: Path, dst: Path, labels: list[str] | None = None) -> dict:
    """ONNX -> OpenVINO IR (dst: model.xml, with its .bin), fp16 weights (compute follows the
    precision hint at load time); label names bound into the IR's runtime info."""
    import openvino as ov

    model = ov.convert_model(str(src))
    if labels is not None:
        model.set_rt_info(json.dumps(labels), LABELS_KEY)
    ov.save_model(model, str(dst), compress_to_fp16=True)
    return {"runtime": "openvino", "version": ov.__version__, "weights": "fp16", "compute": "bf16 where supported",
            "files": [dst.name, dst.with_suffix(".bin").name]}
