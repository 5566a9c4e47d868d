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
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABELS = {"sst2": ["negative", "positive"],
          "sst5": ["very negative", "negative", "neutral", "positive", "very positive"]}

# Named arms; any arm is also a "+"-joined list of tokens (see parse_arm), e.g. "aug4+T4+e5".
NAMED = {
    "hard": {"alpha": 0.0},
    "unlabeled": {"alpha": 1.0},  # the training sentences with their labels unused: the teacher labels them
    "ensemble": {"ensemble": True},  # both teachers, equal weights
    "second-teacher": {"second": True},  # logits only, from --second-teacher alone
}
TOKEN_NOTES = {"logits": "logit KD", "hidden": "hidden-state MSE", "attention": "attention KL",
               "aug": "augmented copies per sentence", "T": "temperature", "a": "α", "e": "epochs",
               "lr": "learning rate", "hard": "hard labels only (α=0)",
               "unlabeled": "the training sentences with their labels unused (α=1)",
               "ensemble": "both teachers, equal weights", "second-teacher": "logit KD from the second teacher alone"}


def parse_arm(arm: str) -> dict:
    """"logits", "hidden", "attention0.1", "aug", "aug4", "T4", "a0.9", "e5", "lr2e-4", joined by "+";
    settings beyond the common ones (α=0.5, T=2, 2 layers, 3 epochs, lr 1e-4)."""
    import re

    settings: dict = {}
    for token in arm.split("+"):
        if token in NAMED:
            settings.update(NAMED[token])
            continue
        m = re.fullmatch(r"(logits|hidden|attention|aug|T|a|e|lr)([0-9.eE-]*)", token)
        if not m:
            raise ValueError(f"unknown arm token {token!r} in {arm!r}")
        key, value = m.group(1), m.group(2)
        if key == "logits":
            continue
        if key in ("hidden", "attention"):
            settings.setdefault("layer_losses", {})[key] = float(value or 1)
        elif key == "aug":
            settings["augment"] = int(value or 1)
        else:
            if not value:
                raise ValueError(f"{token!r} needs a value")
            settings[{"T": "temperature", "a": "alpha", "e": "epochs", "lr": "lr"}[key]] = float(value)
    return settings


def main() -> None:
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
    p.add_argument("--data-root", default=str(SHARED), help="folder holding sst2/ and sst5/")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (a GPU has room)")
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from the saved JSON")
    a = p.parse_args()
    results = ROOT / "bench" / "results"
    if a.render:
        write_markdown(json.loads((results / f"{a.name}.json").read_text()), results / f"{a.name}.md")
        return
    folder = Path(a.data_root) / a.task
    if not folder.exists():
        sys.exit(f"{folder} is absent")
    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    try:
        for arm in arms:
            parse_arm(arm)
    except ValueError as exc:
        sys.exit(str(exc))
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{a.name}.json"
    command = " ".join(["python", *sys.argv])
    header = {"date": date.today().isoformat(), "machine": machine(), "versions": library_versions(),
              "task": a.task, "teacher": a.teacher, "second_teacher": a.second_teacher,
              "common": {"student_layers": 2, "alpha": 0.5, "temperature": 2.0, "epochs": a.epochs, "lr": a.lr}}
    with _locked(json_path) as state:
        done = {(r["arm"], r["seed"]) for r in state["runs"]}
        if not os.environ.get("KDEPLOY_BENCH_CHILD"):  # a child of --jobs runs adds its run only
            state["commands"] = [c for c in state.get("commands", [state.get("command")]) if c and c != command] + [command]
            state.update({**header, "command": command})
    todo = [(arm, seed) for seed in a.seeds for arm in arms if (arm, seed) not in done]  # interleaved by seed
    out_root = Path(a.out or ROOT / "runs" / a.task / "methods")
    if a.jobs > 1:
        _run_parallel(a, todo, a.jobs, out_root)
    else:
        for arm, seed in todo:
            run = _run_one(a, folder, arm, seed, out_root)
            with _locked(json_path) as state:
                state["runs"].append(run)
                for k, v in header.items():
                    state.setdefault(k, v)
                print(json.dumps(run), flush=True)
    state = json.loads(json_path.read_text())
    write_markdown(state, results / f"{a.name}.md")


def _run_one(a, folder: Path, arm: str, seed: int, out_root: Path) -> dict:
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings, StudentConfig, TrainConfig

    data = DataConfig(train=str(folder / "train.tsv"), validation=str(folder / "dev.tsv"),
                      test=str(folder / "test.tsv"), label_names=LABELS[a.task])
    settings = parse_arm(arm)
    teacher = [a.teacher, a.second_teacher] if settings.pop("ensemble", False) else a.teacher
    if settings.pop("second", False):
        teacher = a.second_teacher
    if (isinstance(teacher, list) or teacher is None) and not a.second_teacher:
        sys.exit(f"the {arm} arm needs --second-teacher")
    epochs, lr = settings.pop("epochs", a.epochs), settings.pop("lr", a.lr)
    unlabeled = settings.pop("unlabeled", None)
    cfg = DistillSettings(student=StudentConfig(layers=2), train=TrainConfig(epochs=epochs, learning_rate=lr, seed=seed),
                          **{"alpha": 0.5, "temperature": 2.0, **settings})
    started = time.perf_counter()
    r = distill(cfg, teacher=teacher, data=data, out=out_root / f"{arm}-s{seed}", unlabeled=unlabeled,
                overwrite=True).to_dict()
    return {"arm": arm, "seed": seed, "test_accuracy": r["test"]["metrics"]["accuracy"],
            "test_macro_f1": r["test"]["metrics"]["macro_f1"], "validation_accuracy": r["validation"]["metrics"]["accuracy"],
            "teacher_test_accuracy": r["teacher"]["test"]["metrics"]["accuracy"],
            "teachers_test_accuracy": [t["test"]["metrics"]["accuracy"] for t in r.get("teachers", [])],
            "train_seconds": r["train_seconds"], "epoch_seconds": r["epoch_seconds"],
            "teacher_features_seconds": r.get("timings", {}).get("teacher_features_seconds"),
            "training_examples": r["training_examples"], "layer_map": r.get("layer_objective", {}).get("layer_map"),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def _run_parallel(args, todo: list, jobs: int, out_root: Path) -> None:
    """Each run in its own process (this script, one arm and seed), `jobs` at a time; logs beside the runs."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    out_root.mkdir(parents=True, exist_ok=True)
    common = ["--task", args.task, "--teacher", args.teacher, "--epochs", str(args.epochs), "--lr", str(args.lr),
              "--name", args.name, "--out", str(out_root), "--data-root", args.data_root]
    if args.second_teacher:
        common += ["--second-teacher", args.second_teacher]

    def launch(item):
        arm, seed = item
        with open(out_root / f"{arm}-s{seed}.log", "w") as log:
            rc = subprocess.call([sys.executable, __file__, *common, "--arms", arm, "--seeds", str(seed)],
                                 stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KDEPLOY_BENCH_CHILD": "1"})
        print(f"{arm} seed {seed}: {'done' if rc == 0 else f'failed (rc {rc}), see its log'}", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(launch, todo))


class _locked:
    """Read-modify-write of the results file under an exclusive lock (parallel runs share it)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> dict:
        import fcntl

        self.lock = open(self.path.with_suffix(".lock"), "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.state = json.loads(self.path.read_text()) if self.path.exists() else {"runs": []}
        return self.state

    def __exit__(self, *exc) -> None:
        if not exc[0]:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=2))
            os.replace(tmp, self.path)
        self.lock.close()


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
             f"Machine: {state['machine']['cpu']}, {state['machine']['cores']} cores"
             + (f", GPU {state['machine']['gpu']} (fp16 mixed precision)" if state['machine'].get('gpu') else "") + "; "
             + ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers") if k in v), "",
             f"Teacher {state['teacher']}" + (f", second teacher {state['second_teacher']}"
                                               if state.get("second_teacher") else "")
             + f". Student: 2 layers copied from the teacher, α=0.5, T=2, {state['common']['epochs']:g} epochs, "
             f"lr {state['common']['lr']:g}, unless the arm says otherwise. Arm tokens, joined by '+': "
             + "; ".join(f"{k}: {v}" for k, v in TOKEN_NOTES.items())
             + " (a number after hidden/attention is the layer loss's weight, default 1, uniform layer map; "
             "after aug, the copies per sentence made by masking, deleting or swapping words, default 1).", "",
             *[note + "\n" for note in state.get("notes", [])],
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
              "train seconds depend on how many runs shared the machine (the command's --jobs; the CPU tables ran two "
              "runs on the 2 cores, one thread each): they show relative cost only roughly; the logits-only epoch "
              "cost is in distill_epoch_cost.md."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
