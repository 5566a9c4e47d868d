"""A transformers classifier as an ONNX graph through torch.onnx.export: the one exporter the
export stage and the benches' optimum-cli peer share (a layer below both)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import KdeployError

#: inputs a transformers classifier's graph may declare, in the order the tokenizer gives them
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def graph_inputs(model) -> list[str]:
    """The inputs the exported graph declares: ids and mask always; token types only where the
    model has more than one segment embedding to read them with (BERT, ELECTRA, ALBERT), as the
    model's own config says — RoBERTa-likes (one type) and DistilBERT/MPNet/ModernBERT (none) take none."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    types = int(getattr(model.config, "type_vocab_size", 0) or 0)
    return [n for n in _INPUTS if n in accepted and (n != "token_type_ids" or types > 1)]


def _example(model, names: list[str]) -> tuple[torch.Tensor, ...]:
    """Two rows, one padded: the traced graph takes the masked path every batch needs."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocab = int(getattr(embeddings, "num_embeddings", 0) or getattr(model.config, "vocab_size", 0) or 30)
    ids = (torch.arange(16).reshape(2, 8) % vocab).long()
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    return tuple({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}[n] for n in names)


class _Logits(torch.nn.Module):
    """The classifier as named tensors in, logits out (no dicts, no optional outputs)."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors))).logits


def export_transformer(model, path: Path, opset: int, graph=None, output: str = "logits",
                       per_token: bool = False) -> None:
    """A transformers classifier through torch.onnx.export: dynamic batch and sequence axes.
    `graph`: another wrapper of `model` with the same inputs (an embedder's, `output` its name);
    `per_token`: the output has a row per token (a token classifier's), its sequence axis dynamic too.

    The TorchScript exporter with eager attention is used on purpose: its graph is the one
    onnxruntime's transformer optimizer recognises (Attention and EmbedLayerNormalization fuse;
    from the dynamo exporter's graph or SDPA's, only the LayerNorm and GELU fusions do). torch
    marks that exporter deprecated; where it is gone or fails, the dynamo exporter takes over.
    Either way the parity gate compares the file with PyTorch at every shape before it is kept."""
    names = graph_inputs(model)
    wrapper = (_Logits(model, names) if graph is None else graph(names)).eval()
    model.eval()
    example = _example(model, names)
    implementation = getattr(model.config, "_attn_implementation", None)
    eager = implementation not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if eager:
        model.set_attn_implementation("eager")
    try:
        with warnings.catch_warnings():
            # the exporter's own notices (its deprecation, tracer hints about shape branches the
            # parity gate checks at every shape): not actionable by the user
            warnings.simplefilter("ignore")
            try:
                axes = {n: {0: "batch", 1: "sequence"} for n in names} | \
                    {output: {0: "batch", 1: "sequence"} if per_token else {0: "batch"}}
                with torch.no_grad():
                    torch.onnx.export(wrapper, example, str(path), input_names=names, output_names=[output],
                                      dynamic_axes=axes, opset_version=opset, dynamo=False)
            except (TypeError, RuntimeError, NotImplementedError, AttributeError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                try:
                    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
                    torch.onnx.export(wrapper, example, str(path), input_names=names, output_names=[output],
                                      dynamic_shapes=tuple({0: batch, 1: seq} for _ in names),
                                      opset_version=max(opset, 18), dynamo=True, external_data=False)
                except Exception as exc2:  # both exporters refused: one line, both reasons
                    raise KdeployError(f"cannot export {type(model).__name__} to ONNX: {first}; the dynamo exporter: "
                                       f"{(str(exc2).splitlines() or [type(exc2).__name__])[0]}") from None
    finally:
        if eager:
            model.set_attn_implementation(implementation)
