"""int8 quantisation with onnxruntime's tools, with instruction-set presets as a registry.

Static (QDQ, activation ranges calibrated once on training text) is the default: its scales
are constants, so a text's answer does not depend on its batchmates. Dynamic (weights int8
ahead of time, activations scaled per call over the whole batch) stays selectable as
`int8-dynamic`: its outputs move with the batch (onnxruntime#10111).
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


def quantize_dynamic_int8(src: Path, dst: Path, isa: str, per_channel: bool, exclude: list[str] | None = None,
                          op_types: list[str] | None = None) -> dict:
    """Weights int8 ahead of time, activations at run time; `exclude` names nodes kept in fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    preset = PRESETS[isa]
    try:
        with _quiet_root_logger():
            quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, preset["weight_type"]),
                             per_channel=per_channel, reduce_range=preset["reduce_range"],
                             nodes_to_exclude=list(exclude or []), op_types_to_quantize=op_types,
                             extra_options={"MatMulConstBOnly": True, "DefaultTensorType": _FLOAT})
    except Exception as exc:  # the quantiser raises bare ValueErrors/RuntimeErrors
        raise KdeployError(f"int8 quantisation of {src.name} failed: {str(exc).splitlines()[0]}; "
                           "export with --quantize none") from None
    out = {"mode": "dynamic", "isa": isa, "per_channel": per_channel, "weight_type": preset["weight_type"],
           "reduce_range": preset["reduce_range"]}
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


# The integer operators whose activation quantisation onnxruntime writes as DynamicQuantizeLinear
# nodes (which kdeploy freezes); Gather and EmbedLayerNormalization quantise weights only.
FROZEN_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization", "Conv")


# QDQ leaves every Gemm in fp32: the pooler and the classifier are a sliver of the work, and
# quantising a Gemm's bias needs a scale for an input (the pooler's Gather of [CLS]) that
# calibration does not see, which made onnxruntime's quantiser raise.
def _qdq_nodes(src: Path, exclude: list[str] | None) -> list[str]:
    """Which nodes QDQ quantises: MatMuls with a constant weight (not attention's two-activation
    MatMuls: QDQ ignores MatMulConstBOnly, and quantised softmax probabilities cost a point of
    accuracy in a trial), convolutions, and embedding lookups (Gather from a constant table:
    int8 tables, a quarter of the size)."""
    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    constant = {i.name for i in graph.initializer}
    skip = set(exclude or [])
    return [n.name for n in graph.node if n.name not in skip and (
        (n.op_type == "MatMul" and n.input[1] in constant) or n.op_type == "Conv"
        or (n.op_type == "Gather" and n.input[0] in constant))]


def quantize_static_int8(src: Path, dst: Path, isa: str, per_channel: bool, method: str,
                         make_batches: Callable[[], list[dict[str, np.ndarray]]],
                         exclude: list[str] | None = None, calibration: dict | None = None) -> dict:
    """QDQ int8 with activation ranges fixed by calibration: every call uses the same scales,
    so a text's answer does not depend on its batchmates. Weight and activation types follow
    onnxruntime's CPU guidance per instruction set (the preset's static_* keys)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    batches = make_batches()
    if not batches:
        raise KdeployError("static quantisation needs calibration text; give training data (--train or --data)")
    preset = PRESETS[isa]
    activation, weight = preset["static_activation_type"], preset["static_weight_type"]
    # A MatMul's output stays fp32 (onnxruntime then runs MatMulIntegerToFloat, one pass, no requantisation)
    extra = {"ActivationSymmetric": activation == "QInt8", "WeightSymmetric": True, "DefaultTensorType": _FLOAT,
             "OpTypesToExcludeOutputQuantization": ["MatMul", "Gather"]}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    try:
        with _quiet_root_logger():
            quantize_static(str(src), str(dst), _Calibration(batches), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=preset["static_reduce_range"],
                            activation_type=getattr(QuantType, activation), weight_type=getattr(QuantType, weight),
                            calibrate_method=methods[method], nodes_to_quantize=_qdq_nodes(src, exclude),
                            op_types_to_quantize=["MatMul", "Conv", "Gather"],  # what calibration observes
                            extra_options=extra)
    except KdeployError:
        raise
    except Exception as exc:  # the quantiser raises bare ValueErrors/RuntimeErrors
        raise KdeployError(f"static int8 quantisation of {src.name} failed: {str(exc).splitlines()[0]}; "
                           "export with --quantize int8-dynamic or --quantize none") from None
    out = {"mode": "static", "format": "QDQ", "isa": isa, "per_channel": per_channel,
           "activation_type": activation, "weight_type": weight, "reduce_range": preset["static_reduce_range"],
           "calibration_method": method, "calibration_batches": len(batches),
           **(calibration or {})}
    if exclude:
        out["kept_fp32"] = list(exclude)
    return out


def quantize_frozen_int8(src: Path, dst: Path, isa: str, per_channel: bool,
                         make_batches: Callable[[], list[dict[str, np.ndarray]]],
                         exclude: list[str] | None = None, calibration: dict | None = None) -> dict:
    """Calibrated int8 for a fused graph: onnxruntime's integer operators (QAttention,
    QEmbedLayerNormalization, MatMulInteger), which reach the fused Attention that QDQ cannot,
    with every activation scale frozen from calibration instead of computed per call.

    onnxruntime's dynamic quantiser writes each activation's quantisation as one
    DynamicQuantizeLinear node (x -> x_u8, scale, zero point, over the whole call); here each
    becomes a QuantizeLinear with the scale and zero point that DynamicQuantizeLinear's own
    formula gives over the calibration text (u8, range widened to include 0). Same kernels as
    dynamic int8, one fixed scale per tensor: batch-invariant."""
    import onnx
    from onnx import helper, numpy_helper

    batches = make_batches()
    if not batches:
        raise KdeployError("static quantisation needs calibration text; give training data (--train or --data)")
    scratch = dst.with_name(dst.name + ".dynamic.onnx")
    try:  # not LSTM: DynamicQuantizeLSTM scales its activations inside the operator, out of reach
        quantize_dynamic_int8(src, scratch, isa, per_channel, exclude, op_types=list(FROZEN_OPS))
        model = onnx.load(str(scratch))
    finally:
        scratch.unlink(missing_ok=True)
    dynamic = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    ranges = _activation_ranges(src, [n.input[0] for n in dynamic], batches)
    nodes = []
    for n in model.graph.node:
        if n.op_type != "DynamicQuantizeLinear":
            nodes.append(n)
            continue
        scale, zero = _u8_parameters(*ranges[n.input[0]])
        model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), n.output[1]),
                                        numpy_helper.from_array(np.array(zero, np.uint8), n.output[2])])
        nodes.append(helper.make_node("QuantizeLinear", [n.input[0], n.output[1], n.output[2]], [n.output[0]],
                                      name=n.name + "_calibrated"))
    del model.graph.node[:]
    model.graph.node.extend(_fold_bias(_integer_matmuls_to_float(nodes), model.graph.initializer))
    onnx.save(model, str(dst))
    preset = PRESETS[isa]
    out = {"mode": "static", "format": "QOperator", "isa": isa, "per_channel": per_channel,
           "activation_type": "QUInt8", "weight_type": preset["weight_type"], "reduce_range": preset["reduce_range"],
           "calibration_method": "minmax", "calibration_batches": len(batches),
           "frozen_activation_scales": len(dynamic), **(calibration or {})}
    if exclude:
        out["kept_fp32"] = list(exclude)
    return out


def _integer_matmuls_to_float(nodes: list) -> list:
    """MatMulInteger -> Cast -> Mul(by the product of the two scales) as one MatMulIntegerToFloat
    (com.microsoft), the node onnxruntime fuses the dynamic pattern into; with a constant input
    scale its own fusion no longer matches, and the unfused chain ran slower than dynamic int8."""
    from onnx import helper

    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop, replace = set(), {}
    for mm in (n for n in nodes if n.op_type == "MatMulInteger" and len(n.input) == 4):
        quant = producer.get(mm.input[0])
        users = consumers.get(mm.output[0], [])
        if quant is None or quant.op_type != "QuantizeLinear" or len(users) != 1 or users[0].op_type != "Cast":
            continue
        cast = users[0]
        muls = consumers.get(cast.output[0], [])
        if len(muls) != 1 or muls[0].op_type != "Mul":
            continue
        mul = muls[0]
        other = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
        scales = producer.get(other)
        if scales is None or scales.op_type != "Mul" or quant.input[1] not in scales.input:
            continue
        weight_scale = scales.input[1] if scales.input[0] == quant.input[1] else scales.input[0]
        replace[id(mul)] = helper.make_node(
            "MatMulIntegerToFloat", [mm.input[0], mm.input[1], quant.input[1], weight_scale, mm.input[2], mm.input[3]],
            [mul.output[0]], name=mm.name + "_to_float", domain="com.microsoft")
        drop.update({id(mm), id(cast)})
        if len(consumers.get(other, [])) == 1:
            drop.add(id(scales))
    return [replace.get(id(n), n) for n in nodes if id(n) not in drop]


def _fold_bias(nodes: list, initializers) -> list:
    """MatMulIntegerToFloat followed by the Add of a constant bias vector takes the bias as its
    seventh input (one pass over the output instead of two)."""
    vectors = {i.name for i in initializers if len(i.dims) == 1}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop = set()
    for mm in (n for n in nodes if n.op_type == "MatMulIntegerToFloat" and len(n.input) == 6):
        users = consumers.get(mm.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        bias = add.input[1] if add.input[0] == mm.output[0] else add.input[0]
        if bias not in vectors:
            continue
        mm.input.append(bias)
        mm.output[0] = add.output[0]
        drop.add(id(add))
    return [n for n in nodes if id(n) not in drop]


def _activation_ranges(src: Path, names: list[str], batches: list[dict]) -> dict[str, tuple[float, float]]:
    """Min and max of each named tensor of `src` over the calibration batches."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src))
    known = {o.name for o in model.graph.output}
    for name in dict.fromkeys(names):
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the tensors as named
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = list(dict.fromkeys(names))
    lo = {n: np.inf for n in wanted}
    hi = {n: -np.inf for n in wanted}
    for feed in batches:
        for name, value in zip(wanted, session.run(wanted, feed)):
            lo[name], hi[name] = min(lo[name], float(np.min(value))), max(hi[name], float(np.max(value)))
    return {n: (lo[n], hi[n]) for n in wanted}


def _u8_parameters(lo: float, hi: float) -> tuple[float, int]:
    """DynamicQuantizeLinear's formula (ONNX spec) on a fixed range."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(np.round(-lo / scale), 0, 255))
