"""The ladder of students on one task, over seeds: a transformer pruned in depth and width, a
BiLSTM, a CNN and a static-embedding student, each distilled from the same teacher with its
family's one recipe (models/, named in kdeploy.distill.families; no per-task tuning), exported
to int8 ONNX and scored on the test split.

    python bench/ladder.py train --task sst2 --teacher runs/sst2/teacher --seeds 1,2,3 [--dry-run]
    python bench/ladder.py time --task sst2 --teacher runs/sst2/teacher     # on a quiet machine
    python bench/ladder.py report --task sst2 --teacher runs/sst2/teacher --name sst2_ladder

`train` runs each (family, seed) as a recipe through kdeploy's runner (`kdeploy.pipeline`), so a
finished or unchanged stage is skipped by its content digest and an interrupted one resumes;
each finished run's figures go to runs/ladder/TASK/runs.json. `time` benchmarks the teacher
(PyTorch fp32) and each family's seed-1 int8 file in one interleaved run (kdeploy bench);
`report` writes bench/results/NAME.{json,md}. What this script adds is only the table.
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
SHARED = ROOT.parent / "shared" / "data"
LABELS = {"sst2": ["negative", "positive"],
          "sst5": ["very negative", "negative", "neutral", "positive", "very positive"]}

from kdeploy.distill.families import FAMILIES  # noqa: E402
from kdeploy.export.files import INT8  # noqa: E402


def data_of(task: str):
    from kdeploy.data import DataConfig

    folder = SHARED / task
    if not (folder / "train.tsv").is_file():
        raise SystemExit(f"{folder} is absent: nothing to measure")
    return DataConfig(train=str(folder / "train.tsv"), validation=str(folder / "dev.tsv"),
                      test=str(folder / "test.tsv"), label_names=LABELS[task])


def recipe_of(family: str, task: str, teacher: str, seed: int):
    """The family's own recipe on this task and teacher, with this seed; its accuracy gate off
    (the ladder measures what int8 costs each family rather than refusing it)."""
    from kdeploy.pipeline.recipe import load_recipe, variant

    recipe = variant(load_recipe(ROOT / FAMILIES[family].recipe), name=f"{family}-s{seed}", data=data_of(task),
                     teacher=teacher, seed=seed, stages=("distill", "prune", "export"))
    recipe["export"].settings.max_accuracy_drop = 100.0
    return recipe


def train(args) -> None:
    from kdeploy.pipeline import run_recipe

    root = ROOT / "runs" / "ladder" / args.task
    state_path = root / "runs.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"runs": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for family in args.families.split(","):
            recipe, folder, started = recipe_of(family, args.task, args.teacher, seed), root / f"{family}-s{seed}", time.perf_counter()
            run = run_recipe(recipe, folder, dry_run=args.dry_run)
            if args.dry_run:
                continue
            student, pruned, report = run.results["distill"], run.results.get("prune"), run.results["export"]
            int8 = report.entry(INT8)
            row = {"family": family, "seed": seed, "student_test_accuracy": student.test.main,
                   "pruned_test_accuracy": pruned.after.main if pruned else None,
                   "int8_test_accuracy": int8.scores.main, "int8_drop_points": int8.scores.drop_points,
                   "int8_mib": int8.info.mib, "teacher_test_accuracy": student.teacher.test.main,
                   "parameters": pruned.parameters if pruned else student.parameters,
                   "train_seconds": student.train_seconds, "wall_seconds": round(time.perf_counter() - started, 1),
                   "onnx": str(folder / "onnx" / INT8.file), "recipe": recipe.to_dict()}
            state["runs"] = [r for r in state["runs"] if (r["family"], r["seed"]) != (family, seed)] + [row]
            root.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(state, indent=1))
            print(json.dumps({k: v for k, v in row.items() if k != "recipe"}), flush=True)


def time_models(args) -> None:
    import subprocess

    root = ROOT / "runs" / "ladder" / args.task
    state = json.loads((root / "runs.json").read_text())
    files = [r["onnx"] for r in state["runs"] if r["seed"] == 1]
    out = root / "bench"
    cmd = [str(Path(sys.executable).with_name("kdeploy")), "bench", args.teacher, *files, "--data",
           str(SHARED / args.task / "test.tsv"), "--label-names", ",".join(LABELS[args.task]), "--batch-sizes", "1,32",
           "--threads", "2", "--iterations", "300", "--warmup", "10", "--out", str(out), "--overwrite"]
    subprocess.run(cmd, check=True)
    (root / "bench_command.txt").write_text(" ".join(cmd))


def report(args) -> None:
    from kdeploy.environment import library_versions, machine
    from kdeploy.runtime.result import BenchReport

    root = ROOT / "runs" / "ladder" / args.task
    state = json.loads((root / "runs.json").read_text())
    bench = BenchReport.load(root / "bench" / "report.json") if (root / "bench" / "report.json").exists() else None
    teacher = bench.models[0] if bench else None
    rows, summary = [], {}
    for family in FAMILIES:
        runs = [r for r in state["runs"] if r["family"] == family]
        if not runs:
            continue
        accs = [r["int8_test_accuracy"] for r in runs]
        teacher_acc = runs[0]["teacher_test_accuracy"]
        mean = statistics.mean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        timing = next((m for m in bench.models if m.path == runs[0]["onnx"]), None) if bench else None
        entry = {"seeds": [r["seed"] for r in runs], "int8_test_accuracy": accs, "mean": mean, "std": std,
                 "retention": mean / teacher_acc, "teacher_test_accuracy": teacher_acc,
                 "int8_mib": runs[0]["int8_mib"], "parameters": runs[0]["parameters"]}
        if timing:
            entry.update({"bs1_p50_ms": timing.latency[1].p50_ms, "bs32_per_s": timing.latency[32].throughput_per_s,
                          "bs1_speedup": timing.vs_reference.p50_speedup[1],
                          "bs32_throughput_ratio": timing.vs_reference.throughput_ratio[32]})
        summary[family] = entry
        rows.append(f"| {family} | {', '.join(f'{100 * a:.2f}' for a in accs)} | {100 * mean:.2f} ± {100 * std:.2f} | "
                    f"{100 * entry['retention']:.1f}% | "
                    + (f"{entry['bs1_p50_ms']:.3f} ({entry['bs1_speedup']:.1f}x) | {entry['bs32_per_s']:.0f} "
                       f"({entry['bs32_throughput_ratio']:.1f}x) | " if timing else "- | - | ")
                    + f"{entry['int8_mib']:.1f} |")
    result = {"task": args.task, "teacher": args.teacher, "families": summary,
              "recipes": {f: FAMILIES[f].recipe for f in summary},
              "runs": state["runs"], "machine": machine(), "versions": library_versions(),
              "teacher_timing": {"bs1_p50_ms": teacher.latency[1].p50_ms,
                                 "bs32_per_s": teacher.latency[32].throughput_per_s} if teacher else None,
              "machine_load": bench.machine_load if bench else None}
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# The ladder of students on {args.task.upper()}", "",
             f"Commands: `python bench/ladder.py train --task {args.task} --teacher {args.teacher} --seeds 1,2,3`, then "
             f"`... time ...` (one interleaved `kdeploy bench` run, nothing else running) and `... report ...`.",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
             f"Teacher (MiniLM-L6 fine-tuned, PyTorch fp32): test accuracy "
             f"{100 * state['runs'][0]['teacher_test_accuracy']:.2f}%"
             + (f"; batch-1 p50 {teacher.latency[1].p50_ms:.2f} ms, batch 32 {teacher.latency[32].throughput_per_s:.0f} "
                "texts/s (length-sorted batches)." if teacher else "."), "",
             "Students: int8 ONNX test accuracy per seed, mean ± std, retention of the teacher's accuracy, and the "
             "seed-1 file's speed against the teacher in the same run.", "",
             "| family | per seed | mean ± std | retention | bs-1 p50 ms (speed-up) | bs-32 texts/s (ratio) | MiB |",
             "|---|---|---|---|---|---|---|", *rows, "", "Recipes (each family's own, the same on every task; "
             "data, teacher and seed replaced, the accuracy gate off):", ""]
    lines += [f"- {f}: `{FAMILIES[f].recipe}`" for f in summary]
    if bench and bench.machine_load:
        lines += ["", f"Machine load while timing: {bench.machine_load.get('other_processes_cores')} cores used by "
                      f"other processes{' (FLAGGED)' if bench.machine_load.get('contended') else ' (quiet: nothing else running)'}. "
                      "Reference: the teacher in PyTorch fp32, as the issue asks; the teacher's faster variants "
                      "(ORT int8, OpenVINO bf16, torch.compile) are compared with a student in runtime_peers.md."]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["train", "time", "report"])
    ap.add_argument("--task", choices=list(LABELS), default="sst2")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--dry-run", action="store_true", help="train: plan each run (what would run, and why)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    args.name = args.name or f"{args.task}_ladder"
    {"train": train, "time": time_models, "report": report}[args.action](args)


if __name__ == "__main__":
    main()
