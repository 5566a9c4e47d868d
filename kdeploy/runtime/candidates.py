"""What `kdeploy bench` can measure, as runtime kinds in a registry: a model folder or ONNX file
plus `@kind` (`runs/teacher@bf16`, `onnx/model.onnx@openvino-int8`). Each kind wraps the
model as a candidate with the same interface; a kind whose package is not installed is
skipped with a note, not an error.

The peers a user would pick instead of distilling are kinds too: the teacher in PyTorch
bf16 autocast (AMX) or torch.compile, the teacher exported and quantised the way optimum-cli
does it, and OpenVINO (fp32, bf16, or its own int8 through NNCF) on any ONNX model.
"""
from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import KdeployError
from ..modelio.inputs import tokenize
from ..modelio.onnx_session import create_session, feed, session_settings
from ..modelio.record import resolve_max_length
from ..modelio.sizes import mib, onnx_mib
from ..registry import Registry

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


# --- specs -----------------------------------------------------------------------------------

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


def _label(path: Path, kind: str) -> str:
    if kind == "onnx":
        return f"{path.parent.name}/{path.name}"
    base = path.name if path.is_dir() else f"{path.parent.name}/{path.name}"
    return f"{base} ({kind.replace('-', ' ')})"


def expand(spec: str) -> list[tuple[str, Path, str]]:
    """A spec -> (name, path, kind) entries. A folder with *.onnx gives one entry per file;
    a save_pretrained folder is PyTorch; `PATH@kind` picks a runtime kind (kdeploy list)."""
    kind = None
    if "@" in spec:
        spec, _, kind = spec.rpartition("@")
        kind = ALIASES.get(kind, kind)
        KINDS.lookup(kind)
    path = Path(spec)
    if not path.exists():
        raise KdeployError(f"{path}: no such model folder or ONNX file")
    if is_bundle(path):
        if kind not in (None, "bundle"):
            raise KdeployError(f"{spec}@{kind}: a bundle is timed as it runs (text in, probabilities out); drop @{kind}")
        return [(f"{path.name} (bundle)", path, "bundle")]
    if path.is_file():
        if path.suffix != ".onnx":
            raise KdeployError(f"{path}: not an .onnx file")
        kind = kind or "onnx"
        if KINDS[kind].applies_to == "folder":
            raise KdeployError(f"{spec}@{kind}: {kind} runs a PyTorch model folder, not an ONNX file")
        return [(_label(path, kind), path, kind)]
    onnx_files = sorted(path.glob("*.onnx"))
    if onnx_files and kind is None:
        return [(f"{path.name}/{p.name}", p, "onnx") for p in onnx_files]
    if not (path / "config.json").exists():
        raise KdeployError(f"{path}: neither ONNX files nor a save_pretrained model folder")
    kind = kind or "pytorch"
    if KINDS[kind].applies_to == "onnx":
        raise KdeployError(f"{spec}@{kind}: {kind} runs an ONNX file; give one (e.g. {path}/model.onnx)")
    return [(_label(path, kind), path, kind)]


def is_bundle(path: Path) -> bool:
    from ..manifest import LEGACY_MANIFEST, MANIFEST

    if path.is_dir():  # (a model folder has a kdeploy.json record too, but also its config.json)
        return (path / MANIFEST).is_file() or ((path / LEGACY_MANIFEST).is_file() and not (path / "config.json").exists())
    return path.name.endswith((".tar.gz", ".tgz", ".zip"))


def peers_of(entries: list[tuple[str, Path, str]], reference: str) -> list[str]:
    """The specs a user would try instead of distilling: the reference teacher in every faster
    runtime, and OpenVINO on every ONNX student (its fp32 file: OpenVINO cannot read ORT's
    contrib int8 operators). Kinds whose package is absent are left to the loader's note."""
    specs = []
    for name, path, kind in entries:
        if name == reference and kind == "pytorch":
            specs += [f"{path}@{k}" for k in ("pytorch-bf16", "pytorch-compile", "ort-int8", "openvino-bf16")]
        elif kind == "onnx":
            fp32 = path.with_name("model.onnx") if path.with_name("model.onnx").is_file() else path
            specs += [f"{fp32}@{k}" for k in ("openvino-bf16", "openvino-int8")]
    return list(dict.fromkeys(specs))


def load_candidate(name: str, path: Path, kind: str, context: Context) -> Candidate | str:
    """The candidate, or a note saying why this kind was skipped on this machine."""
    from .memory import rss_mib

    missing = missing_package(kind)
    if missing:
        return f"{name}: skipped, {missing} is not installed (pip install {missing.split('.')[0]})"
    before = rss_mib()
    cand = KINDS[kind].load(name, path, context)
    cand.memory_mib = round(rss_mib() - before, 1)
    cand.origin = cand.origin or str(path.resolve())
    return cand


def _tokenizer(folder: Path, max_length: int | None):
    from transformers import AutoTokenizer

    from ..modelio.inputs import set_truncation
    from ..modelio.record import truncation_of

    try:
        tokenizer = set_truncation(AutoTokenizer.from_pretrained(folder), truncation_of(folder))
    except KdeployError:
        raise
    except Exception as exc:  # transformers and tokenizers raise several types for a folder without one
        raise KdeployError(f"{folder}: no tokenizer to go with the model ({str(exc).splitlines()[0]})") from None
    return tokenizer, resolve_max_length(max_length, folder, tokenizer_limit=getattr(tokenizer, "model_max_length", None))


# --- ONNX Runtime -------------------------------------------------------------------------------

@register_kind("onnx", needs=("onnxruntime",), applies_to="onnx")
def _onnx(name, path, ctx, *, precision=None, origin="") -> Candidate:
    """An ONNX file in ONNX Runtime, with the session settings its export chose."""
    from .macs import onnx_mac_count

    tokenizer, length = _tokenizer(path.parent, ctx.max_length)
    session = create_session(path, ctx.provider, ctx.threads, ctx.allow_fallback,
                             session_settings(path).get("disabled_optimizers"))
    output = session.get_outputs()[0].name
    int8 = _has_int8_ops(path)
    cand = Candidate(name, "onnx", path, onnx_mib(path), tokenizer, length,
                     lambda enc: session.run([output], feed(session, enc))[0],
                     provider=session.get_providers()[0], threads=ctx.threads, macs=onnx_mac_count(path),
                     precision=precision or ("int8" if int8 else "fp32"), origin=origin)
    if ctx.provider == "cuda" and int8:
        cand.notes.append(INT8_CUDA_WARNING)
    return cand


@register_kind("ort-int8", needs=("onnxruntime", "optimum.onnxruntime"), applies_to="folder")
def _ort_int8(name, path, ctx) -> Candidate:
    """A model folder exported and quantised as optimum-cli does (`export onnx` + dynamic int8, VNNI preset)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    folder = _optimum_export(path, ctx)
    target = folder.parent / (folder.name + "-int8")
    if not (target / "model_quantized.onnx").exists():
        quantizer = ORTQuantizer.from_pretrained(folder)
        quantizer.quantize(save_dir=target, quantization_config=AutoQuantizationConfig.avx512_vnni(
            is_static=False, per_channel=False))
        for extra in folder.iterdir():  # tokenizer and config beside the quantised file
            if extra.suffix in (".json", ".txt") and not (target / extra.name).exists():
                (target / extra.name).write_bytes(extra.read_bytes())
    cand = _onnx(name, target / "model_quantized.onnx", ctx, precision="int8", origin=str(path.resolve()))
    cand.macs = _onnx_macs(folder / "model.onnx")
    cand.kind = "ort-int8"
    return cand


def _optimum_export(path: Path, ctx: Context) -> Path:
    """The model folder as fp32 ONNX (optimum's exporter), once per run."""
    import warnings

    from optimum.exporters.onnx import main_export

    folder = ctx.work / f"{abs(hash(str(path.resolve())))}-onnx"
    if not (folder / "model.onnx").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main_export(str(path), output=folder, task="text-classification", device="cpu", do_validation=False,
                        local_files_only=True)
    return folder


def _onnx_macs(path: Path):
    from .macs import onnx_mac_count

    return onnx_mac_count(path)


def _has_int8_ops(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QAttention",
                             "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QuantizeLinear", "DequantizeLinear",
                             "ConvInteger", "QLinearConv") for n in model.graph.node)


# --- OpenVINO -------------------------------------------------------------------------------------

def _openvino(name, path, ctx, kind: str, hint: str, int8: bool) -> Candidate:
    import openvino as ov

    source = path if path.is_file() else _optimum_export(path, ctx) / "model.onnx"
    tokenizer, length = _tokenizer(source.parent if path.is_file() else path, ctx.max_length)
    core = ov.Core()
    model = core.read_model(str(source))
    if int8:
        import nncf

        texts = ctx.calibration_texts[:256] or ["a calibration sentence"]
        items = [{k: v for k, v in tokenize(tokenizer, texts[i:i + 16], length, return_tensors="np").items()
                  if k in {i.get_any_name() for i in model.inputs}}
                 for i in range(0, len(texts), 16)]
        model = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(items))
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": ctx.threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]

    def run(enc):
        result = request.infer({k: np.asarray(enc[k], dtype=np.int64) for k in names if k in enc})
        return next(iter(result.values()))

    return Candidate(name, kind, path, onnx_mib(source), tokenizer, length, run, provider="openvino-CPU",
                     threads=ctx.threads, macs=_onnx_macs(source), origin=str(path.resolve()),
                     precision="int8" if int8 else hint.replace("f32", "fp32"))


@register_kind("openvino", needs=("openvino",), applies_to="any")
def _openvino_fp32(name, path, ctx) -> Candidate:
    """OpenVINO on the fp32 ONNX model (a folder is exported first), fp32 arithmetic."""
    return _openvino(name, path, ctx, "openvino", "f32", False)


@register_kind("openvino-bf16", needs=("openvino",), applies_to="any")
def _openvino_bf16(name, path, ctx) -> Candidate:
    """OpenVINO with a bf16 inference-precision hint (AMX where the processor has it)."""
    return _openvino(name, path, ctx, "openvino-bf16", "bf16", False)


@register_kind("openvino-int8", needs=("openvino", "nncf"), applies_to="any")
def _openvino_int8(name, path, ctx) -> Candidate:
    """OpenVINO with its own int8: NNCF post-training quantisation calibrated on the bench's text."""
    return _openvino(name, path, ctx, "openvino-int8", "bf16", True)


# --- PyTorch ----------------------------------------------------------------------------------

def _torch(name, path, ctx, kind: str, mode: str) -> Candidate:
    import torch

    from ..modelio.inputs import select_inputs
    from ..modelio.loading import load_classifier
    from .macs import torch_mac_count

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


# --- bundles ----------------------------------------------------------------------------------

class _BundleTokens:
    """The bundle's own tokenizer.json, answering like a transformers tokenizer (numpy), for the
    bench's padding and token accounting; the timed call tokenises again, inside the bundle."""

    def __init__(self, predictor):
        self.predictor = predictor

    def __call__(self, texts, text_pair=None, truncation=True, max_length=None, padding=True, return_tensors="np"):
        items = list(zip(texts, text_pair)) if text_pair is not None else list(texts)
        rows = [e.ids[:max_length] if max_length else e.ids for e in self.predictor._encode(items)]
        longest = max(map(len, rows), default=1) or 1
        ids = np.full((len(rows), longest), self.predictor.manifest.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        return {"input_ids": ids, "attention_mask": mask}


@register_kind("bundle", needs=("onnxruntime", "tokenizers"), applies_to="bundle")
def _bundle(name, path, ctx) -> Candidate:
    """A bundle of any format (python, onnx-e2e, web; folder or archive), timed end to end: text in, probabilities out."""
    from ..edge import Predictor

    if ctx.provider != "cpu":
        raise KdeployError(f"{path}: bundles are timed on the CPU here (their predictor's default)")
    predictor = Predictor(path, threads=ctx.threads)
    model = predictor.folder / predictor.manifest.model

    def run(enc: dict) -> np.ndarray:
        results = predictor.predict(enc["texts"], batch_size=len(enc["texts"]))
        probs = np.array([[r["probabilities"][label] for label in predictor.labels] for r in results], dtype=np.float64)
        return np.log(np.clip(probs, 1e-30, None))  # log-probabilities: logits up to a constant per row

    cand = Candidate(name, "bundle", path, mib(path) if path.is_dir() else mib(path), _BundleTokens(predictor),
                     predictor.max_length, run, provider=f"{predictor.manifest.kind} bundle", threads=ctx.threads,
                     precision=predictor.manifest.dtype if predictor.manifest.dtype in ("int8", "fp32") else "fp32",
                     end_to_end=True, keep=predictor)
    if model.suffix == ".onnx" and not predictor.e2e:
        from .macs import onnx_mac_count

        cand.macs = onnx_mac_count(model)
    return cand


def work_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="kdeploy-bench-")
