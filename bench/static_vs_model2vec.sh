#!/usr/bin/env bash
# kdeploy's static student (3 seeds, int8) on the demo task; then bench/model2vec_seeds.py for model2vec.
# Needs the demo teacher (make demo). Results: bench/results/rt_static_vs_model2vec.md
set -e
cd "$(dirname "$0")/.."
for s in 1 2 3; do
  .venv/bin/kdeploy distill --teacher runs/demo/teacher --dataset builtin:rotten_tomatoes --student static \
    --embedding-dim 256 --hidden-size 256 --augment 2 --epochs 3 --lr 1e-3 --seed $s --out ${OUT:-/tmp/kdeploy-static-vs-m2v}/rt-static-s$s 2>&1 | tail -3
  .venv/bin/kdeploy export ${OUT:-/tmp/kdeploy-static-vs-m2v}/rt-static-s$s --dataset builtin:rotten_tomatoes --out ${OUT:-/tmp/kdeploy-static-vs-m2v}/rt-static-onnx-s$s 2>&1 | grep -E "int8|error" | head -3
done
echo DISTILLED
