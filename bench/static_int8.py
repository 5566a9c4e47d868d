"""Calibrated (static QDQ) int8 against dynamic int8 on one student, in one interleaved run:
accuracy on the test split, batch invariance (each text alone vs batches of 32 vs beside the
longest text) and speed (batch-1 p50, batch-32 texts/s), with OpenVINO on the same QDQ file.

    python bench/static_int8.py --export runs/demo/onnx --student runs/demo/student \
        --data-dataset builtin:rotten_tomatoes --name static_int8_demo

Each candidate is a fusion plan × quantisation, built with the functions `kdeploy export` uses
(dynamic; calibrated `integer`: onnxruntime's integer operators on the fused graph with frozen
scales; calibrated `qdq`: QDQ on the unfused graph), scored on the whole test split. OpenVINO
runs the QDQ files (it reads QDQ natively; it cannot run onnxruntime's com.microsoft operators).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdeploy.data import DataConfig, load_task_data  # noqa: E402
from kdeploy.environment import library_versions, machine  # noqa: E402
from kdeploy.export.choose import Candidate, feeds, time_candidates  # noqa: E402
from kdeploy.export.optimize import optimize  # noqa: E402
from kdeploy.export.quantize import (detect_isa, quantize_dynamic_int8, quantize_frozen_int8,  # noqa: E402
                                     quantize_static_int8)
from kdeploy.modelio.batching import batched_logits  # noqa: E402
from kdeploy.modelio.exported import ExportedModel  # noqa: E402
from kdeploy.modelio.invariance import as_outputs, check_invariance  # noqa: E402
from kdeploy.modelio.onnx_session import create_session, onnx_runner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True, help="an export folder (its model.onnx and tokenizer)")
    ap.add_argument("--student", required=True, help="the student folder (its config for the fusion tool)")
    ap.add_argument("--data-dataset", default=None)
    ap.add_argument("--data-dir", default=None, help="a folder with train/validation/test files")
    ap.add_argument("--max-train-samples", type=int, default=4000)
    ap.add_argument("--name", required=True)
    ap.add_argument("--plans", default="plain,optimum,lean")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--no-openvino", action="store_true", help="leave OpenVINO's rows out")
    args = ap.parse_args()

    from transformers import AutoConfig, AutoTokenizer

    export = Path(args.export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    config = AutoConfig.from_pretrained(args.student)
    max_length = ExportedModel.read(export).max_length
    if args.data_dir:
        d = Path(args.data_dir)
        pick = lambda n: str(next(iter(sorted(d.glob(f"{n}.*"))), "")) or None  # noqa: E731
        data = load_task_data(DataConfig(train=pick("train"), validation=pick("validation") or pick("dev"),
                                         test=pick("test"), max_train_samples=args.max_train_samples))
    else:
        data = load_task_data(DataConfig(dataset=args.data_dataset, max_train_samples=args.max_train_samples))
    test_texts, labels = data.texts("test"), np.asarray(data.splits["test"]["label"])
    rng = np.random.default_rng(0)
    train = data.texts("train")
    calib = [train[i] for i in rng.permutation(len(train))[:256]]
    isa = detect_isa()
    tmp = Path(tempfile.mkdtemp(prefix="kdeploy-static-bench-"))
    plain = export / "model.onnx"

    def batches(src):
        session = create_session(src)
        names = [i.name for i in session.get_inputs()]
        return [{k: np.asarray(v, dtype=np.int64) for k, v in tokenizer(calib[i:i + 16], truncation=True,
                max_length=max_length, padding=True, return_tensors="np").items() if k in names}
                for i in range(0, len(calib), 16)]

    candidates: list[Candidate] = []
    build: dict[str, float] = {}
    for plan in args.plans.split(","):
        src = plain
        session_settings: dict = {}
        if plan != "plain":
            src = tmp / f"{plan}.opt.onnx"
            info = optimize(plain, src, "O2", config, plan)
            session_settings = info["session"]
        modes = ["dynamic", "qdq", "qdq-per-channel"] if plan == "plain" else ["dynamic", "integer", "integer-per-channel"]
        for mode in modes:
            dst = tmp / f"{plan}.{mode}.onnx"
            t0 = time.perf_counter()
            if mode == "dynamic":
                quantize_dynamic_int8(src, dst, isa, False)
            elif mode.startswith("integer"):
                quantize_frozen_int8(src, dst, isa, mode.endswith("channel"), lambda s=src: batches(s))
            else:
                quantize_static_int8(src, dst, isa, mode.endswith("channel"), "minmax", lambda s=src: batches(s))
            build[f"{plan}+{mode}"] = round(time.perf_counter() - t0, 2)
            candidates.append(Candidate(name=f"{plan}+{mode}", files={"m": dst}, session=session_settings))
    ov_ok = True
    try:
        import openvino  # noqa: F401
    except ImportError:
        ov_ok = False
    singles, batched = feeds(tokenizer, test_texts, max_length, n1=96)
    rows = []
    for c in candidates:
        session = create_session(c.files["m"], threads=args.threads,
                                 disabled_optimizers=c.session.get("disabled_optimizers"))
        run = onnx_runner(session, tokenizer, max_length)
        outputs = lambda texts, run=run: as_outputs(run(list(texts)), False)  # noqa: E731
        inv = check_invariance(outputs, test_texts)
        acc = float((batched_logits(run, test_texts).argmax(-1) == labels).mean())
        rows.append({"name": c.name, "accuracy": round(100 * acc, 2), "invariance": inv.summary(),
                     "max_abs_dp": inv.max_abs_diff, "flips": inv.flips, "build_s": build[c.name],
                     "mib": round(c.files["m"].stat().st_size / 2**20, 2)})
    fp32 = Candidate(name="fp32 model.onnx", files={"m": plain})
    peers = [fp32]
    if ov_ok and not args.no_openvino:  # the same QDQ files in OpenVINO: int8 where quantised, the hint's precision elsewhere
        from kdeploy.modelio.openvino_session import OpenVINOSession

        for c in [c for c in candidates if "qdq" in c.name]:
            for precision in ("f32", "bf16"):
                name = f"openvino-{precision} on {c.name}"
                peers.append(Candidate(name=name, files={"m": c.files["m"]}, info={"runtime": f"openvino-{precision}"}))
                run = onnx_runner(OpenVINOSession(c.files["m"], args.threads, precision), tokenizer, max_length)
                outputs = lambda texts, run=run: as_outputs(run(list(texts)), False)  # noqa: E731
                inv = check_invariance(outputs, test_texts)
                acc = float((batched_logits(run, test_texts).argmax(-1) == labels).mean())
                rows.append({"name": name, "accuracy": round(100 * acc, 2), "invariance": inv.summary(),
                             "max_abs_dp": inv.max_abs_diff, "flips": inv.flips,
                             "mib": round(c.files["m"].stat().st_size / 2**20, 2)})
    time_candidates(candidates + peers, "m", singles, batched, rounds=args.rounds, threads=args.threads)
    fp32_acc = None
    for c in candidates + peers:
        row = next((r for r in rows if r["name"] == c.name), None)
        if row is None:
            row = {"name": c.name}
            rows.append(row)
        row["bs1_p50_ms"], row["bs32_per_s"] = c.timing.bs1_p50_ms, c.timing.bs32_per_s
    session = create_session(plain, threads=args.threads)
    fp32_acc = round(100 * float((batched_logits(onnx_runner(session, tokenizer, max_length), test_texts)
                                  .argmax(-1) == labels).mean()), 2)
    out = {"command": " ".join(["python", "bench/static_int8.py", *sys.argv[1:]]), "machine": machine(),
           "versions": library_versions(), "isa": isa, "test_texts": len(test_texts), "fp32_accuracy": fp32_acc,
           "rows": rows}
    results = Path(__file__).parent / "results"
    (results / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"# Static vs dynamic int8: {args.name}", "", f"`{out['command']}`", "",
             f"Machine: {out['machine']}; isa preset {isa}; onnxruntime {out['versions'].get('onnxruntime')}; "
             f"one interleaved timing run ({args.rounds} rounds), {args.threads} threads, nothing else running.",
             f"Test split: {len(test_texts)} texts; fp32 model.onnx accuracy {fp32_acc}%.", "",
             "| candidate | accuracy % | invariance (alone vs batch 32 vs beside the longest) | batch-1 p50 ms | "
             "batch-32 texts/s | MiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r.get('accuracy', '-')} | {r.get('invariance', '-')} | "
                     f"{r['bs1_p50_ms']:.3f} | {r['bs32_per_s']:.0f} | {r.get('mib', '-')} |")
    (results / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
