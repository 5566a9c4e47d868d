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


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
