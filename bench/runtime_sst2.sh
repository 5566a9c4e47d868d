#!/usr/bin/env bash
# Teacher (PyTorch eager fp32) vs the distilled student in PyTorch eager, torch.ao dynamic int8,
# and kdeploy's int8 ONNX, side by side in one run: SST-2 test sentences (real lengths), 2 threads,
# batch 1 and 32. Writes bench/results/runtime_sst2.{md,json} and the HTML report under runs/.
#   bash bench/runtime_sst2.sh [TEACHER_DIR] [STUDENT_DIR] [ONNX_DIR] [NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER=${1:-runs/sst2/teacher}
STUDENT=${2:-runs/sst2/bench/a0.5-s1}
ONNX=${3:-runs/sst2/export_bench/kdeploy}
NAME=${4:-runtime_sst2}
OUT=runs/sst2/${NAME}_report
.venv/bin/kdeploy bench "$TEACHER" "$STUDENT" "$STUDENT@int8" "$ONNX/model.int8.onnx" \
  --data ../shared/data/sst2/test.tsv --label-names negative,positive \
  --batch-sizes 1,32 --threads 2 --iterations 300 --warmup 20 --out "$OUT"
mkdir -p bench/results
{ echo "Command: \`bash bench/runtime_sst2.sh $TEACHER $STUDENT $ONNX $NAME\` on $(date -u +%F)"; echo; cat "$OUT/report.md"; } > "bench/results/$NAME.md"
cp "$OUT/report.json" "bench/results/$NAME.json"
