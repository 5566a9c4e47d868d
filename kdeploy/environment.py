"""The machine and library versions, recorded beside every number kdeploy writes."""
from __future__ import annotations

import importlib.metadata
import os
import platform

_PACKAGES = ("kdeploy", "torch", "transformers", "accelerate", "datasets", "tokenizers",
             "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy")


def library_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of `packages` (those not installed are left out)."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The CPU features int8 and bf16 speed depends on (int8 speed-ups differ 2-3x between AVX2-only
#: and AVX-512 VNNI machines): a figure names the class it was measured on.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags() -> list[str]:
    """Which of ISA_FLAGS this CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in ISA_FLAGS if f in flags]


def machine_class(flags: list[str] | None = None) -> str:
    """AMX, VNNI (AVX-512 VNNI or AVX-VNNI), AVX2 or "other": the class an int8 figure belongs to."""
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags:
        return "AMX"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "VNNI"
    return "AVX2" if "avx2" in flags else "other"


def machine() -> dict:
    flags = cpu_flags()
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "isa": flags,
        "cpu_class": machine_class(flags),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
