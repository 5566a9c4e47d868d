"""`export(ExportConfig)`: the export stage's Python API.

model.onnx (fp32, parity-gated) → model.opt.onnx (fusions, parity-gated) →
model.int8.onnx / model.fp16.onnx (accuracy-gated), with tokenizer, config and
export_report.json, written into a temporary folder and renamed into place.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..configtools import to_dict
from ..data import load_task_data, recorded_data
from ..errors import KdeployError
from ..fsutil import atomic_dir, write_json
from .config import ExportConfig

# Used for the parity check when no data is at hand: varied lengths, casing, punctuation, non-ASCII.
FALLBACK_TEXTS = [
    "a warm, funny and quietly moving film about two brothers and a failing bakery",
    "dull.", "It's not a bad film, but it is not a good one either!", "ok",
    "Überraschend gut — a surprisingly good film, with a cast that clearly enjoyed itself.",
    "the plot was thin, the acting wooden, and the ending made no sense at all " * 3,
    "I laughed, I cried, I checked my watch twice.", "",
]


class AccuracyGateError(KdeployError):
    pass


def _mib(path: Path) -> float:
    size = path.stat().st_size
    data = path.with_name(path.name + "_data")
    if data.exists():
        size += data.stat().st_size
    return round(size / 2**20, 3)


def _suggestion(cfg: ExportConfig) -> str:
    if cfg.quantize == "int8" and not cfg.per_channel:
        return "try --per-channel, or --quantize int8-static"
    if cfg.quantize == "int8":
        return "try --quantize int8-static (calibrated activation ranges)"
    if cfg.calibration_method == "minmax":
        return "try --calibration-method percentile or entropy, or more --calibration-samples"
    return "quantise fewer layers (keep the classifier in fp32) or accept a larger --max-accuracy-drop"


def _torch_runner(model, tokenizer, max_length: int):
    from .parity import torch_logits

    return lambda texts: torch_logits(model, tokenizer, texts, max_length)


def export(cfg: ExportConfig) -> dict:
    from ..distill.teachers import load_classifier, load_tokenizer
    from ..distill.trainer import read_record
    from ..environment import library_versions, machine
    from ..runtime.accuracy import batched_logits, onnx_runner, score
    from ..runtime.session import create_session
    from .onnx import to_onnx
    from .optimize import TOLERANCE, optimize, to_fp16
    from .parity import check_parity, reference_logits
    from .quantize import detect_isa, quantize_dynamic_int8, quantize_static_int8

    model_dir = Path(cfg.model)
    if not model_dir.is_dir():
        raise KdeployError(f"{model_dir}: not a model folder (give a kdeploy distill/finetune output or a save_pretrained folder)")
    record = read_record(model_dir)
    model = load_classifier(str(model_dir), trust_remote_code=cfg.trust_remote_code).eval()
    tokenizer = load_tokenizer(str(model_dir), cfg.trust_remote_code)
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    max_length = cfg.max_length or (record.get("config", {}).get("train", {}) or {}).get("max_length") or min(
        getattr(tokenizer, "model_max_length", positions) or positions, positions, 512)
    data_cfg = cfg.data or recorded_data(record)
    data = load_task_data(data_cfg) if data_cfg else None
    derived = cfg.quantize is not None or cfg.fp16
    if derived and data is None:
        raise KdeployError("quantised or fp16 exports are accuracy-gated: give labelled data (--test/--validation "
                           "or --dataset), or export a model whose kdeploy.json records its data")
    texts = list(data.splits["validation"]["text"][:256]) if data is not None else FALLBACK_TEXTS
    isa = detect_isa() if cfg.isa == "auto" else cfg.isa
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]

    report: dict = {"model": str(model_dir), "config": to_dict(cfg), "max_length": max_length,
                    "label_names": label_names, "files": {}, "parity": {}, "timings": {}}
    started = time.perf_counter()
    sessions: dict = {}

    def session(path: Path):
        """One onnxruntime session per file, shared by the parity, calibration and accuracy checks."""
        if path.name not in sessions:
            sessions[path.name] = create_session(path)
        return sessions[path.name]

    with atomic_dir(cfg.out) as tmp:
        fp32 = tmp / "model.onnx"
        t0 = time.perf_counter()
        report["exporter"] = to_onnx(model, model_dir, fp32, cfg.opset, cfg.trust_remote_code)
        report["timings"]["export_seconds"] = round(time.perf_counter() - t0, 2)
        reference = reference_logits(model, tokenizer, texts, max_length)
        report["parity"]["model.onnx"] = check_parity(session(fp32), model, tokenizer, texts, max_length,
                                                      cfg.atol, "model.onnx", reference)
        report["files"]["model.onnx"] = {"mib": _mib(fp32), "dtype": "fp32", "opset": cfg.opset}
        base = fp32

        if cfg.optimize:
            opt = tmp / "model.opt.onnx"
            t0 = time.perf_counter()
            info = optimize(fp32, opt, cfg.optimize, model.config)
            report["timings"]["optimize_seconds"] = round(time.perf_counter() - t0, 2)
            tol = TOLERANCE.get(cfg.optimize) or cfg.atol
            report["parity"]["model.opt.onnx"] = check_parity(session(opt), model, tokenizer, texts,
                                                              max_length, max(tol, cfg.atol), "model.opt.onnx", reference)
            report["files"]["model.opt.onnx"] = {"mib": _mib(opt), "dtype": "fp16" if cfg.optimize == "O4" else "fp32",
                                                 "optimization": info}
            base = opt

        gated: list[str] = []
        if cfg.quantize:
            q = tmp / "model.int8.onnx"
            t0 = time.perf_counter()
            if cfg.quantize == "int8":
                info = quantize_dynamic_int8(base, q, isa, cfg.per_channel)
            else:
                train_texts = data.splits["train"].shuffle(seed=0)["text"][:cfg.calibration_samples]

                def batches():
                    from ..runtime.session import feed

                    calibration_session = session(base)
                    out = []
                    for i in range(0, len(train_texts), 16):
                        enc = tokenizer(train_texts[i:i + 16], truncation=True, max_length=max_length,
                                        padding=True, return_tensors="np")
                        out.append(feed(calibration_session, enc))
                    return out

                info = quantize_static_int8(base, q, isa, cfg.per_channel, cfg.calibration_method, batches)
            report["timings"]["quantize_seconds"] = round(time.perf_counter() - t0, 2)
            report["files"]["model.int8.onnx"] = {"mib": _mib(q), "dtype": "int8", "quantization": info,
                                                  "source": base.name,
                                                  "size_ratio_to_fp32": round(_mib(q) / _mib(fp32), 4)}
            report["parity"]["model.int8.onnx"] = check_parity(session(q), model, tokenizer, texts,
                                                               max_length, None, "model.int8.onnx", reference)
            gated.append("model.int8.onnx")
        if cfg.fp16:
            f16 = tmp / "model.fp16.onnx"
            report["files"]["model.fp16.onnx"] = {**to_fp16(base, f16), "mib": _mib(f16), "source": base.name,
                                                  "advice": "run on the CUDA execution provider"}
            try:
                report["parity"]["model.fp16.onnx"] = check_parity(session(f16), model, tokenizer, texts,
                                                                   max_length, None, "model.fp16.onnx", reference)
                gated.append("model.fp16.onnx")
            except KdeployError as exc:
                report["parity"]["model.fp16.onnx"] = {"skipped": f"cannot run on the CPU provider here: {exc}"}

        if data is not None:
            split = cfg.eval_split if cfg.eval_split in data.splits else "validation"
            eval_texts, labels = data.splits[split]["text"], np.asarray(data.splits[split]["label"])
            t0 = time.perf_counter()
            torch_ref = batched_logits(_torch_runner(model, tokenizer, max_length), eval_texts)
            accuracy = {"split": split, "examples": len(labels), "pytorch": score(torch_ref, labels)}
            ref_logits = None
            for name in report["files"]:
                if "skipped" in report["parity"].get(name, {}):
                    continue
                logits = batched_logits(onnx_runner(session(tmp / name), tokenizer, max_length), eval_texts)
                if name == "model.onnx":
                    ref_logits = logits
                scored = score(logits, labels, ref_logits if name in gated else torch_ref)
                scored["agreement_with"] = "model.onnx" if name in gated else "pytorch"
                scored["max_abs_diff_vs_pytorch"] = float(np.abs(logits - torch_ref).max())
                if name in gated:
                    scored["drop_points"] = round(100 * (accuracy["model.onnx"]["accuracy"] - scored["accuracy"]), 3)
                    scored["gate_passed"] = scored["drop_points"] <= cfg.max_accuracy_drop
                accuracy[name] = scored
            report["timings"]["accuracy_seconds"] = round(time.perf_counter() - t0, 2)
            report["accuracy"] = accuracy
            failed = [n for n in gated if not accuracy[n]["gate_passed"]]
            if failed:
                n = failed[0]
                raise AccuracyGateError(
                    f"{n} loses {accuracy[n]['drop_points']:.2f} accuracy points on {split} "
                    f"({100 * accuracy['model.onnx']['accuracy']:.2f}% → {100 * accuracy[n]['accuracy']:.2f}%), "
                    f"more than --max-accuracy-drop {cfg.max_accuracy_drop:g}; {_suggestion(cfg)}")

        tokenizer.save_pretrained(tmp)
        model.config.kdeploy = {"max_length": max_length, "label_names": label_names,
                                "inputs": sorted(i.name for i in session(fp32).get_inputs()), "outputs": ["logits"],
                                "opset": cfg.opset}
        model.config.save_pretrained(tmp)
        report["timings"]["total_seconds"] = round(time.perf_counter() - started, 2)
        report["provenance"] = {k: record.get(k) for k in ("stage", "teacher", "student", "alpha", "temperature")
                                if record.get(k) is not None}
        report["data_fingerprint"] = data.fingerprint if data is not None else None
        report["versions"] = library_versions()
        report["machine"] = machine()
        write_json(tmp / "export_report.json", report)
    return report
