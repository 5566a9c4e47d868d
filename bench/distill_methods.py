"""Distillation methods side by side, over seeds, in one run: logits only, + hidden states,
+ attention, combinations with augmented text, teacher ensembles, unlabelled transfer.

    python bench/distill_methods.py --task sst2 --teacher runs/sst2/teacher \\
        --arms logits,hidden,attention --seeds 1 2 3 --name sst2_methods

Every finished run is appended to bench/results/NAME.json at once and the Markdown
summary rewritten, so a long sweep that is stopped keeps what it measured. Runs are
interleaved by seed (seed 1 of every arm, then seed 2, ...) so drift hits arms alike.
Needs ../shared/data/{sst2,sst5}.
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
SHARED = ROOT.parent / "shared" / "data"
LABELS = {"sst2": ["negative", "positive"],
          "sst5": ["very negative", "negative", "neutral", "positive", "very positive"]}

ARM_NOTES = {
    "hard": "hard labels only (α=0)",
    "logits": "logit KD only",
    "hidden": "+ hidden-state MSE",
    "attention": "+ attention KL",
    "hidden+attention": "+ both",
    "logits+aug": "logit KD on the data plus 1 augmented copy per sentence",
    "hidden+aug": "hidden-state MSE with augmentation",
    "unlabeled": "the training sentences with their labels unused (α=1)",
    "ensemble": "both teachers, equal weights",
    "second-teacher": "logit KD from the second teacher alone",
}

# name -> DistillConfig settings beyond the common ones (α=0.5, T=2, 2 layers, 3 epochs, lr 1e-4)
ARMS = {
    "hard": {"alpha": 0.0},
    "logits": {},
    "hidden": {"layer_losses": {"hidden": 1.0}},
    "attention": {"layer_losses": {"attention": 1.0}},
    "hidden+attention": {"layer_losses": {"hidden": 1.0, "attention": 1.0}},
    "logits+aug": {"augment": 1},
    "hidden+aug": {"layer_losses": {"hidden": 1.0}, "augment": 1},
    "attention+aug": {"layer_losses": {"attention": 1.0}, "augment": 1},
    "hidden+attention+aug": {"layer_losses": {"hidden": 1.0, "attention": 1.0}, "augment": 1},
    "unlabeled": {"alpha": 1.0},  # the training sentences with their labels unused: the teacher labels them
    "ensemble": {"ensemble": True},
    "second-teacher": {"second": True},  # logits only, from --second-teacher alone
}


def main() -> None:
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import DistillConfig, distill
    from kdeploy.distill.students import StudentConfig
    from kdeploy.distill.trainer import TrainConfig
    from kdeploy.environment import library_versions, machine

    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=sorted(LABELS), default="sst2")
    p.add_argument("--teacher", required=True)
    p.add_argument("--second-teacher", help="for the ensemble arm")
    p.add_argument("--arms", default="logits,hidden,attention")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--name", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from the saved JSON")
    a = p.parse_args()
    if a.render:
        write_markdown(json.loads((ROOT / "bench" / "results" / f"{a.name}.json").read_text()),
                       ROOT / "bench" / "results" / f"{a.name}.md")
        return
    folder = SHARED / a.task
    if not folder.exists():
        sys.exit(f"{folder} is absent")
    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    unknown = [x for x in arms if x not in ARMS]
    if unknown:
        sys.exit(f"unknown arm {unknown[0]}; known: {', '.join(ARMS)}")
    data = DataConfig(train=str(folder / "train.tsv"), validation=str(folder / "dev.tsv"),
                      test=str(folder / "test.tsv"), label_names=LABELS[a.task])
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{a.name}.json"
    state = json.loads(json_path.read_text()) if json_path.exists() else {"runs": []}
    command = " ".join(["python", *sys.argv])
    state["commands"] = [c for c in state.get("commands", [state.get("command")]) if c and c != command] + [command]
    state.update({"date": date.today().isoformat(), "command": command,
                  "machine": machine(), "versions": library_versions(), "task": a.task,
                  "teacher": a.teacher, "second_teacher": a.second_teacher,
                  "common": {"student_layers": 2, "alpha": 0.5, "temperature": 2.0, "epochs": a.epochs, "lr": a.lr}})
    done = {(r["arm"], r["seed"]) for r in state["runs"]}
    out_root = Path(a.out or ROOT / "runs" / a.task / "methods")
    for seed in a.seeds:
        for arm in arms:
            if (arm, seed) in done:
                continue
            settings = dict(ARMS[arm])
            teacher = [a.teacher, a.second_teacher] if settings.pop("ensemble", False) else a.teacher
            if settings.pop("second", False):
                teacher = a.second_teacher
            if (isinstance(teacher, list) or teacher is None) and not a.second_teacher:
                sys.exit(f"the {arm} arm needs --second-teacher")
            cfg = DistillConfig(teacher=teacher, out=str(out_root / f"{arm}-s{seed}"), data=data,
                                student=StudentConfig(layers=2),
                                train=TrainConfig(epochs=a.epochs, learning_rate=a.lr, seed=seed),
                                **{"alpha": 0.5, "temperature": 2.0, **settings})
            started = time.perf_counter()
            r = distill(cfg)
            run = {"arm": arm, "seed": seed, "test_accuracy": r["test"]["accuracy"],
                   "test_macro_f1": r["test"]["macro_f1"], "validation_accuracy": r["validation"]["accuracy"],
                   "teacher_test_accuracy": r["teacher"]["test"]["accuracy"],
                   "teachers_test_accuracy": [t["test"]["accuracy"] for t in r.get("teachers", [])],
                   "train_seconds": r["train_seconds"], "epoch_seconds": r["epoch_seconds"],
                   "teacher_features_seconds": r.get("teacher_features_seconds"),
                   "training_examples": r["training_examples"], "layer_map": r.get("layer_objective", {}).get("layer_map"),
                   "wall_seconds": round(time.perf_counter() - started, 1)}
            if json_path.exists():  # another process may be adding arms to the same file
                disk = json.loads(json_path.read_text())
                state["runs"] = disk["runs"]
                state["commands"] = list(dict.fromkeys(disk.get("commands", []) + state["commands"]))
            state["runs"].append(run)
            print(json.dumps(run), flush=True)
            json_path.write_text(json.dumps(state, indent=2))
            write_markdown(state, results / f"{a.name}.md")


def summarise(state: dict) -> dict:
    arms: dict[str, list] = {}
    for r in state["runs"]:
        arms.setdefault(r["arm"], []).append(r)
    out = {}
    for arm, runs in arms.items():
        accs = [r["test_accuracy"] for r in runs]
        out[arm] = {"n": len(accs), "mean": statistics.mean(accs),
                    "teacher_test_accuracy": statistics.mean(r["teacher_test_accuracy"] for r in runs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "runs": {r["seed"]: r["test_accuracy"] for r in runs},
                    "epoch_seconds": statistics.mean(s for r in runs for s in r["epoch_seconds"]),
                    "train_seconds": statistics.mean(r["train_seconds"] for r in runs)}
    return out


def write_markdown(state: dict, path: Path) -> None:
    summary = summarise(state)
    state["summary"] = summary
    base = summary.get("logits")
    v = state["versions"]
    lines = [f"# Distillation methods on {state['task'].upper()} ({state['date']})", "",
             *[f"`{c}`" for c in state.get("commands", [state["command"]])], "",
             f"Machine: {state['machine']['cpu']}, {state['machine']['cores']} cores; "
             + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers") if k in v), "",
             f"Teacher {state['teacher']}" + (f", second teacher {state['second_teacher']}"
                                               if state.get("second_teacher") else "")
             + f". Student: 2 layers copied from the teacher, α=0.5, T=2, {state['common']['epochs']:g} epochs, "
             f"lr {state['common']['lr']:g}; layer losses weight 1, uniform layer map; augmentation: 1 copy per "
             "sentence (mask/delete/swap). Arms: " + "; ".join(f"{a}: {ARM_NOTES[a]}" for a in summary if a in ARM_NOTES)
             + ".", "",
             "| arm | seeds | teacher test | test accuracy (mean ± std) | per seed | vs logits (points) | retention "
             "| epoch s | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm, s in summary.items():
        delta = f"{100 * (s['mean'] - base['mean']):+.2f}" if base and arm != "logits" else ""
        per_seed = ", ".join(f"{100 * x:.2f}" for x in s["runs"].values())
        lines.append(f"| {arm} | {s['n']} | {100 * s['teacher_test_accuracy']:.2f} | {100 * s['mean']:.2f} ± "
                     f"{100 * s['std']:.2f} | {per_seed} | {delta} | {100 * s['mean'] / s['teacher_test_accuracy']:.1f}% "
                     f"| {s['epoch_seconds']:.1f} | {s['train_seconds']:.0f} |")
    lines += ["", "Retention is against the arm's own teacher (the ensemble's is the mixture's accuracy). Epoch and "
              "train seconds were measured with two such runs sharing the 2 cores (one thread each): they show "
              "relative cost only roughly; the logits-only epoch cost is in distill_epoch_cost.md."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
