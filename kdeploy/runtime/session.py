"""ONNX Runtime sessions that run where they were asked to.

A silent fallback from CUDA to CPU is ONNX Runtime's most reported surprise: after
creating a session, the providers it really got are checked against the request.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import KdeployError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def create_session(path: str | Path, provider: str = "cpu", threads: int | None = None,
                   allow_fallback: bool = False, provider_options: dict | None = None):
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise KdeployError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available and not allow_fallback:
        hint = " (install kdeploy[gpu]: pip uninstall -y onnxruntime && pip install onnxruntime-gpu)" if provider != "cpu" else ""
        raise KdeployError(f"{wanted} is not available in this onnxruntime (available: {', '.join(available)}){hint}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = [(wanted, provider_options or {})] if wanted in available else []
    if wanted != "CPUExecutionProvider":
        providers.append(("CPUExecutionProvider", {}))
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise KdeployError(f"cannot load {path} in onnxruntime: {str(exc).splitlines()[0]}") from None
    got = session.get_providers()
    if got[0] != wanted and not allow_fallback:
        raise KdeployError(f"{path}: asked for {wanted} but onnxruntime fell back to {got[0]}; "
                           "pass --allow-fallback to accept that")
    return session


def feed(session, encoding: dict) -> dict[str, np.ndarray]:
    """Tokenizer output -> exactly the inputs this graph declares, as int64."""
    names = [i.name for i in session.get_inputs()]
    out = {}
    for name in names:
        if name in encoding:
            out[name] = np.asarray(encoding[name], dtype=np.int64)
        elif name == "token_type_ids":
            out[name] = np.zeros_like(np.asarray(encoding["input_ids"], dtype=np.int64))
        else:
            raise KdeployError(f"the model needs input {name!r}, which the tokenizer does not produce")
    return out
