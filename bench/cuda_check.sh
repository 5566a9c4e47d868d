#!/usr/bin/env bash
# CUDA execution-provider check, for a machine with an NVIDIA GPU (not part of CI).
# Exports a tiny BERT and the fp16 GPU path, then benchmarks it on the CUDA EP and checks that
# (a) the session really runs on CUDAExecutionProvider, (b) int8 is flagged as unsupported there.
#   bash bench/cuda_check.sh            # from the repository root, after `make venv`
set -euo pipefail
PY=${PY:-.venv/bin/python}
$PY -m pip install -q --upgrade onnxruntime-gpu && $PY -m pip uninstall -q -y onnxruntime || true
work=$(mktemp -d)
$PY - "$work" <<'PY'
import sys, json, subprocess
from pathlib import Path
sys.path.insert(0, "tests")
import conftest as c
work = Path(sys.argv[1])
files = {k: c.write_tsv(work / f"{k}.tsv", c.make_sentences(n, s)) for k, n, s in (("train", 160, 1), ("test", 40, 3))}
model = c.build_tiny_bert(work / "bert")
run = lambda *a: subprocess.run([sys.executable, "-m", "kdeploy", *map(str, a)], check=True)
run("export", model, "--out", work / "onnx", "--optimize", "O2", "--fp16", "--quantize", "int8", "--data", files["test"], "--max-accuracy-drop", "100")
run("bench", work / "onnx", "--provider", "cuda", "--out", work / "report", "--batch-sizes", "1,32", "--iterations", "50", "--data", files["test"])
report = json.loads((work / "report" / "report.json").read_text())
for m in report["models"]:
    print(m["name"], m["provider"], m["latency"]["1"]["p50_ms"], m["notes"])
assert all(m["provider"] == "CUDAExecutionProvider" for m in report["models"]), "a session fell back to the CPU"
assert any("int8" in n for m in report["models"] for n in m["notes"]), "int8 on CUDA was not flagged"
print("CUDA EP check passed")
PY
