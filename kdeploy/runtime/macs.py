"""How much arithmetic a model does: multiply-accumulates (MACs) per sequence as a function
of its length, counted from the graph (ONNX, by shape inference at fixed shapes) or traced
(PyTorch, torch's FLOP counter), then fitted to f(S) = a + b*S + c*S^2 so any batch's MACs
follow from its padded shape: B * f(S).

Every file of one export does the same arithmetic (fusions and int8 change how, not how
much), so a fused or quantised file is counted through the fp32 `model.onnx` beside it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..export.files import FP32

LENGTHS = (8, 16, 32)


@dataclass(frozen=True)
class MacCount:
    """MACs per sequence of S tokens: a + b*S + c*S^2."""

    a: float
    b: float
    c: float
    source: str

    def per_sequence(self, length: float) -> float:
        return self.a + self.b * length + self.c * length * length

    def batch(self, batch: int, length: int) -> float:
        return batch * self.per_sequence(length)


def _fit(values: dict[int, float], source: str) -> MacCount:
    s = np.array(list(values), dtype=float)
    a, b, c = np.linalg.solve(np.stack([np.ones_like(s), s, s * s], axis=1), np.array(list(values.values())))
    return MacCount(float(a), float(b), float(c), source)


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


@contextlib.contextmanager
def _scratch_cwd():
    """The shape tool saves `sym_shape_infer_temp.onnx` and its weights into the working directory
    when a shape stays unknown: run it where that lands in a temporary folder, not the user's."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="kdeploy-shapes-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


def onnx_macs_at(path: Path, batch: int, length: int) -> float | None:
    """MACs of one call at (batch, length), or None when the graph's shapes do not resolve."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path), load_external_data=False)
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for i, value in enumerate((batch, length)[:len(dims)]):
            dims[i].ClearField("dim_param")
            dims[i].dim_value = value
    try:
        with _scratch_cwd():
            inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
    except Exception:  # the tool raises bare exceptions on graphs it does not know
        return None
    graph = inferred.graph
    shapes = {vi.name: _dims(vi) for vi in list(graph.value_info) + list(graph.input) + list(graph.output)}
    shapes.update({init.name: list(init.dims) for init in graph.initializer})
    total = 0.0
    for node in graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            return None
        total += macs
    return total


def _node_macs(node, shapes) -> float | None:
    op = node.op_type
    if op in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul", "FusedMatMul"):
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not a or not b or None in a or None in b:
            return None
        lead = np.prod(a[:-2]) if len(a) > 2 else 1
        lead = max(lead, np.prod(b[:-2]) if len(b) > 2 else 1)
        return float(lead * (a[-2] if len(a) > 1 else 1) * a[-1] * b[-1])
    if op == "Gemm":
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not a or not b or None in a or None in b:
            return None
        trans_b = next((attr.i for attr in node.attribute if attr.name == "transB"), 0)
        return float(a[0] * a[1] * (b[0] if trans_b else b[1]))
    if op == "Conv":
        out, w = shapes.get(node.output[0]), shapes.get(node.input[1])
        if not out or not w or None in out or None in w:
            return None
        return float(np.prod(out) * np.prod(w[1:]))
    if op in ("LSTM", "GRU"):
        x, w, r = (shapes.get(n) for n in node.input[:3])
        if not x or not w or not r or None in x:
            return None
        seq, batch = x[0], x[1]
        directions, gates_hidden, hidden = r[0], r[1], r[2]
        return float(seq * batch * directions * gates_hidden * (w[2] + hidden))
    if op in ("Attention", "QAttention", "MultiHeadAttention", "EmbedLayerNormalization", "QEmbedLayerNormalization",
              "SkipLayerNormalization"):
        return None  # fused: count through the unfused fp32 file
    return 0.0


def onnx_mac_count(path: Path) -> MacCount | None:
    path = Path(path)
    for candidate in (path, path.with_name(FP32.file)):
        if candidate.is_file():
            values = {s: onnx_macs_at(candidate, 1, s) for s in LENGTHS}
            if all(v is not None for v in values.values()):
                return _fit(values, candidate.name)
    return None


def torch_mac_count(model, pad_token_id: int = 0) -> MacCount | None:
    """Traced with torch's FLOP counter (matrix products; 2 FLOPs per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    values = {}
    device = next(model.parameters()).device
    for s in LENGTHS:
        ids = torch.full((1, s), 5, dtype=torch.long, device=device)
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        values[s] = counter.get_total_flops() / 2
    if not any(values.values()):
        return None
    return _fit(values, "torch FlopCounterMode")
