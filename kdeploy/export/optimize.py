"""Graph optimisation: ONNX Runtime's transformer fusions at optimum's levels O1–O4.

O1 basic fusions, O2 + attention/LayerNorm/GELU fusions, O3 + GELU approximation,
O4 + fp16 (GPU). Models the fusion tool does not know (kdeploy's BiLSTM/CNN) get ONNX
Runtime's own extended graph optimisations, saved offline.

A level can be reached by more than one *fusion plan*: which fusions are applied and which
the session must not re-apply when it loads the file. Measured on an AVX-512/AMX Xeon with
onnxruntime 1.32, the fused SkipLayerNormalization CPU kernel runs about 4x slower than the
Add + LayerNormalization it replaces, so the `lean` plan leaves those two apart (and tells
the session not to fuse them again). Export times every plan on the machine and keeps the
fastest; its session settings travel with the file.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import KdeployError

# optimum's O-levels in the terms of onnxruntime.transformers.optimizer
_LEVELS = {"O1": (1, False), "O2": (2, False), "O3": (2, True), "O4": (2, True)}
_FUSION_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "electra": "bert",
                 "albert": "bert", "deberta-v2": "bert", "mpnet": "bert", "camembert": "bert"}
# Looser tolerances where the level changes the arithmetic on purpose.
TOLERANCE = {"O1": None, "O2": None, "O3": 5e-3, "O4": 5e-2}

#: fusion plan -> (FusionOptions switched off, onnxruntime session optimizers to disable when loading)
PLANS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "optimum": ((), ()),
    "lean": (("enable_skip_layer_norm", "enable_bias_skip_layer_norm"), ("SkipLayerNormFusion",)),
}


def optimize(src: Path, dst: Path, level: str, config, plan: str = "optimum") -> dict:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = _FUSION_TYPES.get(getattr(config, "model_type", ""))
    if model_type is None:
        return _ort_offline(src, dst)
    opt_level, gelu_approx = _LEVELS[level]
    options = FusionOptions(model_type)
    options.enable_gelu_approximation = gelu_approx
    off, disabled = PLANS[plan]
    for flag in off:
        setattr(options, flag, False)
    heads = getattr(config, "num_attention_heads", 0) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", 0) or getattr(config, "dim", 0)
    pruned = any(getattr(config, "pruned_heads", None) or {})
    if pruned:
        heads, hidden = 0, 0  # layers differ after head pruning: let the fusion read each one's shapes
    fusion_log = logging.getLogger("fusion_attention")
    level_before = fusion_log.level
    if pruned:  # it warns once per layer that q/k/v are narrower than the input, then fuses them correctly
        fusion_log.setLevel(logging.ERROR)
    try:
        model = optimize_model(str(src), model_type=model_type, num_heads=heads, hidden_size=hidden,
                               optimization_options=options, opt_level=0, use_gpu=False)
    except Exception as exc:  # the fusion tool raises bare exceptions
        raise KdeployError(f"graph optimisation {level} failed: {str(exc).splitlines()[0]}") from None
    finally:
        fusion_log.setLevel(level_before)
    if level == "O4":
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    return {"level": level, "plan": plan, "tool": "onnxruntime.transformers.optimizer", "fused_operators": fused,
            "session": {"disabled_optimizers": list(disabled)}}


def plans_for(config) -> list[str]:
    """The fusion plans worth timing for this model (one when the fusion tool does not know it)."""
    return list(PLANS) if _FUSION_TYPES.get(getattr(config, "model_type", "")) else ["optimum"]


def _ort_offline(src: Path, dst: Path) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return {"level": "ORT_ENABLE_EXTENDED", "plan": "optimum", "tool": "onnxruntime session (offline)",
            "session": {"disabled_optimizers": []}}


def to_fp16(src: Path, dst: Path) -> dict:
    """fp16 weights and compute with fp32 inputs/outputs: the CUDA execution provider's fast path."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
    return {"dtype": "fp16", "keep_io_types": True}
