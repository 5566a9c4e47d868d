"""Issue 44's before/after: the default pipeline on every task the project has, with the student's
depth fixed at 2 (the old default) and chosen by the depth probe (the new default), each judged by
its retention verdict (validation) and its test score.

    python bench/depth_defaults.py train [--tasks demo,sst2,...] [--arms fixed2,auto] [--dry-run]
    python bench/depth_defaults.py report --name depth_defaults

`train` runs each (task, arm) through kdeploy's runner: the task's own recipe (models/, the
demo's from kdeploy/recipes/) with its finetune stage when no teacher is there yet, then distill
with `student.layers` set by the arm and nothing else changed; a finished stage is skipped by its
content digest and an interrupted one resumes, so the hours this takes can be split across
sessions (runs/depth_defaults/runs.json is appended). `report` writes bench/results/NAME.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = ROOT / "runs" / "depth_defaults"
TASKS = {"demo": ROOT / "kdeploy/recipes/rotten_tomatoes_minilm.yaml", "sst2": ROOT / "models/sst2_minilm.yaml",
         "sick_entailment": ROOT / "models/sick_entailment.yaml",
         "sick_relatedness": ROOT / "models/sick_relatedness.yaml", "bbc": ROOT / "models/bbc_minilm.yaml",
         "goemotions": ROOT / "models/goemotions_minilm.yaml"}
ARMS = {"fixed2": 2, "auto": "auto"}


def _raw(task: str) -> dict:
    from kdeploy.pipeline.recipe import load_recipe

    raw = load_recipe(TASKS[task]).to_dict()
    return {k: v for k, v in raw.items() if k not in ("prune", "export", "bench", "package")}


def teacher_of(task: str, dry_run: bool) -> Path:
    """The task's teacher, fine-tuned once by its recipe's finetune stage (both arms share it)."""
    from kdeploy.pipeline import run_recipe
    from kdeploy.pipeline.recipe import recipe_from_dict

    raw = {k: v for k, v in _raw(task).items() if k != "distill"}
    raw["name"] = f"{task}-teacher"
    folder = RUNS / task / "teacher-run"
    run_recipe(recipe_from_dict(raw, f"{task} (teacher)", default_name=raw["name"]), folder, dry_run=dry_run)
    return folder / "teacher"


def recipe_of(task: str, arm: str, teacher: Path):
    """The task's distill stage from that teacher, the student's depth set by the arm."""
    from kdeploy.pipeline.recipe import recipe_from_dict

    raw = {k: v for k, v in _raw(task).items() if k != "finetune"}
    raw["name"] = f"{task}-{arm}"
    raw["distill"]["teacher"] = str(teacher)
    raw["distill"]["student"] = {**raw["distill"].get("student", {}), "kind": "layers", "layers": ARMS[arm]}
    return recipe_from_dict(raw, f"{task} ({arm})", default_name=raw["name"])


def train(args) -> None:
    from kdeploy.pipeline import run_recipe

    state_path = RUNS / "runs.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"runs": []}
    for task in args.tasks.split(","):
        teacher = teacher_of(task, args.dry_run)
        for arm in args.arms.split(","):
            folder, started = RUNS / task / arm, time.perf_counter()
            if args.dry_run:
                print(f"{task} {arm}: distill from {teacher} into {folder} (student layers {ARMS[arm]})")
                continue
            run = run_recipe(recipe_of(task, arm, teacher), folder)
            s = run.results["distill"]
            row = {"task": task, "arm": arm, "depth": len(s.model.get("teacher_layers", [])),
                   "metric": s.test.metric, "student_test": s.test.main, "teacher_test": s.teacher.test.main,
                   "retention": s.retention.line() if s.retention else None,
                   "learned": s.retention.learned if s.retention else None,
                   "passed": s.retention.passed if s.retention else None,
                   "trivial": s.retention.trivial if s.retention else None,
                   "depth_probe": s.depth_probe, "train_seconds": s.train_seconds,
                   "wall_seconds": round(time.perf_counter() - started, 1)}
            state["runs"] = [r for r in state["runs"] if (r["task"], r["arm"]) != (task, arm)] + [row]
            RUNS.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(state, indent=1))
            print(json.dumps(row), flush=True)


def report(args) -> None:
    from kdeploy.environment import library_versions, machine
    from kdeploy.metrics import shown

    state = json.loads((RUNS / "runs.json").read_text())
    lines = ["# The student's depth: fixed at 2 (before) vs probed (after), on every task", "",
             f"Machine: {machine()}. Nothing else ran on the 2 cores (run it so). Command: `python bench/depth_defaults.py train && python "
             f"bench/depth_defaults.py report --name {args.name}`.", "",
             "| task | arm | depth | test (student / teacher) | learned share of the teacher's gain | verdict | "
             "probe s | train s |", "|" + "---|" * 8]
    for r in sorted(state["runs"], key=lambda r: (r["task"], r["arm"])):
        probe = (r.get("depth_probe") or {}).get("seconds")
        learned = "-" if r["learned"] is None else f"{100 * r['learned']:.0f}%"
        lines.append(f"| {r['task']} | {r['arm']} | {r['depth']} | {shown(r['metric'], r['student_test'])} / "
                     f"{shown(r['metric'], r['teacher_test'])} | {learned} | "
                     f"{'pass' if r['passed'] else 'BELOW FLOOR'} | {probe if probe is not None else '-'} | "
                     f"{r['train_seconds']:.0f} |")
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}.json").write_text(json.dumps({"machine": machine(), "versions": library_versions(),
                                                        **state}, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--tasks", default=",".join(TASKS))
    t.add_argument("--arms", default=",".join(ARMS))
    t.add_argument("--dry-run", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("--name", default="depth_defaults")
    args = ap.parse_args()
    train(args) if args.command == "train" else report(args)


if __name__ == "__main__":
    main()
