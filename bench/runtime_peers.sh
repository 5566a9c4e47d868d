#!/usr/bin/env bash
# The demo's student against the runtimes a user would pick instead of distilling, side by side
# in one run (kdeploy bench --peers): the teacher in PyTorch fp32 (reference), bf16 autocast,
# torch.compile, exported and quantised the way optimum-cli does it, and in OpenVINO bf16; the
# student's int8 ONNX as kdeploy exports it, and OpenVINO bf16 / NNCF int8 on its fp32 ONNX.
# Rotten Tomatoes test sentences, length-sorted batches, 2 threads, batch 1 and 32.
#   bash bench/runtime_peers.sh [TEACHER] [ONNX_FILE] [NAME]
# Run it on a quiet machine: the report flags a busy one.
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER=${1:-runs/demo/teacher}
ONNX=${2:-runs/demo/onnx/model.int8.onnx}
NAME=${3:-runtime_peers}
OUT=runs/${NAME}_report
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/kdeploy bench "$TEACHER" "$ONNX" --peers --dataset builtin:rotten_tomatoes \
  --batch-sizes 1,32 --threads 2 --iterations 200 --warmup 10 --out "$OUT" --overwrite
mkdir -p bench/results
{ echo "Command: \`bash bench/runtime_peers.sh $TEACHER $ONNX $NAME\` on $(date -u +%F), nothing else running."; echo; cat "$OUT/report.md"; } > "bench/results/$NAME.md"
cp "$OUT/report.json" "bench/results/$NAME.json"
