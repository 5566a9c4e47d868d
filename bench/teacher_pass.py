"""The teacher pass sharded across the processes of one launch: logits for N transfer texts
with 1 process (2 threads) and with 2 processes (1 thread each) under torchrun, the same
cache entry either way.

    python bench/teacher_pass.py --teacher runs/demo/teacher --texts 50000 --name teacher_pass

Texts: the demo's Rotten Tomatoes training sentences plus augmented copies (as `--augment`
makes them) up to N. Writes bench/results/NAME.{json,md}. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import os, sys, json, time
from pathlib import Path
import torch
from kdeploy.distill.logits_cache import Shard, cached_teacher_logits, cache_key
from kdeploy.modelio.loading import load_classifier, load_tokenizer, model_fingerprint
from kdeploy.data import text_fingerprint
teacher, texts_file, cache = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    torch.distributed.init_process_group("gloo")
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
texts = json.loads(Path(texts_file).read_text())
model, tok = load_classifier(teacher).eval(), load_tokenizer(teacher)
key = cache_key(model_fingerprint(model), text_fingerprint(texts), 128)
shard = Shard.current()
shard.barrier()
t = time.perf_counter()
logits, hit = cached_teacher_logits(model, tok, texts, key, 128, cache, shard)
shard.barrier()
if shard.rank == 0:
    print(json.dumps({"seconds": time.perf_counter() - t, "key": key, "cached": hit}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default=str(ROOT / "runs/demo/teacher"))
    ap.add_argument("--texts", type=int, default=50000)
    ap.add_argument("--name", default="teacher_pass")
    args = ap.parse_args()
    import numpy as np

    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.distill.augment import augment_texts
    from kdeploy.environment import library_versions, machine

    train = list(load_task_data(DataConfig(dataset="builtin:rotten_tomatoes")).splits["train"]["text"])
    texts = (train + augment_texts(train, max(1, args.texts // len(train)), seed=0))[:args.texts]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "texts.json").write_text(json.dumps(texts))
        (tmp / "worker.py").write_text(WORKER)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        for label, cmd, threads in (
                ("1 process x 2 threads", [sys.executable, str(tmp / "worker.py")], "2"),
                ("2 processes x 1 thread (torchrun)", [sys.executable, "-m", "torch.distributed.run",
                                                       "--nproc_per_node", "2", "--master_port", "29533",
                                                       str(tmp / "worker.py")], "1")):
            cache = tmp / label.split()[0]
            out = subprocess.run([*cmd, args.teacher, str(tmp / "texts.json"), str(cache)], capture_output=True,
                                 text=True, env={**env, "THREADS": threads, "OMP_NUM_THREADS": threads}, check=True)
            runs[label] = json.loads(out.stdout.strip().splitlines()[-1])
            runs[label]["texts_per_second"] = len(texts) / runs[label]["seconds"]
            runs[label]["logits"] = cache / "teacher-logits" / f"{runs[label]['key']}.npy"
        a, b = (np.load(r["logits"]) for r in runs.values())
        diff = float(np.abs(a - b).max())
        same_argmax = float((a.argmax(-1) == b.argmax(-1)).mean())
    for r in runs.values():
        r.pop("logits")
    result = {"texts": len(texts), "teacher": args.teacher, "runs": runs, "max_abs_logit_difference": diff,
              "argmax_agreement": same_argmax, "machine": machine(), "versions": library_versions()}
    res = ROOT / "bench" / "results"
    (res / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# The teacher pass, sharded across the processes of one launch", "",
             f"Command: `python bench/teacher_pass.py --teacher {args.teacher} --texts {args.texts} --name {args.name}` "
             "(nothing else running)",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; torch "
             f"{result['versions'].get('torch')}.", "",
             f"{len(texts):,} texts (Rotten Tomatoes training sentences and augmented copies), max length 128.", "",
             "| launch | seconds | texts/s |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.1f} | {v['texts_per_second']:.0f} |" for k, v in runs.items()]
    lines += ["", f"The two caches agree: max |Δlogit| {diff:.2e}, argmax agreement {100 * same_argmax:.2f}% "
                  "(batches differ in composition, so the float sums differ in their last bits).", ""]
    (res / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
