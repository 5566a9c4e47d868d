#!/usr/bin/env bash
# Sentence-embedding students on STS-B (issue 41): the teacher's vectors learnt on STS-B's train
# sentences plus SICK's and SST-2's training sentences (no labels used), judged on STS-B dev/test
# (Spearman ρ of cosine) and SICK test relatedness; each student and the teacher itself exported to
# calibrated int8 and bundled; then bench/embedding_report.py scores and times them all in one
# interleaved run, beside a model2vec model distilled from the teacher. Run alone on a quiet machine:
#   bash bench/embedding_stsb.sh [teacher] [layers...]       (SKIP_DISTILL=1: students already trained)
#   STUDENT=builtin:all-MiniLM-L6-v2 bash bench/embedding_stsb.sh builtin:all-mpnet-base-v2 3
#       (a pretrained student with its own tokenizer, keeping that many of its own layers)
set -euo pipefail
DATA=${DATA:-../shared/data}
TEACHER=${1:-builtin:all-MiniLM-L6-v2}
shift || true
LAYERS=${*:-3}
OUT=${OUT:-runs/embedding_stsb}
KD=${KD:-.venv/bin/kdeploy}
mkdir -p "$OUT"
# the extra training texts: SICK's two sentences and SST-2's sentence per training row (no labels)
python3 - "$DATA" "$OUT/extra.txt" <<'PY'
import csv, sys
data, out = sys.argv[1], sys.argv[2]
texts = []
for path, cols in ((f"{data}/sick/train.tsv", ("sentence1", "sentence2")), (f"{data}/sst2/train.tsv", ("sentence",))):
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            texts += [row[c].strip() for c in cols if row.get(c, "").strip()]
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(dict.fromkeys(t.replace("\n", " ") for t in texts)) + "\n")
PY
name=$(basename "${TEACHER#builtin:}")
student_args=()
if [ -n "${STUDENT:-}" ]; then student_args=(--student "$STUDENT"); fi
layer_flag=--student-layers; [ -n "${STUDENT:-}" ] && layer_flag=--student-own-layers
sname=${STUDENT:+_$(basename "${STUDENT#builtin:}")}
for L in $LAYERS; do
  [ -n "${SKIP_DISTILL:-}" ] && continue
  /usr/bin/time -v "$KD" distill --teacher "$TEACHER" --task embedding --train "$DATA/stsb/train.tsv" \
    --unlabeled "$OUT/extra.txt" --validation "$DATA/stsb/dev.tsv" --test "$DATA/stsb/test.tsv" \
    "${student_args[@]}" "$layer_flag" "$L" --out "$OUT/${name}${sname}_L$L" --overwrite \
    2> "$OUT/${name}${sname}_L$L.time" || { cat "$OUT/${name}${sname}_L$L.time"; exit 1; }
done

# the teacher itself in int8 (the fair peer: no distillation), then each student; python bundles
teacher_dir=$(.venv/bin/python -c "from kdeploy.assets import resolve_model; print(resolve_model('$TEACHER'))")
"$KD" export "$teacher_dir" --task embedding --train "$DATA/stsb/train.tsv" --validation "$DATA/stsb/dev.tsv" \
  --test "$DATA/stsb/test.tsv" --out "$OUT/${name}-onnx" --overwrite
"$KD" package "$OUT/${name}-onnx" --out "$OUT/${name}-int8" --overwrite --archive none
models=("teacher=$TEACHER" "teacher-int8=$OUT/${name}-int8")
for L in $LAYERS; do
  s="$OUT/${name}${sname}_L$L"
  "$KD" export "$s" --out "$s-onnx" --overwrite
  "$KD" package "$s-onnx" --out "$s-int8" --overwrite --archive none
  models+=("L$L${sname}=$s" "L$L${sname}-int8=$s-int8")
done
models+=("model2vec=model2vec:$TEACHER" "word-vectors=bag:$TEACHER")
.venv/bin/python bench/embedding_report.py --name "embedding_stsb_${name}${sname}" "${models[@]}"
