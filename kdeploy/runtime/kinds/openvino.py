"""Runtime kinds on OpenVINO: fp32, a bf16 hint (AMX where present), and its own int8 through NNCF."""
from __future__ import annotations

import numpy as np

from ...modelio.inputs import tokenize
from ...modelio.sizes import onnx_mib
from .base import Candidate, _tokenizer, register_kind
from .onnx import _onnx_macs, _plain_export


def _openvino(name, path, ctx, kind: str, hint: str, int8: bool) -> Candidate:
    import openvino as ov

    source = path if path.is_file() else _plain_export(path, ctx) / "model.onnx"
    tokenizer, length = _tokenizer(source.parent if path.is_file() else path, ctx.max_length)
    core = ov.Core()
    model = core.read_model(str(source))
    if int8:
        import nncf

        texts = ctx.calibration_texts[:256] or ["a calibration sentence"]
        items = [{k: v for k, v in tokenize(tokenizer, texts[i:i + 16], length, return_tensors="np").items()
                  if k in {i.get_any_name() for i in model.inputs}}
                 for i in range(0, len(texts), 16)]
        model = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(items))
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": ctx.threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]

    def run(enc):
        result = request.infer({k: np.asarray(enc[k], dtype=np.int64) for k in names if k in enc})
        return next(iter(result.values()))

    return Candidate(name, kind, path, onnx_mib(source), tokenizer, length, run, provider="openvino-CPU",
                     threads=ctx.threads, macs=_onnx_macs(source), origin=str(path.resolve()),
                     precision="int8" if int8 else hint.replace("f32", "fp32"))


@register_kind("openvino", needs=("openvino",), applies_to="any")
def _openvino_fp32(name, path, ctx) -> Candidate:
    """OpenVINO on the fp32 ONNX model (a folder is exported first), fp32 arithmetic."""
    return _openvino(name, path, ctx, "openvino", "f32", False)


@register_kind("openvino-bf16", needs=("openvino",), applies_to="any")
def _openvino_bf16(name, path, ctx) -> Candidate:
    """OpenVINO with a bf16 inference-precision hint (AMX where the processor has it)."""
    return _openvino(name, path, ctx, "openvino-bf16", "bf16", False)


@register_kind("openvino-int8", needs=("openvino", "nncf"), applies_to="any")
def _openvino_int8(name, path, ctx) -> Candidate:
    """OpenVINO with its own int8: NNCF post-training quantisation calibrated on the bench's text."""
    return _openvino(name, path, ctx, "openvino-int8", "bf16", True)
