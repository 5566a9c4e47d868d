"""SST-2: teacher vs hard-label student vs distilled student, over seeds, in one run.

Also gives the cost of a distillation epoch (cached teacher logits) relative to a
hard-label epoch of the same student, from the same interleaved run.

    python bench/sst2_distill.py --teacher runs/sst2/teacher --seeds 1 2 3

Writes bench/results/sst2_distill.{json,md}. Needs ../shared/data/sst2.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings, StudentConfig, TrainConfig
    from kdeploy.environment import library_versions, machine

    p = argparse.ArgumentParser()
    p.add_argument("--teacher", default=str(ROOT / "runs/sst2/teacher"))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--layers", default="2")
    p.add_argument("--out", default=str(ROOT / "runs/sst2/bench"))
    p.add_argument("--name", default="sst2_distill")
    p.add_argument("--kd-only", action="store_true", help="skip the hard-label arm (for comparing KD settings)")
    a = p.parse_args()
    if not SST2.exists():
        sys.exit(f"{SST2} is absent")
    data = DataConfig(train=str(SST2 / "train.tsv"), validation=str(SST2 / "dev.tsv"), test=str(SST2 / "test.tsv"),
                      label_names=["negative", "positive"])
    teacher_record = json.loads((Path(a.teacher) / "kdeploy.json").read_text())
    runs = []
    started = time.perf_counter()
    for seed in a.seeds:
        for alpha in ((a.alpha,) if a.kd_only else (0.0, a.alpha)):  # interleaved: drift hits both arms alike
            cfg = DistillSettings(student=StudentConfig(layers=a.layers), alpha=alpha, temperature=a.temperature,
                                  train=TrainConfig(epochs=a.epochs, learning_rate=a.lr, seed=seed))
            r = distill(cfg, teacher=a.teacher, data=data, out=f"{a.out}/{a.name}-a{alpha}-s{seed}",
                        overwrite=True).to_dict()
            r["teacher_logits_seconds"] = r["timings"]["teacher_logits_seconds"]
            runs.append({"seed": seed, "alpha": alpha, "test_accuracy": r["test"]["metrics"]["accuracy"],
                         "validation_accuracy": r["validation"]["metrics"]["accuracy"], "train_seconds": r["train_seconds"],
                         "epoch_seconds": r["epoch_seconds"], "teacher_logits_seconds": r["teacher_logits_seconds"],
                         "teacher_test_accuracy": r["teacher"]["test"]["metrics"]["accuracy"]})
            print(json.dumps(runs[-1]), flush=True)

    def summary(alpha):
        accs = [r["test_accuracy"] for r in runs if r["alpha"] == alpha]
        secs = [s for r in runs if r["alpha"] == alpha for s in r["epoch_seconds"]]
        return {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "runs": accs, "epoch_seconds_mean": statistics.mean(secs),
                "train_seconds_mean": statistics.mean(r["train_seconds"] for r in runs if r["alpha"] == alpha)}

    if a.kd_only:
        print(json.dumps({"name": a.name, "kd": summary(a.alpha)}))
        return
    hard, kd = summary(0.0), summary(a.alpha)
    teacher_acc = teacher_record["test"]["metrics"]["accuracy"]
    result = {
        "date": date.today().isoformat(), "command": " ".join(["python", *sys.argv]),
        "machine": machine(), "versions": library_versions(),
        "teacher": {"test_accuracy": teacher_acc, "train_seconds": teacher_record["train_seconds"],
                    "epochs": teacher_record["config"]["train"]["epochs"]},
        "student": {"layers": a.layers, "epochs": a.epochs, "lr": a.lr, "alpha": a.alpha, "temperature": a.temperature},
        "hard_label": hard, "distilled": kd,
        "retention_of_teacher": kd["mean"] / teacher_acc,
        "kd_minus_hard_points": 100 * (kd["mean"] - hard["mean"]),
        "distill_epoch_cost_ratio": kd["epoch_seconds_mean"] / hard["epoch_seconds_mean"],
        "total_seconds": time.perf_counter() - started, "runs": runs,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(result, indent=2))
    pct = lambda s: f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
    md = [f"# SST-2 distillation ({result['date']})", "", f"`{result['command']}`", "",
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
          "| model | test accuracy (mean ± std over seeds) | train s (mean) | epoch s (mean) |", "|---|---|---|---|",
          f"| teacher (MiniLM-L6, fine-tuned {result['teacher']['epochs']:g} epochs) | {100 * teacher_acc:.2f} | {result['teacher']['train_seconds']:.0f} | |",
          f"| {a.layers}-layer student, hard labels (α=0) | {pct(hard)} | {hard['train_seconds_mean']:.0f} | {hard['epoch_seconds_mean']:.1f} |",
          f"| {a.layers}-layer student, KD (α={a.alpha}, T={a.temperature:g}) | {pct(kd)} | {kd['train_seconds_mean']:.0f} | {kd['epoch_seconds_mean']:.1f} |",
          "", f"- seeds: {a.seeds}; per-seed test accuracy hard {[round(100 * x, 2) for x in hard['runs']]}, "
          f"KD {[round(100 * x, 2) for x in kd['runs']]}",
          f"- retention (KD student / teacher): {100 * result['retention_of_teacher']:.1f}%",
          f"- KD − hard: {result['kd_minus_hard_points']:+.2f} points",
          f"- distillation epoch cost / hard-label epoch cost (cached teacher logits): {result['distill_epoch_cost_ratio']:.3f}",
          ""]
    (out / f"{a.name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
