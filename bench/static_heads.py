"""The static student with model2vec's head (512 hidden, no dropout), with and without model2vec's
L2 normalisation of the pooled vector, 3 seeds each, on the demo task; then export each (int8):

    python bench/static_heads.py            # 512 hidden, dropout 0
    python bench/static_heads.py --normalize
    for s in 1 2 3; do kdeploy export OUT/rt-static512[n]-s$s --dataset builtin:rotten_tomatoes --out OUT/onnx-s$s; done

Results: bench/results/rt_static_vs_model2vec.md. Needs the demo teacher (make demo)."""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdeploy.configtools import settings_from  # noqa: E402
from kdeploy.data import DataConfig  # noqa: E402
from kdeploy.distill.api import distill  # noqa: E402
from kdeploy.distill.config import DistillSettings  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--normalize", action="store_true")
ap.add_argument("--out", default="/tmp/kdeploy-static-heads")
args = ap.parse_args()
for seed in (1, 2, 3):
    student = {"kind": "static", "embedding_dim": 256, "hidden_size": 512, "dropout": 0.0, "normalize": args.normalize}
    s = settings_from(DistillSettings, {"student": student, "augment": 2,
                                        "train": {"epochs": 3, "learning_rate": 1e-3, "seed": seed}})
    r = distill(s, teacher="runs/demo/teacher", data=DataConfig(dataset="builtin:rotten_tomatoes"),
                out=f"{args.out}/rt-static512{'n' if args.normalize else ''}-s{seed}")
    print(seed, json.dumps({"test": r.test.main, "validation": r.validation.main}), flush=True)
