#!/usr/bin/env bash
# The ladder's front on SST-2 and SST-5 with the cheap baselines in the same run (issue 23): per task
# one `kdeploy bench` of the fine-tuned teacher (PyTorch, the reference), the ladder's students in
# calibrated int8 (3 layers, BiLSTM, CNN, static) and TF-IDF+LR, fastText and model2vec trained inside
# the bench on the same train split (TF-IDF's C and model2vec's early stopping on the validation
# split), everything scored on the test split and timed interleaved. Run from the repository root
# with nothing else on the machine; each step is skipped when its output is already there.
#   teachers: runs/sst2_minilm3/teacher (models/sst2_minilm3.yaml) and runs/sst5_teacher
#   (`kdeploy finetune --model builtin:all-MiniLM-L6-v2 … --epochs 4`, static_vs_model2vec.md);
#   SST-2's 3-layer student is that recipe's (runs/sst2_minilm3/onnx); the static students are
#   bench/static_vs_model2vec.py's seed-1 files (S2, S5 below). Results: bench/results/sst_fronts.md.
set -euo pipefail
K=${K:-.venv/bin/kdeploy}
O=${O:-/tmp/sst-fronts}
S2=${S2:-/tmp/static-vs-m2v/sst2/default-s1/onnx}
S5=${S5:-/tmp/static-vs-m2v/sst5/default-s1/onnx}
mkdir -p "$O"
step() {  # step OUTPUT command...: run it timed unless OUTPUT exists
  local out=$1; shift
  if [ -e "$out" ]; then echo "skip: $out exists"; return; fi
  /usr/bin/time -f "took %e s: $*" "$@"
}
for task in sst2 sst5; do
  D=../shared/data/$task
  [ -f "$D/train.tsv" ] || { echo "skip: $D is absent"; continue; }
  DATA=(--train "$D/train.tsv" --validation "$D/dev.tsv" --test "$D/test.tsv")
  if [ "$task" = sst2 ]; then T=runs/sst2_minilm3/teacher; L=runs/sst2_minilm3/onnx; S=$S2; NAMES=(--label-names negative,positive)
  else T=runs/sst5_teacher; L=$O/sst5-layers3-onnx; S=$S5; NAMES=()  # its teacher was trained on the integer labels
    # the SST-2 recipe's 3-layer student: 2 augmented copies per sentence, 3 epochs at 1e-4
    step "$O/sst5-layers3" "$K" distill --teacher "$T" "${DATA[@]}" --student-layers 3 --augment 2 --epochs 3 \
        --out "$O/sst5-layers3"
    step "$L" "$K" export "$O/sst5-layers3" --out "$L"
  fi
  # the BiLSTM and CNN students with their families' defaults (augmented copies by data size)
  for kind in bilstm cnn; do
    step "$O/$task-$kind" "$K" distill --teacher "$T" "${DATA[@]}" --student "$kind" --out "$O/$task-$kind"
    step "$O/$task-$kind-onnx" "$K" export "$O/$task-$kind" --out "$O/$task-$kind-onnx"
  done
  step "$O/$task-report" "$K" bench "$T" "$L/model.int8.onnx" "$O/$task-bilstm-onnx/model.int8.onnx" \
      "$O/$task-cnn-onnx/model.int8.onnx" "$S/model.int8.onnx" --teacher "$T" \
      --baselines tfidf-lr,fasttext,model2vec --train "$D/train.tsv" --validation "$D/dev.tsv" \
      --data "$D/test.tsv" "${NAMES[@]}" --batch-sizes 1,32 --threads 2 \
      --iterations "${ITERATIONS:-100}" --warmup 5 --out "$O/$task-report"
done
