#!/usr/bin/env bash
# Entity taggers on CoNLL-2003 (issue 40): a MiniLM-L6 teacher fine-tuned (5-epoch budget, early
# stopping 2, its learning rate probed), students of 3 and 2 of its layers distilled from it (3 epochs,
# α 0.5, T 2) and a BiLSTM (10 epochs), each exported to calibrated int8 and bundled, a CRF baseline and spaCy's NER trained; then
# bench/ner_conll.py scores (entity F1 on the test split, spans turned back into word tags) and times
# (batch-1 p50) them all in one interleaved run. Run alone on a quiet machine:
#   bash bench/ner_conll.sh [layers...]        (SKIP_TEACHER=1 / SKIP_DISTILL=1: already trained)
set -euo pipefail
C=${DATA:-../shared/data}/conll2003
OUT=${OUT:-runs/conll}
KD=${KD:-.venv/bin/kdeploy}
PY=${PY:-.venv/bin/python}
LAYERS=${*:-3 2}
SPLITS=(--task token-classification --train "$C/train.jsonl" --validation "$C/dev.jsonl" --test "$C/test.jsonl")
mkdir -p "$OUT"
if [ -z "${SKIP_TEACHER:-}" ]; then
  "$KD" finetune --model builtin:all-MiniLM-L6-v2 "${SPLITS[@]}" --epochs 5 --out "$OUT/teacher-minilm" --overwrite
fi
for L in $LAYERS; do
  if [ -z "${SKIP_DISTILL:-}" ]; then
    "$KD" distill --teacher "$OUT/teacher-minilm" "${SPLITS[@]}" --student-layers "$L" --epochs 3 \
      --out "$OUT/L$L" --overwrite
  fi
  "$KD" export "$OUT/L$L" --out "$OUT/L$L-onnx" --overwrite
  "$KD" package "$OUT/L$L-onnx" --out "$OUT/L$L-bundle" --overwrite
done
# the 3-layer student's fp32 file bundled too: its spans must be PyTorch's, sentence for sentence
L0=${LAYERS%% *}
"$KD" package "$OUT/L$L0-onnx" --model-file model.onnx --out "$OUT/L$L0-fp32-bundle" --overwrite
# and its int8 file as one onnx-e2e file (text in, entities out): its spans must be the python bundle's
"$KD" package "$OUT/L$L0-onnx" --format onnx-e2e --out "$OUT/L$L0-e2e-bundle" --overwrite
"$KD" export "$OUT/teacher-minilm" --out "$OUT/teacher-onnx" --overwrite
"$KD" package "$OUT/teacher-onnx" --out "$OUT/teacher-bundle" --overwrite
# a BiLSTM student over the teacher's tokenizer and embeddings (a tag per token)
if [ -z "${SKIP_DISTILL:-}" ]; then
  "$KD" distill --teacher "$OUT/teacher-minilm" "${SPLITS[@]}" --student bilstm --epochs 10 --out "$OUT/bilstm" \
    --overwrite
fi
"$KD" export "$OUT/bilstm" --out "$OUT/bilstm-onnx" --overwrite
"$KD" package "$OUT/bilstm-onnx" --out "$OUT/bilstm-bundle" --overwrite
"$PY" bench/ner_conll.py crf --out "$OUT/crf.crfsuite" | tee "$OUT/crf.json"
# spaCy's NER (not a kdeploy dependency): installed apart, e.g. pip install --target /work/spacylib spacy,
# then the packages .venv already has removed from there so .venv's own versions are the ones imported
SPACY=${SPACY:-/work/spacylib}
PYTHONPATH="$SPACY" "$PY" bench/ner_conll.py spacy --out "$OUT/spacy" | tee "$OUT/spacy.json"
systems=(teacher=torch:"$OUT/teacher-minilm" teacher-int8=bundle:"$OUT/teacher-bundle")
for L in $LAYERS; do systems+=(L$L-int8=bundle:"$OUT/L$L-bundle"); done
systems+=(bilstm-int8=bundle:"$OUT/bilstm-bundle" crf=crf:"$OUT/crf.crfsuite" spacy=spacy:"$OUT/spacy/model/model-best")
systems+=(L$L0-torch=torch:"$OUT/L$L0" L$L0-fp32=bundle:"$OUT/L$L0-fp32-bundle" L$L0-e2e=bundle:"$OUT/L$L0-e2e-bundle")
[ -n "${NO_REPORT:-}" ] && exit 0  # train and bundle now, measure later on a quiet machine
PYTHONPATH="$SPACY" "$PY" bench/ner_conll.py report --name ner_conll "${systems[@]}" --same-spans "L$L0-torch:L$L0-fp32" "L$L0-int8:L$L0-e2e"
