"""Data-parallel distillation: two CPU processes (gloo) under torchrun see different shards,
and the result is saved once."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_processes(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "student"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "kdeploy", "distill", "--teacher", str(tiny_bert), "--train", str(toy_files["train"]),
           "--validation", str(toy_files["validation"]), "--epochs", "1", "--batch-size", "16",
           "--max-length", "32", "--out", str(out)]
    env = {**os.environ, "KDEPLOY_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "kdeploy.json").read_text())
    dp = record["data_parallel"]
    assert dp["world_size"] == 2 and dp["backend"] == "gloo"
    assert all(n > 0 for n in dp["examples_seen_per_rank"])
    assert sum(dp["examples_seen_per_rank"]) == 160  # together they covered the training set once
    assert dp["examples_seen_by_every_rank"] == 0  # and no example was seen by both
    siblings = sorted(p.name for p in tmp_path.iterdir())
    assert siblings == ["cache", "student"]  # saved once: no temp or work folders left behind
    assert result.stdout.count("student → ") <= 1 and result.stdout.count("distill → ") == 1
