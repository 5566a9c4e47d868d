"""kdeploy's int8 student against the same student through optimum's command-line defaults.

    python bench/export_vs_optimum.py --student runs/sst2/bench/a0.5-s1

Side by side in one run, interleaved, batch 1 on real SST-2 test sentences, 2 threads,
model call only (tokenisation timed separately). Writes bench/results/export_vs_optimum.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    from transformers import AutoTokenizer

    from kdeploy.data import DataConfig
    from kdeploy.environment import library_versions, machine
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.modelio.onnx_session import create_session, feed
    from kdeploy.runtime.latency import Latency

    p = argparse.ArgumentParser()
    p.add_argument("--student", default=str(ROOT / "runs/sst2/bench/a0.5-s1"))
    p.add_argument("--work", default=str(ROOT / "runs/sst2/export_bench"))
    p.add_argument("--sentences", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    data = DataConfig(train=str(SST2 / "train.tsv"), validation=str(SST2 / "dev.tsv"), test=str(SST2 / "test.tsv"),
                      label_names=["negative", "positive"])

    t0 = time.perf_counter()
    report = export(ExportSettings(optimize="O2", quantize="int8"), model=a.student, out=work / "kdeploy", data=data,
                    overwrite=True).to_dict()
    report["accuracy"] = {**report["accuracy"], **report["accuracy"].pop("files")}  # this file's earlier layout
    kdeploy_seconds = time.perf_counter() - t0
    cli = Path(sys.executable).with_name("optimum-cli")
    t0 = time.perf_counter()
    subprocess.run([str(cli), "export", "onnx", "--model", a.student, "--task", "text-classification",
                    str(work / "optimum")], check=True, capture_output=True)
    subprocess.run([str(cli), "onnxruntime", "quantize", "--onnx_model", str(work / "optimum"), "--avx2",
                    "-o", str(work / "optimum-int8")], check=True, capture_output=True)
    optimum_seconds = time.perf_counter() - t0
    optimum_int8 = next((work / "optimum-int8").glob("*.onnx"))

    tok = AutoTokenizer.from_pretrained(a.student)
    texts = [l.split("\t")[0] for l in (SST2 / "test.tsv").read_text().splitlines()[1:]][: a.sentences]
    encs = [tok([t], truncation=True, max_length=128, return_tensors="np") for t in texts]
    models = {"kdeploy int8 (O2 + dynamic int8, auto ISA)": work / "kdeploy" / "model.int8.onnx",
              "optimum-cli int8 (export + quantize --avx2)": optimum_int8,
              "fp32 ONNX (reference)": work / "kdeploy" / "model.onnx"}
    sessions = {n: create_session(pth, threads=a.threads) for n, pth in models.items()}
    feeds = {n: [feed(s, e) for e in encs] for n, s in sessions.items()}
    times: dict[str, list[float]] = {n: [] for n in models}
    for n, s in sessions.items():  # warm-up
        for f in feeds[n][:20]:
            s.run(None, f)
    for _ in range(a.rounds):  # interleaved rounds: machine drift hits every model alike
        for n, s in sessions.items():
            for f in feeds[n]:
                t = time.perf_counter()
                s.run(None, f)
                times[n].append(time.perf_counter() - t)
    tok_times = []
    for t in texts:
        s0 = time.perf_counter()
        tok([t], truncation=True, max_length=128, return_tensors="np")
        tok_times.append(time.perf_counter() - s0)
    lat = {n: Latency.from_values(v) for n, v in times.items()}
    names = list(models)
    ratio = lat[names[0]].percentile(50) / lat[names[1]].percentile(50)
    sizes = {n: round(pth.stat().st_size / 2**20, 2) for n, pth in models.items()}
    result = {"date": date.today().isoformat(), "command": " ".join(["python", *sys.argv]), "machine": machine(),
              "versions": library_versions(), "student": a.student, "threads": a.threads,
              "latency": {n: l.summary() for n, l in lat.items()}, "sizes_mib": sizes,
              "p50_ratio_kdeploy_over_optimum": ratio, "tokenizer_p50_ms": 1000 * float(np.median(tok_times)),
              "export_seconds": {"kdeploy (export+gates+O2+int8)": kdeploy_seconds, "optimum-cli": optimum_seconds},
              "kdeploy_export_report": {"parity": report["parity"]["model.onnx"]["max_abs_diff"],
                                        "accuracy": report["accuracy"]}}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_vs_optimum.json").write_text(json.dumps(result, indent=2))
    acc = report["accuracy"]
    md = [f"# kdeploy int8 vs optimum-cli int8 ({result['date']})", "", f"`{result['command']}`", "",
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
          f"Batch 1, {a.sentences} SST-2 test sentences × {a.rounds} interleaved rounds, {a.threads} threads, model call only.", "",
          "| model | p50 ms | p90 ms | p99 ms | mean ± sd ms | sentences/s |", "|---|---|---|---|---|---|",
          *[lat[n].to_markdown_row(n) for n in names], "",
          f"- **p50 ratio kdeploy / optimum-cli: {ratio:.3f}**",
          f"- sizes (MiB): " + ", ".join(f"{n}: {s}" for n, s in sizes.items()),
          f"- tokenizer p50: {result['tokenizer_p50_ms']:.3f} ms per sentence",
          f"- kdeploy export report: fp32 parity max |Δlogit| {report['parity']['model.onnx']['max_abs_diff']:.2e}; "
          f"test accuracy fp32 {100 * acc['model.onnx']['metrics']['accuracy']:.2f}%, int8 {100 * acc['model.int8.onnx']['metrics']['accuracy']:.2f}% "
          f"(drop {acc['model.int8.onnx']['drop_points']:.2f} points, agreement {100 * acc['model.int8.onnx']['agreement']:.2f}%)",
          f"- wall time: kdeploy export with gates {kdeploy_seconds:.1f} s; optimum-cli export + quantize {optimum_seconds:.1f} s",
          ""]
    (out / "export_vs_optimum.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
