"""`package(PackageConfig)`: an export folder → a self-contained, checksummed bundle
(folder and archive) with a manifest and a model card generated from it."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..edge import BUNDLE_FORMAT, MANIFEST, verify_bundle
from ..errors import KdeployError
from ..fsutil import atomic_dir, write_json
from ..safety import sha256_of
from .ort_format import OPERATORS, ORT_MODEL, convert_to_ort

PREFERENCE = ("model.int8.onnx", "model.opt.onnx", "model.onnx")


@dataclass
class PackageConfig:
    export_dir: str
    out: str  # the bundle folder; the archive goes beside it (out + .tar.gz / .zip)
    model_file: str | None = None  # default: int8, else optimised, else fp32
    archive: str | None = "tar.gz"  # tar.gz, zip, or None
    report: str | None = None  # a kdeploy bench report.json whose figures go into the manifest
    ort_format: bool = False  # also model.ort (+ required_operators.config) for ONNX Runtime Mobile

    def __post_init__(self) -> None:
        if self.archive not in (None, "tar.gz", "zip"):
            raise KdeployError(f"--archive must be tar.gz, zip or none, got {self.archive!r}")


def _pick_model(export_dir: Path, wanted: str | None) -> Path:
    if wanted:
        path = export_dir / wanted
        if not path.is_file():
            raise KdeployError(f"{path}: no such ONNX file in the export folder")
        return path
    for name in PREFERENCE:
        if (export_dir / name).is_file():
            return export_dir / name
    raise KdeployError(f"{export_dir}: no model.onnx; make an export folder with kdeploy export")


def _bench_figures(report_path: Path, model_name: str) -> dict | None:
    report = json.loads(report_path.read_text())
    for m in report.get("models", []):
        if m["path"].endswith(model_name) or m["name"].endswith(model_name):
            return {"latency": m["latency"], "accuracy": m.get("accuracy"), "size_mib": m["size_mib"],
                    "provider": m["provider"], "threads": m["threads"], "machine": report["environment"]["machine"],
                    "reference": report["reference"], "vs_reference": m["vs_reference"]}
    return None


def package(cfg: PackageConfig) -> dict:
    from ..environment import library_versions

    export_dir = Path(cfg.export_dir)
    report_path = export_dir / "export_report.json"
    if not report_path.is_file():
        raise KdeployError(f"{export_dir}: no export_report.json; package a folder written by kdeploy export")
    export_report = json.loads(report_path.read_text())
    model_path = _pick_model(export_dir, cfg.model_file)
    config = json.loads((export_dir / "config.json").read_text())
    tok_config = json.loads((export_dir / "tokenizer_config.json").read_text()) if (export_dir / "tokenizer_config.json").exists() else {}
    if not (export_dir / "tokenizer.json").is_file():
        raise KdeployError(f"{export_dir}: no tokenizer.json (a fast tokenizer is needed on the device)")
    pad_token = tok_config.get("pad_token") or "[PAD]"
    if isinstance(pad_token, dict):
        pad_token = pad_token.get("content", "[PAD]")
    vocab = json.loads((export_dir / "tokenizer.json").read_text())["model"].get("vocab", {})
    pad_id = config.get("pad_token_id")
    if isinstance(vocab, dict) and pad_token in vocab:
        pad_id = vocab[pad_token]
    kd = config.get("kdeploy", {})
    name = model_path.name
    dtype = export_report["files"].get(name, {}).get("dtype", "fp32")
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": "model.onnx",
        "source_file": name,
        "dtype": dtype,
        "tokenizer": "tokenizer.json",
        "label_names": kd.get("label_names") or [config["id2label"][str(i)] for i in range(len(config["id2label"]))],
        "max_length": kd.get("max_length") or export_report["max_length"],
        "pad_token": pad_token,
        "pad_token_id": pad_id if pad_id is not None else 0,
        "inputs": kd.get("inputs"),
        "outputs": kd.get("outputs", ["logits"]),
        "opset": kd.get("opset"),
        "provider_advice": ("CPUExecutionProvider (int8 has no CUDA kernels)" if dtype == "int8"
                            else "CUDAExecutionProvider" if dtype == "fp16" else "CPUExecutionProvider or CUDAExecutionProvider"),
        "accuracy": (export_report.get("accuracy") or {}).get(name),
        "accuracy_split": (export_report.get("accuracy") or {}).get("split"),
        "parity": {k: v.get("max_abs_diff") for k, v in export_report.get("parity", {}).items()},
        "benchmark": _bench_figures(Path(cfg.report), name) if cfg.report else None,
        "provenance": {**export_report.get("provenance", {}), "data_fingerprint": export_report.get("data_fingerprint"),
                       "export_versions": export_report.get("versions"), "package_versions": library_versions()},
    }
    out = Path(cfg.out)
    with atomic_dir(out) as tmp:
        shutil.copy2(model_path, tmp / "model.onnx")
        shutil.copy2(export_dir / "tokenizer.json", tmp / "tokenizer.json")
        names = ["model.onnx", "tokenizer.json"]
        if cfg.ort_format:
            names += convert_to_ort(tmp / "model.onnx", tmp)
            manifest["ort_model"], manifest["ort_operators"] = ORT_MODEL, OPERATORS
        manifest["files"] = {n: {"sha256": sha256_of(tmp / n), "bytes": (tmp / n).stat().st_size} for n in names}
        (tmp / "README.md").write_text(model_card(manifest), encoding="utf-8")
        manifest["files"]["README.md"] = {"sha256": sha256_of(tmp / "README.md"), "bytes": (tmp / "README.md").stat().st_size}
        write_json(tmp / MANIFEST, manifest)
        verify_bundle(tmp)
    archive = _write_archive(out, cfg.archive) if cfg.archive else None
    size = sum(p.stat().st_size for p in out.iterdir())
    return {"bundle": str(out), "archive": str(archive) if archive else None, "bundle_mib": round(size / 2**20, 3),
            "archive_mib": round(archive.stat().st_size / 2**20, 3) if archive else None, "manifest": manifest}


def _write_archive(folder: Path, kind: str) -> Path:
    """Written beside the folder under a temporary name, then renamed into place."""
    target = folder.with_name(folder.name + (".tar.gz" if kind == "tar.gz" else ".zip"))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder.parent)
    os.close(fd)
    try:
        if kind == "tar.gz":
            with tarfile.open(tmp, "w:gz") as tf:
                for p in sorted(folder.iterdir()):
                    tf.add(p, arcname=f"{folder.name}/{p.name}")
        else:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(folder.iterdir()):
                    zf.write(p, arcname=f"{folder.name}/{p.name}")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def model_card(m: dict) -> str:
    acc = m.get("accuracy") or {}
    student = m["provenance"].get("student") or {}
    what = (f"{len(student['teacher_layers'])}-layer student" if student.get("teacher_layers")
            else student.get("builder", "model"))
    lines = [f"# Text classifier: {what} (kdeploy bundle)", "",
             f"Labels: {', '.join(m['label_names'])}. Max length: {m['max_length']} tokens (longer text is truncated).",
             f"Model: `model.onnx` ({m['dtype']}, from `{m['source_file']}`, opset {m['opset']}); run it on "
             f"{m['provider_advice']}.", ""]
    if m.get("ort_model"):
        lines += [f"ORT format: `{m['ort_model']}` (same model, for ONNX Runtime Mobile and other minimal builds; "
                  f"`{m['ort_operators']}` lists the operators a reduced build must include).", ""]
    if acc:
        lines += [f"Accuracy on the {m.get('accuracy_split')} split: {100 * acc['accuracy']:.2f}% "
                  f"(macro-F1 {100 * acc['macro_f1']:.2f}%; {acc['examples']} examples"
                  + (f"; {acc['drop_points']:.2f} points below the fp32 export" if "drop_points" in acc else "") + ").", ""]
    b = m.get("benchmark")
    if b:
        for bs, s in b["latency"].items():
            lines.append(f"- batch {bs}: p50 {s['p50_ms']:.2f} ms, {s['throughput_per_s']:.0f} sentences/s "
                         f"({b['provider']}, {b['threads']} threads, {b['machine']['cpu']})")
        lines.append("")
    p = m["provenance"]
    teacher = p.get("teacher") or {}
    lines += ["## Provenance", "",
              f"- teacher: {teacher.get('model', '-')} (test accuracy {100 * teacher['test']['accuracy']:.2f}%)" if teacher.get("test") else f"- teacher: {teacher.get('model', '-')}",
              f"- distillation: α={p.get('alpha')}, T={p.get('temperature')}",
              f"- data fingerprint: {p.get('data_fingerprint')}",
              f"- kdeploy {p['package_versions'].get('kdeploy', '?')}, onnxruntime {p['package_versions'].get('onnxruntime', '?')}", "",
              "## Use", "", "```python", "from kdeploy.edge import Predictor  # needs onnxruntime, tokenizers, numpy only",
              "p = Predictor('path/to/bundle')", "print(p.predict(['your text here']))", "```", "",
              "Every file is checked against its sha256 in `kdeploy.json` before it is loaded.", ""]
    return "\n".join(lines)
