"""The machine's own limits, measured in the same run as the models: int8 and fp32 matrix
multiplication throughput through onnxruntime's kernels (MLAS: VNNI/AMX for int8 where the
processor has them), at the thread count the benchmark uses."""
from __future__ import annotations

import time

import numpy as np

SHAPE = (1024, 1024, 1024)  # M, K, N: large enough to reach the kernels' steady state


def _graph(kind: str, m: int, k: int, n: int):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])
        w = numpy_helper.from_array(rng.integers(-127, 127, (k, n)).astype(np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        feed = {"a": rng.integers(0, 255, (m, k)).astype(np.uint8)}
    else:
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
        w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        feed = {"a": rng.standard_normal((m, k)).astype(np.float32)}
    model = helper.make_model(helper.make_graph([node], kind, [a], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString(), feed


def gemm_peak(kind: str, threads: int, seconds: float = 0.6, shape: tuple[int, int, int] = SHAPE) -> float:
    """GMAC/s of one large int8 or fp32 GEMM on the CPU execution provider."""
    import onnxruntime as ort

    payload, feed = _graph(kind, *shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feed)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, feed)
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    m, k, n = shape
    return m * k * n / per_call / 1e9


def machine_peaks(threads: int) -> dict[str, float]:
    bf16 = bf16_peak(threads)
    return {"int8_gmacs": round(gemm_peak("int8", threads), 1), "fp32_gmacs": round(gemm_peak("fp32", threads), 1),
            "bf16_gmacs": round(bf16, 1) if bf16 else None, "threads": threads,
            "method": f"onnxruntime MatMulInteger / MatMul (int8, fp32), torch bf16 matmul, "
                      f"{SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}"}


def bf16_peak(threads: int, seconds: float = 0.6, shape: tuple[int, int, int] = SHAPE) -> float | None:
    """GMAC/s of one large bf16 matmul in PyTorch (oneDNN: AMX where the processor has it)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    m, k, n = shape
    a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return m * k * n / ((time.perf_counter() - start) / calls) / 1e9
