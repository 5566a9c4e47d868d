"""model2vec's classifier on the same splits kdeploy reads, 3 seeds (distilled once: distill is deterministic)."""
import json, sys
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from kdeploy.data import DataConfig, load_task_data
from kdeploy.runtime.baselines import FitContext, train_baseline
from pathlib import Path
from kdeploy.assets import minilm_dir
task = load_task_data(DataConfig(dataset="builtin:rotten_tomatoes"))
test_x = task.texts("test"); test_y = np.asarray(task.splits["test"]["label"])
out = {}
for seed in (1, 2, 3):
    proba, how, secs = train_baseline("model2vec", task, "validation", FitContext(Path(f"/tmp/kdeploy-m2v-{seed}"), seed, 2, str(minilm_dir())))
    acc = float((proba(test_x).argmax(1) == test_y).mean())
    out[seed] = acc
    print(seed, round(100 * acc, 2), how, round(secs, 1), flush=True)
print(json.dumps(out))
