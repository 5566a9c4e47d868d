"""What `kdeploy bench` can measure: PyTorch model folders (eager, or torch.ao dynamic int8)
and ONNX files, each wrapped as a candidate with the same interface."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KdeployError
from ..modelio.onnx_session import create_session, feed
from ..modelio.record import resolve_max_length
from ..modelio.sizes import mib, onnx_mib

INT8_CUDA_WARNING = ("int8 (MatMulInteger/DynamicQuantizeLinear) has no CUDA kernels: those nodes run on the CPU; "
                     "export with --fp16 for the GPU")


@dataclass
class Candidate:
    name: str
    kind: str  # pytorch | pytorch-int8 | onnx
    path: Path
    size_mib: float
    tokenizer: object
    max_length: int
    run_encoded: Callable[[dict], np.ndarray]  # pre-tokenised batch (numpy) -> logits
    provider: str = "pytorch"
    threads: int | None = None
    notes: list[str] = field(default_factory=list)
    memory_mib: float | None = None

    def run_texts(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="np")
        return self.run_encoded(enc)


def unique_names(entries: list[tuple[str, Path, str]]) -> list[tuple[str, Path, str]]:
    """Names that collide (runs/a/onnx/model.int8.onnx and runs/b/onnx/model.int8.onnx) get more of
    their path until they differ: results, tokenised inputs and plots are keyed by name."""
    keys = [(p.resolve(), k) for _, p, k in entries]
    twice = sorted({str(p) for p, k in keys if keys.count((p, k)) > 1})
    if twice:
        raise KdeployError(f"the same model is given twice: {', '.join(twice)}")

    def longer(name: str, path: Path, depth: int) -> str:
        parts = path.resolve().parts
        head = "/".join(parts[max(1, len(parts) - depth):])
        return head + name[name.index(" ("):] if " (" in name else head

    out, depth = list(entries), 3
    while True:  # ends: distinct (path, kind) pairs differ once the whole path is used
        names = [n for n, _, _ in out]
        clashing = {n for n in names if names.count(n) > 1}
        if not clashing:
            return out
        out = [(longer(n, p, depth) if n in clashing else n, p, k) for (n, p, k) in out]
        depth += 1


def expand(spec: str) -> list[tuple[str, Path, str]]:
    """A spec -> (name, path, kind) entries. A folder with *.onnx gives one entry per file;
    a save_pretrained folder is PyTorch; `FOLDER@int8` is PyTorch with torch.ao dynamic int8."""
    kind = "pytorch"
    if spec.endswith("@int8"):
        spec, kind = spec[:-5], "pytorch-int8"
    path = Path(spec)
    if not path.exists():
        raise KdeployError(f"{path}: no such model folder or ONNX file")
    if path.is_file():
        if path.suffix != ".onnx":
            raise KdeployError(f"{path}: not an .onnx file")
        return [(f"{path.parent.name}/{path.name}", path, "onnx")]
    onnx_files = sorted(path.glob("*.onnx"))
    if onnx_files and kind == "pytorch":
        return [(f"{path.name}/{p.name}", p, "onnx") for p in onnx_files]
    if not (path / "config.json").exists():
        raise KdeployError(f"{path}: neither ONNX files nor a save_pretrained model folder")
    return [(f"{path.name} (pytorch{' int8' if kind == 'pytorch-int8' else ''})", path, kind)]


def load_candidate(name: str, path: Path, kind: str, provider: str, threads: int | None, allow_fallback: bool,
                   max_length: int | None) -> Candidate:
    from transformers import AutoTokenizer

    from .memory import rss_mib

    before = rss_mib()
    folder = path if path.is_dir() else path.parent
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # transformers and tokenizers raise several types for a folder without one
        raise KdeployError(f"{folder}: no tokenizer to go with the model ({str(exc).splitlines()[0]})") from None
    length = resolve_max_length(max_length, folder, tokenizer_limit=getattr(tokenizer, "model_max_length", None))
    if kind == "onnx":
        session = create_session(path, provider, threads, allow_fallback)
        output = session.get_outputs()[0].name
        cand = Candidate(name, "onnx", path, onnx_mib(path), tokenizer, length,
                         lambda enc: session.run([output], feed(session, enc))[0],
                         provider=session.get_providers()[0], threads=threads)
        if provider == "cuda" and _has_int8_ops(path):
            cand.notes.append(INT8_CUDA_WARNING)
    else:
        cand = _torch_candidate(name, path, kind, tokenizer, length, provider, threads, allow_fallback)
    cand.memory_mib = round(rss_mib() - before, 1)
    return cand


def _torch_candidate(name, path, kind, tokenizer, max_length, provider, threads, allow_fallback) -> Candidate:
    import torch

    from ..modelio.inputs import select_inputs
    from ..modelio.loading import load_classifier

    if threads:
        torch.set_num_threads(threads)
    if provider != "cpu" and not torch.cuda.is_available() and not allow_fallback:
        raise KdeployError(f"{path}: --provider {provider} asked for a GPU, but PyTorch sees none (CUDA "
                           "unavailable); pass --allow-fallback to measure it on the CPU")
    device = "cuda" if provider != "cpu" and torch.cuda.is_available() else "cpu"
    model = load_classifier(str(path)).eval()
    if kind == "pytorch-int8":
        if device != "cpu":
            raise KdeployError("torch.ao dynamic int8 runs on the CPU only")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    model.to(device)

    def run(enc):
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in select_inputs(enc).items()}
            return model(**inputs).logits.float().cpu().numpy()

    size = mib(sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")))
    if kind == "pytorch-int8":  # what the quantised weights would take on disk
        import io

        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        size = round(buf.tell() / 2**20, 3)
    return Candidate(name, kind, path, size, tokenizer, max_length, run,
                     provider=f"pytorch-{device}", threads=torch.get_num_threads())


def _has_int8_ops(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul") for n in model.graph.node)
