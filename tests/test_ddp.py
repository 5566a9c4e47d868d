"""Data-parallel distillation: two CPU processes (gloo) under torchrun see different shards of
the training data and of the teacher pass, and the result is saved once."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.slow
def test_torchrun_two_processes(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "student"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "kdeploy", "distill", "--teacher", str(tiny_bert), "--train", str(toy_files["train"]),
           "--validation", str(toy_files["validation"]), "--epochs", "1", "--batch-size", "16",
           "--max-length", "32", "--augment", "2", "--out", str(out)]
    env = {**os.environ, "KDEPLOY_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "kdeploy.json").read_text())
    dp = record["data_parallel"]
    assert dp["world_size"] == 2 and dp["backend"] == "gloo"
    assert all(n > 0 for n in dp["examples_seen_per_rank"])
    assert sum(dp["examples_seen_per_rank"]) == 160 * 3  # together they covered the training set (and copies) once
    assert dp["examples_seen_by_every_rank"] == 0  # and no example was seen by both
    siblings = sorted(p.name for p in tmp_path.iterdir())
    assert siblings == ["cache", "student"]  # saved once: no temp or work folders left behind
    assert result.stdout.count("epoch 1/1: train loss") == 1  # one process reports (and saves), not both

    # the teacher pass was sharded, and its cache is the one a single process writes
    sharded = {p.name: p for p in (tmp_path / "cache/teacher-logits").glob("*.npy")}
    assert not [p for p in (tmp_path / "cache/teacher-logits").iterdir() if p.name.startswith(".")]
    assert {json.loads(p.with_suffix(".json").read_text())["processes"] for p in sharded.values()} == {2}
    from conftest import distill_settings
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import distill

    single = tmp_path.parent / (tmp_path.name + "-single")
    os.environ["KDEPLOY_CACHE"] = str(single / "cache")
    try:
        distill(distill_settings(train={"epochs": 1, "batch_size": 16}, augment=2), teacher=str(tiny_bert),
                data=DataConfig(train=str(toy_files["train"]), validation=str(toy_files["validation"])),
                out=single / "student")
    finally:
        os.environ.pop("KDEPLOY_CACHE")
    alone = {p.name: p for p in (single / "cache/teacher-logits").glob("*.npy")}
    assert set(alone) == set(sharded)  # same keys: same teacher, texts and max length
    for name in alone:
        np.testing.assert_allclose(np.load(sharded[name]), np.load(alone[name]), atol=1e-5)
