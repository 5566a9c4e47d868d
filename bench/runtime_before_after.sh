#!/usr/bin/env bash
# The demo student's int8 file before and after the fusion-plan choice at export (optimum's O2
# vs kdeploy's lean O2: no SkipLayerNormalization), beside the teacher, in one interleaved run:
# latency, throughput and each one's share of the machine's int8 GEMM peak.
#   bash bench/runtime_before_after.sh TEACHER BEFORE_ONNX AFTER_ONNX [NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${4:-runtime_before_after}
OUT=runs/${NAME}_report
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/kdeploy bench "$1" "$2" "$3" --dataset builtin:rotten_tomatoes --batch-sizes 1,32 --threads 2 \
  --iterations 300 --warmup 10 --out "$OUT" --overwrite
{ echo "Command: \`bash bench/runtime_before_after.sh $1 $2 $3 $NAME\` on $(date -u +%F), nothing else running."; echo; cat "$OUT/report.md"; } > "bench/results/$NAME.md"
cp "$OUT/report.json" "bench/results/$NAME.json"
