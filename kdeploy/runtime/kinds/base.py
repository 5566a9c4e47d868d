"""What every runtime kind shares: the candidate it wraps a model as, the registry it joins
(`register_kind`), the bench's context, and the tokenizer a model folder brings."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import KdeployError
from ...modelio.inputs import tokenize
from ...modelio.record import resolve_max_length
from ...registry import Registry

INT8_CUDA_WARNING = ("int8 (MatMulInteger/DynamicQuantizeLinear) has no CUDA kernels: those nodes run on the CPU; "
                     "export with --fp16 for the GPU")


@dataclass
class Candidate:
    name: str
    kind: str
    path: Path
    size_mib: float
    tokenizer: object
    max_length: int
    run_encoded: Callable[[dict], np.ndarray]  # pre-tokenised batch (numpy) -> logits
    provider: str = "pytorch"
    threads: int | None = None
    notes: list[str] = field(default_factory=list)
    memory_mib: float | None = None
    macs: object = None  # MacCount, when the arithmetic could be counted
    precision: str = "fp32"  # fp32 | bf16 | int8: which machine peak it is measured against
    origin: str = ""  # the model it was made from: variants of one teacher share it
    end_to_end: bool = False  # timed from text (a bundle): run_encoded reads enc["texts"]
    keep: object = None  # what must live as long as the candidate (a bundle's extracted folder)
    train_seconds: float | None = None  # a baseline: how long it took to fit
    thresholds: np.ndarray | None = None  # multi-label: the decision threshold per label it ships with

    def run_texts(self, texts: list[str]) -> np.ndarray:
        enc = dict(tokenize(self.tokenizer, texts, self.max_length, return_tensors="np"))
        if self.end_to_end:
            enc["texts"] = list(texts)
        return np.asarray(self.run_encoded(enc), dtype=np.float32)


@dataclass
class Kind:
    load: Callable  # (name, path, context) -> Candidate
    needs: tuple[str, ...]  # importable modules
    applies_to: str  # "folder" (a PyTorch model folder) or "onnx" (an ONNX file) or "any"
    doc: str


KINDS = Registry("runtime kind")
ALIASES = {"int8": "pytorch-int8", "bf16": "pytorch-bf16", "compile": "pytorch-compile"}


def register_kind(name: str, needs: tuple[str, ...], applies_to: str):
    def deco(fn):
        KINDS.register(name, Kind(fn, needs, applies_to, (fn.__doc__ or "").strip().splitlines()[0]))
        return fn
    return deco


def missing_package(kind: str) -> str | None:
    for module in KINDS.lookup(kind).needs:
        if importlib.util.find_spec(module) is None:
            return module
    return None


@dataclass
class Context:
    provider: str
    threads: int
    allow_fallback: bool
    max_length: int | None
    calibration_texts: list[str]
    work: Path  # exports made for peers live here for the run


def _tokenizer(folder: Path, max_length: int | None):
    from transformers import AutoTokenizer

    from ...modelio.inputs import set_truncation
    from ...modelio.record import truncation_of

    try:
        tokenizer = set_truncation(AutoTokenizer.from_pretrained(folder), truncation_of(folder))
    except KdeployError:
        raise
    except Exception as exc:  # transformers and tokenizers raise several types for a folder without one
        raise KdeployError(f"{folder}: no tokenizer to go with the model ({str(exc).splitlines()[0]})") from None
    return tokenizer, resolve_max_length(max_length, folder, tokenizer_limit=getattr(tokenizer, "model_max_length", None))
