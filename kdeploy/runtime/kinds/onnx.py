"""Runtime kinds on onnxruntime: an ONNX file as it is, and a model folder exported and quantised
the way optimum-cli does it (the peer a user would try first)."""
from __future__ import annotations

from pathlib import Path

from ...modelio.onnx_session import create_session, feed, session_settings
from ...modelio.sizes import onnx_mib
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


@register_kind("ort-int8", needs=("onnxruntime", "optimum.onnxruntime"), applies_to="folder")
def _ort_int8(name, path, ctx) -> Candidate:
    """A model folder exported and quantised as optimum-cli does (`export onnx` + dynamic int8, VNNI preset)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    folder = _optimum_export(path, ctx)
    target = folder.parent / (folder.name + "-int8")
    if not (target / "model_quantized.onnx").exists():
        quantizer = ORTQuantizer.from_pretrained(folder)
        quantizer.quantize(save_dir=target, quantization_config=AutoQuantizationConfig.avx512_vnni(
            is_static=False, per_channel=False))
        for extra in folder.iterdir():  # tokenizer and config beside the quantised file
            if extra.suffix in (".json", ".txt") and not (target / extra.name).exists():
                (target / extra.name).write_bytes(extra.read_bytes())
    cand = _onnx(name, target / "model_quantized.onnx", ctx, precision="int8", origin=str(path.resolve()))
    cand.macs = _onnx_macs(folder / "model.onnx")
    cand.kind = "ort-int8"
    return cand


def _optimum_export(path: Path, ctx: Context) -> Path:
    """The model folder as fp32 ONNX (optimum's exporter), once per run."""
    import warnings

    from optimum.exporters.onnx import main_export

    folder = ctx.work / f"{abs(hash(str(path.resolve())))}-onnx"
    if not (folder / "model.onnx").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main_export(str(path), output=folder, task="text-classification", device="cpu", do_validation=False,
                        local_files_only=True)
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
