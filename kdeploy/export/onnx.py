"""PyTorch → ONNX with dynamic batch and sequence axes.

Every model goes through `torch.onnx.export`: transformers classifiers (the inputs their
config declares) and kdeploy's own BiLSTM/CNN students alike; no exporter package pins the
transformers version.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..modelio.onnx_export import export_transformer


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


def to_onnx(model, model_dir: Path, path: Path, opset: int, trust_remote_code: bool = False) -> str:
    """Returns the exporter used."""
    if is_kdeploy_small(model):
        export_small(model, path, opset)
        return "torch.onnx"
    export_transformer(model, path, opset)
    return "torch.onnx"
