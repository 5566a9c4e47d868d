"""Runtime kinds on onnxruntime: an ONNX file as it is, and a model folder exported and quantised
the way optimum-cli does it (the peer a user would try first; optimum's own classes where they install)."""
from __future__ import annotations

from pathlib import Path

from ...modelio.onnx_session import create_session, feed, session_settings
from ...modelio.sizes import onnx_mib
from ...names import MODEL_CONFIG
from .base import INT8_CUDA_WARNING, Candidate, Context, _tokenizer, register_kind


@register_kind("onnx", needs=("onnxruntime",), applies_to="onnx")
def _onnx(name, path, ctx, *, precision=None, origin="") -> Candidate:
    """An ONNX file in ONNX Runtime, with the session settings its export chose."""
    from ..macs import onnx_mac_count

    tokenizer, length = _tokenizer(path.parent, ctx.max_length)
    session = create_session(path, ctx.provider, ctx.threads, ctx.allow_fallback,
                             session_settings(path).get("disabled_optimizers"))
    output = session.get_outputs()[0].name
    int8 = _has_int8_ops(path)
    cand = Candidate(name, "onnx", path, onnx_mib(path), tokenizer, length,
                     lambda enc: session.run([output], feed(session, enc))[0],
                     provider=session.get_providers()[0], threads=ctx.threads, macs=onnx_mac_count(path),
                     precision=precision or ("int8" if int8 else "fp32"), origin=origin)
    if ctx.provider == "cuda" and int8:
        cand.notes.append(INT8_CUDA_WARNING)
    return cand


#: optimum's AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False) in onnxruntime's own terms
_OPTIMUM_DYNAMIC_OPS = ["Conv", "MatMul", "Attention", "LSTM", "Gather", "Transpose", "EmbedLayerNormalization"]


@register_kind("ort-int8", needs=("onnxruntime", "onnxruntime.quantization"), applies_to="folder")
def _ort_int8(name, path, ctx) -> Candidate:
    """A model folder exported and quantised as optimum-cli does (`export onnx` + dynamic int8, VNNI preset).

    optimum's ORTQuantizer is used where it is installed; its ONNX half (optimum-onnx 0.1.0, the
    last release) pins transformers<4.58 and cannot install beside transformers 5, so otherwise the
    same quantisation runs through onnxruntime's quantize_dynamic, which ORTQuantizer calls."""
    import importlib.util

    folder = _plain_export(path, ctx)
    target = folder.parent / (folder.name + "-int8")
    if not (target / "model_quantized.onnx").exists():
        if importlib.util.find_spec("optimum") and importlib.util.find_spec("optimum.onnxruntime"):
            from optimum.onnxruntime import ORTQuantizer
            from optimum.onnxruntime.configuration import AutoQuantizationConfig

            quantizer = ORTQuantizer.from_pretrained(folder)
            quantizer.quantize(save_dir=target, quantization_config=AutoQuantizationConfig.avx512_vnni(
                is_static=False, per_channel=False))
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            target.mkdir(parents=True, exist_ok=True)
            quantize_dynamic(folder / "model.onnx", target / "model_quantized.onnx", weight_type=QuantType.QInt8,
                             per_channel=False, reduce_range=False, op_types_to_quantize=_OPTIMUM_DYNAMIC_OPS,
                             extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                                            "MatMulConstBOnly": True})
        for extra in folder.iterdir():  # tokenizer and config beside the quantised file
            if extra.suffix in (".json", ".txt") and not (target / extra.name).exists():
                (target / extra.name).write_bytes(extra.read_bytes())
    cand = _onnx(name, target / "model_quantized.onnx", ctx, precision="int8", origin=str(path.resolve()))
    cand.macs = _onnx_macs(folder / "model.onnx")
    cand.kind = "ort-int8"
    if not (importlib.util.find_spec("optimum") and importlib.util.find_spec("optimum.onnxruntime")):
        cand.notes.append("optimum's ORTQuantizer is not installed (optimum-onnx pins transformers<4.58): the same "
                          "dynamic int8 preset through onnxruntime's quantize_dynamic")
    return cand


def _plain_export(path: Path, ctx: Context) -> Path:
    """The model folder as fp32 ONNX with no fusions (what a user's first export is), once per run:
    optimum's exporter where it is installed, kdeploy's torch.onnx.export otherwise."""
    import importlib.util
    import warnings

    folder = ctx.work / f"{abs(hash(str(path.resolve())))}-onnx"
    if (folder / "model.onnx").exists():
        return folder
    if importlib.util.find_spec("optimum") and importlib.util.find_spec("optimum.exporters.onnx"):
        from optimum.exporters.onnx import main_export

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main_export(str(path), output=folder, task="text-classification", device="cpu", do_validation=False,
                        local_files_only=True)
        return folder
    from ...modelio.loading import load_classifier, load_tokenizer
    from ...modelio.onnx_export import export_transformer

    folder.mkdir(parents=True, exist_ok=True)
    export_transformer(load_classifier(str(path)), folder / "model.onnx", opset=18)
    load_tokenizer(str(path)).save_pretrained(folder)
    (folder / MODEL_CONFIG).write_bytes((path / MODEL_CONFIG).read_bytes())
    return folder


def _onnx_macs(path: Path):
    from ..macs import onnx_mac_count

    return onnx_mac_count(path)


def _has_int8_ops(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QAttention",
                             "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QuantizeLinear", "DequantizeLinear",
                             "ConvInteger", "QLinearConv") for n in model.graph.node)
