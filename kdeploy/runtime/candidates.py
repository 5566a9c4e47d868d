"""What `kdeploy bench` can measure, as runtime kinds in a registry: a model folder or ONNX file
plus `@kind` (`runs/teacher@bf16`, `onnx/model.onnx@openvino-int8`). Each kind wraps the
model as a candidate with the same interface; a kind whose package is not installed is
skipped with a note, not an error.

The peers a user would pick instead of distilling are kinds too: the teacher in PyTorch
bf16 autocast (AMX) or torch.compile, the teacher exported and quantised the way optimum-cli
does it, and OpenVINO (fp32, bf16, or its own int8 through NNCF) on any ONNX model.

Here: turning `PATH@KIND` specs into named entries and loading them; each kind lives in its own
module under `kinds/` (adding a runtime is one module there).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import KdeployError
from ..export.files import FP32
from ..names import MODEL_CONFIG
from .kinds import ALIASES, KINDS, Candidate, Context, missing_package  # noqa: F401 - the kinds, registered


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
    if not (path / MODEL_CONFIG).exists():
        raise KdeployError(f"{path}: neither ONNX files nor a save_pretrained model folder")
    kind = kind or "pytorch"
    if KINDS[kind].applies_to == "onnx":
        raise KdeployError(f"{spec}@{kind}: {kind} runs an ONNX file; give one (e.g. {path}/model.onnx)")
    return [(_label(path, kind), path, kind)]


def is_bundle(path: Path) -> bool:
    from ..manifest import LEGACY_MANIFEST, MANIFEST

    if path.is_dir():  # (a model folder has a kdeploy.json record too, but also its config.json)
        return (path / MANIFEST).is_file() or ((path / LEGACY_MANIFEST).is_file() and not (path / MODEL_CONFIG).exists())
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
            fp32 = path.with_name(FP32.file) if path.with_name(FP32.file).is_file() else path
            specs += [f"{fp32}@{k}" for k in ("openvino-bf16", "openvino-int8")]
    return list(dict.fromkeys(specs))


def load_candidate(name: str, path: Path, kind: str, context: Context) -> Candidate | str:
    """The candidate, or a note saying why this kind was skipped on this machine."""
    from .memory import settled_rss_mib

    missing = missing_package(kind)
    if missing:
        return f"{name}: skipped, {missing} is not installed (pip install {missing.split('.')[0]})"
    before = settled_rss_mib()
    cand = KINDS[kind].load(name, path, context)
    grown = settled_rss_mib() - before
    if grown >= 0:
        cand.memory_mib = round(grown, 1)
    else:  # memory an earlier load left behind was freed meanwhile: the difference measures that, not this model
        cand.notes.append(f"RSS growth on load not shown: the process's RSS fell by {-grown:.1f} MiB while it "
                          "loaded (memory freed from earlier loads), so the difference says nothing of this model")
    cand.origin = cand.origin or str(path.resolve())
    return cand


def work_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="kdeploy-bench-")

