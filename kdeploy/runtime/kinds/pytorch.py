"""Runtime kinds in PyTorch eager: fp32, dynamic int8 (torch.ao), bf16 autocast, torch.compile."""
from __future__ import annotations

import numpy as np

from ...errors import KdeployError
from ...modelio.sizes import mib
from .base import Candidate, _tokenizer, register_kind


def _torch(name, path, ctx, kind: str, mode: str) -> Candidate:
    import torch

    from ...modelio.inputs import select_inputs
    from ...modelio.loading import load_classifier
    from ..macs import torch_mac_count

    tokenizer, length = _tokenizer(path, ctx.max_length)
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    if ctx.provider != "cpu" and not torch.cuda.is_available() and not ctx.allow_fallback:
        raise KdeployError(f"{path}: --provider {ctx.provider} asked for a GPU, but PyTorch sees none (CUDA "
                           "unavailable); pass --allow-fallback to measure it on the CPU")
    device = "cuda" if ctx.provider != "cpu" and torch.cuda.is_available() else "cpu"
    model = load_classifier(str(path)).eval()
    macs = torch_mac_count(model)
    if mode == "int8":
        if device != "cpu":
            raise KdeployError("torch.ao dynamic int8 runs on the CPU only")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    model.to(device)
    forward = torch.compile(model, dynamic=True) if mode == "compile" else model
    autocast = mode == "bf16"

    def run(enc):
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            inputs = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in select_inputs(enc).items()}
            return forward(**inputs).logits.float().cpu().numpy()

    size = mib(sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")))
    if mode == "int8":  # what the quantised weights would take on disk
        import io

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        size = round(buf.tell() / 2**20, 3)
    return Candidate(name, kind, path, size, tokenizer, length, run, provider=f"pytorch-{device}",
                     threads=torch.get_num_threads(), macs=macs,
                     precision={"int8": "int8", "bf16": "bf16"}.get(mode, "fp32"))


@register_kind("pytorch", needs=("torch",), applies_to="folder")
def _pytorch(name, path, ctx) -> Candidate:
    """A model folder in PyTorch, eager fp32: the reference."""
    return _torch(name, path, ctx, "pytorch", "fp32")


@register_kind("pytorch-int8", needs=("torch",), applies_to="folder")
def _pytorch_int8(name, path, ctx) -> Candidate:
    """torch.ao dynamic int8 on the Linear layers (CPU)."""
    return _torch(name, path, ctx, "pytorch-int8", "int8")


@register_kind("pytorch-bf16", needs=("torch",), applies_to="folder")
def _pytorch_bf16(name, path, ctx) -> Candidate:
    """PyTorch eager under bf16 autocast (AMX on recent Xeons)."""
    return _torch(name, path, ctx, "pytorch-bf16", "bf16")


@register_kind("pytorch-compile", needs=("torch",), applies_to="folder")
def _pytorch_compile(name, path, ctx) -> Candidate:
    """torch.compile (inductor, dynamic shapes), fp32."""
    return _torch(name, path, ctx, "pytorch-compile", "compile")
