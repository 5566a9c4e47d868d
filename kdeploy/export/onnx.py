"""PyTorch → ONNX with dynamic batch and sequence axes.

Hugging Face transformers go through optimum's exporter (it knows each architecture's
inputs and quirks); kdeploy's own BiLSTM/CNN students through `torch.onnx.export`.
"""
from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from ..errors import KdeployError


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def is_kdeploy_small(model) -> bool:
    return str(getattr(model.config, "model_type", "")).startswith("kdeploy-")


def export_small(model, path: Path, opset: int) -> None:
    wrapper = _LogitsOnly(model).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # TorchScript exporter: fast and mature for LSTMs
            torch.onnx.export(wrapper, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
        except (TypeError, RuntimeError, NotImplementedError):  # torch without it: the dynamo exporter
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
            torch.onnx.export(wrapper, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["logits"], dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
                              opset_version=max(opset, 18), dynamo=True, external_data=False)
    model.eval()


def export_transformer(model_dir: Path, path: Path, opset: int, trust_remote_code: bool) -> None:
    from optimum.exporters.onnx import main_export

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                main_export(str(model_dir), output=tmp, task="text-classification", opset=opset, device="cpu",
                            do_validation=False, trust_remote_code=trust_remote_code, local_files_only=True)
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise KdeployError(f"optimum cannot export {model_dir}: {str(exc).splitlines()[0]}") from None
        shutil.move(str(Path(tmp) / "model.onnx"), path)
        data = Path(tmp) / "model.onnx_data"
        if data.exists():
            shutil.move(str(data), path.parent / "model.onnx_data")


def to_onnx(model, model_dir: Path, path: Path, opset: int, trust_remote_code: bool = False) -> str:
    """Returns the exporter used."""
    if is_kdeploy_small(model):
        export_small(model, path, opset)
        return "torch.onnx"
    export_transformer(model_dir, path, opset, trust_remote_code)
    return "optimum"
