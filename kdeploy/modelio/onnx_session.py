"""ONNX Runtime sessions that run where they were asked to (torch-free: the edge predictor
uses this too).

A silent fallback from CUDA to CPU is ONNX Runtime's most reported surprise: after
creating a session, the providers it really got are checked against the request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KdeployError
from .inputs import select_inputs, tokenize

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
GPU_HINT = " (install kdeploy[gpu]: pip uninstall -y onnxruntime && pip install onnxruntime-gpu)"


def extensions_library() -> str:
    """onnxruntime-extensions' custom-op library: what any ONNX Runtime binding registers to run
    a model with its tokenizer inside (an e2e bundle)."""
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError:
        raise KdeployError("an e2e model needs onnxruntime-extensions: pip install 'kdeploy[e2e]'") from None
    return get_library_path()


def create_session(path: str | Path, provider: str = "cpu", threads: int | None = None,
                   allow_fallback: bool = False, disabled_optimizers: list[str] | None = None,
                   custom_ops_library: str | None = None, spin_wait: bool = True):
    """A session on `provider`; `disabled_optimizers` are load-time fusions the file's export
    found slower here (its session settings: see kdeploy.export.optimize); `custom_ops_library`
    is registered first (onnxruntime-extensions, for a model with its tokenizer inside);
    `spin_wait=False` stops idle worker threads spinning, for a process that shares its cores
    with others (a server's proxy): the spinning starves them."""
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise KdeployError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)}")
    if threads is not None and threads < 1:
        raise KdeployError(f"threads must be at least 1, got {threads}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available and not allow_fallback:
        raise KdeployError(f"{wanted} is not available in this onnxruntime (available: {', '.join(available)})"
                           + (GPU_HINT if provider != "cpu" else ""))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if custom_ops_library:
        options.register_custom_ops_library(custom_ops_library)
    providers = [wanted] if wanted in available else []
    if wanted != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"],
                                       disabled_optimizers=list(disabled_optimizers or []))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise KdeployError(f"cannot load {path} in onnxruntime: {str(exc).splitlines()[0]}") from None
    got = session.get_providers()
    if got[0] != wanted and not allow_fallback:
        raise KdeployError(f"{path}: asked for {wanted} but onnxruntime fell back to {got[0]}; "
                           "pass --allow-fallback to accept that")
    return session


def feed(session, encoding) -> dict[str, np.ndarray]:
    """Tokenizer output -> exactly the inputs this graph declares, as int64."""
    return select_inputs(encoding, [i.name for i in session.get_inputs()], as_int64=True, required=True)


def onnx_runner(session, tokenizer, max_length: int) -> Callable[[list[str]], np.ndarray]:
    """texts -> logits through a transformers tokenizer and an ONNX Runtime session."""
    output = session.get_outputs()[0].name

    def run(texts: list[str]) -> np.ndarray:
        enc = tokenize(tokenizer, texts, max_length, return_tensors="np")
        return session.run([output], feed(session, enc))[0].astype(np.float32)

    return run


def session_settings(model_file: str | Path) -> dict:
    """The session settings an export recorded for its files (config.json beside them), torch-free."""
    from .exported import ExportedModel

    exported = ExportedModel.read(Path(model_file).parent)
    return exported.session_of(Path(model_file).name) if exported else {}
