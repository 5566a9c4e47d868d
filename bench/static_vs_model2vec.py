"""kdeploy's static student against model2vec's own classifier, from the same encoder
(all-MiniLM-L6-v2), on the same splits, over several seeds: issue 23's "a static student that
beats model2vec".

    python bench/static_vs_model2vec.py run --task sst2 --teacher runs/sst2_minilm3/teacher \\
        --arms default,lr1e-3,head512 --seeds 1,2,3,4,5
    python bench/static_vs_model2vec.py report --name static_vs_model2vec

Each arm is `kdeploy distill --student static` with the family's defaults (learning rate 3e-4,
until validation stops improving within 20 epochs, augmented copies by data size) plus the
arm's changes, then `kdeploy export` (calibrated int8, the shipped file). model2vec is
`model2vec.distill(encoder, pca_dims=256)` then `StaticModelForClassification.fit` (hard labels,
early stopping on the same validation split), through kdeploy's `model2vec` bench baseline.
Results accumulate in OUT/results.json (a finished arm × seed is not re-run). One job at a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = {  # name -> data
    "rt": {"dataset": "builtin:rotten_tomatoes"},
    "sst2": {"train": "../shared/data/sst2/train.tsv", "validation": "../shared/data/sst2/dev.tsv",
             "test": "../shared/data/sst2/test.tsv"},
    "sst5": {"train": "../shared/data/sst5/train.tsv", "validation": "../shared/data/sst5/dev.tsv",
             "test": "../shared/data/sst5/test.tsv"},
}
M2V_HEAD = {"hidden_size": 512, "dropout": 0.0}  # model2vec's classifier head: 512 hidden units, no dropout
LR1E3 = {"train": {"learning_rate": 1e-3}}  # model2vec's rate, the static family's default until 2026-12-06
ARMS = {  # name -> (student settings beyond kind: static, distill settings beyond the family's defaults)
    "default": ({}, {}),  # the family's defaults: 3e-4 until validation stops improving
    "lr1e-3": ({}, LR1E3),
    "head512": (M2V_HEAD, {}),
    "head512-lr1e-3": (M2V_HEAD, LR1E3),
    "m2v-lr1e-3": ({**M2V_HEAD, "token_weights": True}, LR1E3),  # model2vec's head, token weights and rate
    "weights": ({"token_weights": True}, {}),  # a learnt weight per token
    "fixed3": ({}, {"train": {"epochs": 3, "early_stopping": 0}}),  # the family's old default: 3 epochs
    "noaug": ({}, {"augment": 0}),
}


def _data(task: str):
    from kdeploy.data import DataConfig

    return DataConfig(**{k: str((ROOT / v).resolve()) if not v.startswith("builtin:") else v
                         for k, v in TASKS[task].items()})


def _static(args, arm: str, seed: int, out: Path) -> dict:
    from kdeploy.configtools import settings_from
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.export.files import INT8

    student, extra = ARMS[arm]
    given = {**extra, "student": {"kind": "static", **student}}
    given["train"] = {**given.get("train", {}), "seed": seed}
    settings = settings_from(DistillSettings, given)
    started = time.perf_counter()
    result = distill(settings, teacher=args.teacher, data=_data(args.task), out=out / "student", overwrite=True)
    report = export(ExportSettings(), out / "student", out / "onnx", data=_data(args.task), overwrite=True)
    int8 = report.entry(INT8)
    return {"arm": arm, "seed": seed, "fp32": result.test.main, "int8": int8.scores.main,
            "validation": result.validation.main, "epochs": len(result.epochs),
            "best_checkpoint": result.best_checkpoint, "still_improving": result.still_improving,
            "training_examples": result.training_examples,
            "train_seconds": result.train_seconds, "wall_seconds": round(time.perf_counter() - started, 1),
            "teacher_test": result.teacher.test.main if result.teacher and result.teacher.test else None,
            "settings": {"learning_rate": settings.train.learning_rate, "epochs": settings.train.epochs,
                         "early_stopping": settings.train.early_stopping, "augment": settings.augment,
                         "hidden_size": settings.student.hidden_size, "dropout": settings.student.dropout}}


def _model2vec(args, seed: int, out: Path) -> dict:
    import numpy as np

    from kdeploy.assets import minilm_dir
    from kdeploy.data import load_task_data
    from kdeploy.runtime.baselines import FitContext, train_baseline

    task = load_task_data(_data(args.task))
    fitted, seconds = train_baseline("model2vec", task, "validation", FitContext(out, seed, 2, str(minilm_dir())))
    y = np.asarray(task.splits["test"]["label"])
    return {"arm": "model2vec", "seed": seed, "fp32": float((fitted.proba(task.texts("test")).argmax(1) == y).mean()),
            "how": fitted.how, "train_seconds": round(seconds, 1)}


def run(args) -> None:
    out = Path(args.out) / args.task
    state_path = out / "results.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"task": args.task, "runs": []}
    state["teacher"] = args.teacher
    done = {(r["arm"], r["seed"]) for r in state["runs"]}
    arms = args.arms.split(",") + (["model2vec"] if args.model2vec else [])
    for arm in arms:
        for seed in (int(s) for s in args.seeds.split(",")):
            if (arm, seed) in done:
                continue
            folder = out / f"{arm}-s{seed}"
            row = _model2vec(args, seed, folder) if arm == "model2vec" else _static(args, arm, seed, folder)
            state["runs"].append(row)
            out.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(state, indent=1))
            print(json.dumps(row), flush=True)


def _summary(values: list[float]) -> str:
    pct = [100 * v for v in values]
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f}" if len(pct) > 1 else f"{pct[0]:.2f}"


def report(args) -> None:
    lines = []
    for task in args.tasks.split(","):
        path = Path(args.out) / task / "results.json"
        if not path.exists():
            continue
        state = json.loads(path.read_text())
        lines += [f"## {task} (teacher `{state['teacher']}`)", "",
                  "| arm | learning rate | seeds | per seed (test %, fp32 / int8) | fp32 mean ± sd | "
                  "int8 mean ± sd (shipped) | validation mean | train s |",
                  "|---|---|---|---|---|---|---|---|"]
        arms = dict.fromkeys(["default", "model2vec"] + [r["arm"] for r in state["runs"]])
        for arm in (a for a in arms if any(r["arm"] == a for r in state["runs"])):
            rows = sorted((r for r in state["runs"] if r["arm"] == arm), key=lambda r: r["seed"])
            per_seed = ", ".join(f"{100 * r['fp32']:.2f}" + (f" / {100 * r['int8']:.2f}" if "int8" in r else "")
                                 for r in rows)
            int8 = _summary([r["int8"] for r in rows]) if all("int8" in r for r in rows) else "-"
            rate = rows[0].get("settings", {}).get("learning_rate")
            validation = [100 * r["validation"] for r in rows if "validation" in r]
            lines.append(f"| {arm} | {rate or '-'} | {len(rows)} | {per_seed} | {_summary([r['fp32'] for r in rows])} | "
                         f"{int8} | {f'{statistics.mean(validation):.2f}' if validation else '-'} | "
                         f"{statistics.mean(r['train_seconds'] for r in rows):.0f} |")
        lines.append("")
    Path(args.md).write_text("\n".join(lines) + "\n") if args.md else print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--task", choices=sorted(TASKS), required=True)
    r.add_argument("--teacher", required=True)
    r.add_argument("--arms", default="default")
    r.add_argument("--seeds", default="1,2,3")
    r.add_argument("--no-model2vec", dest="model2vec", action="store_false")
    r.add_argument("--out", default="/tmp/static-vs-m2v")
    p = sub.add_parser("report")
    p.add_argument("--tasks", default="rt,sst2,sst5")
    p.add_argument("--out", default="/tmp/static-vs-m2v")
    p.add_argument("--md", default=None)
    args = ap.parse_args()
    (run if args.cmd == "run" else report)(args)


if __name__ == "__main__":
    main()
