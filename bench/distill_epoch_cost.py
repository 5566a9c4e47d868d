"""Cost of a distillation epoch (cached teacher logits) relative to a hard-label epoch of the
same student, interleaved in one run on a quiet machine.

    python bench/distill_epoch_cost.py --teacher runs/sst2/teacher --repeats 2

Writes bench/results/distill_epoch_cost.{json,md}. Needs ../shared/data/sst2.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings, TrainConfig
    from kdeploy.environment import library_versions, machine

    p = argparse.ArgumentParser()
    p.add_argument("--teacher", default=str(ROOT / "runs/sst2/teacher"))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "runs/sst2/epoch_cost"))
    a = p.parse_args()
    data = DataConfig(train=str(SST2 / "train.tsv"), validation=str(SST2 / "dev.tsv"), label_names=["negative", "positive"])
    rows = []
    for r in range(a.repeats):
        for alpha in (0.0, 0.5):
            rec = distill(DistillSettings(alpha=alpha, train=TrainConfig(epochs=1, learning_rate=1e-4, seed=1)),
                          teacher=a.teacher, data=data, out=f"{a.out}/a{alpha}-r{r}", overwrite=True)
            rows.append({"alpha": alpha, "epoch_seconds": rec.epoch_seconds[0],
                         "teacher_logits_cached": rec.teacher_logits_cached["train"]})
            print(json.dumps(rows[-1]), flush=True)
    hard = statistics.mean(r["epoch_seconds"] for r in rows if r["alpha"] == 0.0)
    kd = statistics.mean(r["epoch_seconds"] for r in rows if r["alpha"] == 0.5)
    result = {"date": date.today().isoformat(), "command": " ".join(["python", *sys.argv]), "machine": machine(),
              "versions": library_versions(), "rows": rows, "hard_epoch_seconds": hard, "kd_epoch_seconds": kd,
              "ratio": kd / hard}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_epoch_cost.json").write_text(json.dumps(result, indent=2))
    md = [f"# Distillation epoch cost ({result['date']})", "", f"`{result['command']}`", "",
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
          "SST-2 train (6,920 sentences), 2-layer MiniLM student, batch 32, one epoch each, interleaved "
          f"hard/KD × {a.repeats}; the teacher's logits come from the on-disk cache.", "",
          "| run | α | epoch s | teacher logits cached |", "|---|---|---|---|",
          *[f"| {i + 1} | {r['alpha']} | {r['epoch_seconds']:.1f} | {r['teacher_logits_cached']} |" for i, r in enumerate(rows)],
          "", f"**KD epoch / hard-label epoch: {result['ratio']:.3f}** (mean {kd:.1f} s vs {hard:.1f} s)", ""]
    (out / "distill_epoch_cost.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
