"""The ratio users actually get: students of a base-size teacher (all-mpnet-base-v2, 110M) on the
demo's task, timed against that teacher in PyTorch fp32 and against its fastest variant.

    python bench/base_teacher.py train [--seeds 1,2,3] [--arms minilm3,mpnet3,minilm3-aug8] [--dry-run]
    python bench/base_teacher.py time                                  # on a quiet machine
    python bench/base_teacher.py report --name base_teacher_mpnet

`train` runs the recipe through kdeploy's runner (content-digest skipping, resume): the teacher
once, then its student (3 of MiniLM-L6's own layers, another tokenizer) per seed, and one student
of the teacher's own layers (3 of 12, MPNet's tokenizer) for comparison. `time` benchmarks the
teacher and each seed-1 int8 file in one interleaved `kdeploy bench --peers` run (the teacher in
bf16, torch.compile, ORT int8 and OpenVINO beside it). What this script adds is only the table.
Needs the base-teacher wheels: pip install 'kdeploy[base-teacher]'.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "models" / "rotten_tomatoes_mpnet.yaml"
RUNS = ROOT / "runs" / "base_teacher"

from kdeploy.export.files import INT8  # noqa: E402


def _recipe():
    from kdeploy.pipeline.recipe import load_recipe

    return load_recipe(RECIPE)


def _row(name: str, seed: int, run, folder: Path, started: float) -> dict:
    student, report = run.results["distill"], run.results["export"]
    int8 = report.entry(INT8)
    return {"student": name, "seed": seed, "student_test_accuracy": student.test.main,
            "int8_test_accuracy": int8.scores.main, "int8_drop_points": int8.scores.drop_points,
            "int8_mib": int8.info.mib, "teacher_test_accuracy": student.teacher.test.main,
            "parameters": student.parameters, "train_seconds": student.train_seconds,
            "model": student.model, "wall_seconds": round(time.perf_counter() - started, 1),
            "onnx": str(folder / "onnx" / INT8.file)}


def train(args) -> None:
    from kdeploy.distill.config import StudentConfig
    from kdeploy.pipeline import run_recipe
    from kdeploy.pipeline.recipe import variant

    recipe = _recipe()
    teacher_run = run_recipe(variant(recipe, name="teacher", stages=("finetune",)), RUNS / "teacher",
                             dry_run=args.dry_run)
    teacher = str(RUNS / "teacher" / "teacher")
    state_path = RUNS / "runs.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"runs": []}
    if not args.dry_run:
        state["teacher"] = {"test_accuracy": teacher_run.results["finetune"].test.main,
                            "train_seconds": teacher_run.results["finetune"].train_seconds, "path": teacher}
    arms = args.arms.split(",")  # the first arm over every seed (the headline), the others seed 1
    plans = [(arms[0], int(s)) for s in args.seeds.split(",")] + [(arm, 1) for arm in arms[1:]]
    for name, seed in plans:
        one = variant(recipe, name=f"{name}-s{seed}", teacher=teacher, seed=seed, stages=("distill", "export"))
        if name.startswith("mpnet3"):  # the teacher's own layers, its own tokenizer
            one["distill"].settings.student = StudentConfig(kind="layers", layers=3)
        if name.endswith("-aug8"):  # 8 augmented copies per sentence instead of the recipe's 2
            one["distill"].settings.augment = 8
        folder, started = RUNS / f"{name}-s{seed}", time.perf_counter()
        run = run_recipe(one, folder, dry_run=args.dry_run)
        if args.dry_run:
            continue
        row = _row(name, seed, run, folder, started)
        state["runs"] = [r for r in state["runs"] if (r["student"], r["seed"]) != (name, seed)] + [row]
        RUNS.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps(state, indent=1))
        print(json.dumps(row), flush=True)


def time_models(args) -> None:
    state = json.loads((RUNS / "runs.json").read_text())
    files = [r["onnx"] for r in state["runs"] if r["seed"] == 1]
    cmd = [str(Path(sys.executable).with_name("kdeploy")), "bench", state["teacher"]["path"], *files,
           "--dataset", "builtin:rotten_tomatoes", "--peers", "--batch-sizes", "1,32", "--threads", "2",
           "--iterations", str(args.iterations), "--warmup", "10", "--out", str(RUNS / "bench"), "--overwrite"]
    subprocess.run(cmd, check=True)
    (RUNS / "bench_command.txt").write_text(" ".join(cmd))


def report(args) -> None:
    from kdeploy.environment import library_versions, machine
    from kdeploy.runtime.result import BenchReport

    state = json.loads((RUNS / "runs.json").read_text())
    bench = BenchReport.load(RUNS / "bench" / "report.json")
    teacher_acc = state["teacher"]["test_accuracy"]
    by_path = {m.path: m for m in bench.models if m.provider != "openvino-CPU"}  # a student's own ORT file
    reference = bench.model(bench.reference)
    variants = [m for m in bench.models if (m.origin or m.path) == (reference.origin or reference.path)]
    fastest1 = min(variants, key=lambda m: m.latency[1].p50_ms)
    fastest32 = max(variants, key=lambda m: m.latency[32].throughput_per_s)
    rows, summary = [], {}
    for name in dict.fromkeys(r["student"] for r in state["runs"]):
        runs = [r for r in state["runs"] if r["student"] == name]
        accs = [r["int8_test_accuracy"] for r in runs]
        mean, std = statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0
        timing = by_path.get(runs[0]["onnx"])
        entry = {"seeds": [r["seed"] for r in runs], "int8_test_accuracy": accs, "mean": mean, "std": std,
                 "retention": mean / teacher_acc, "int8_mib": runs[0]["int8_mib"], "model": runs[0]["model"]}
        if timing:
            vs = timing.vs_reference  # kdeploy bench's own ratios, same run
            entry.update({"bs1_p50_ms": timing.latency[1].p50_ms, "bs32_per_s": timing.latency[32].throughput_per_s,
                          "bs1_vs_teacher": vs.p50_speedup[1], "bs32_vs_teacher": vs.throughput_ratio[32],
                          "bs1_vs_fastest": vs.p50_speedup_vs_fastest_reference.get(1),
                          "bs32_vs_fastest": vs.throughput_ratio_vs_fastest_reference.get(32)})
        summary[name] = entry
        rows.append(f"| {name} | {', '.join(f'{100 * a:.2f}' for a in accs)} | {100 * mean:.2f} ± {100 * std:.2f} | "
                    f"{100 * entry['retention']:.1f}% | "
                    + (f"{entry['bs1_p50_ms']:.3f} | {entry['bs1_vs_teacher']:.1f}× / {entry['bs1_vs_fastest']:.1f}× | "
                       f"{entry['bs32_per_s']:.0f} | {entry['bs32_vs_teacher']:.1f}× / {entry['bs32_vs_fastest']:.1f}× | "
                       if timing else "- | - | - | - | ")
                    + f"{entry['int8_mib']:.1f} |")
    teachers = [f"| {m.name} | {m.latency[1].p50_ms:.2f} | {m.latency[32].throughput_per_s:.0f} |" for m in variants]
    result = {"teacher": state["teacher"], "students": summary, "runs": state["runs"], "machine": machine(),
              "versions": library_versions(), "fastest_teacher_bs1": fastest1.name,
              "fastest_teacher_bs32": fastest32.name, "machine_load": bench.machine_load,
              "command": (RUNS / "bench_command.txt").read_text()}
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Students of a base-size teacher (all-mpnet-base-v2, 110M) on the demo's task", "",
             "Commands: `python bench/base_teacher.py train --seeds 1,2,3 --arms minilm3,mpnet3,minilm3-aug8` (models/rotten_tomatoes_mpnet.yaml through "
             "kdeploy's runner), `python bench/base_teacher.py time` (one interleaved `kdeploy bench --peers` run, "
             "nothing else running), `python bench/base_teacher.py report`.",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
             f"Teacher: all-mpnet-base-v2 fine-tuned on the 4,000-sentence sample (2 epochs, "
             f"{state['teacher']['train_seconds']:.0f} s): test accuracy **{100 * teacher_acc:.2f}%**.", "",
             "| teacher runtime | bs-1 p50 ms | bs-32 texts/s |", "|---|---|---|", *teachers, "",
             "Students (int8 ONNX, the shipped file): test accuracy per seed, mean ± std, retention of the "
             "teacher's accuracy; the seed-1 file's speed against the teacher in PyTorch fp32 and against the "
             f"teacher's fastest variant ({fastest1.name} at batch 1, {fastest32.name} at batch 32), same run.", "",
             "| student | per seed | mean ± std | retention | bs-1 p50 ms | vs fp32 / fastest | bs-32 texts/s | "
             "vs fp32 / fastest | MiB |", "|---|---|---|---|---|---|---|---|---|", *rows, "",
             "- minilm3: 3 of all-MiniLM-L6-v2's own 6 layers (0, 2, 5), its own WordPiece tokenizer, distilled from "
             "the MPNet teacher (`distill.student: {kind: builtin:all-MiniLM-L6-v2, own_layers: 3}`).",
             "- mpnet3: 3 of the teacher's 12 layers (0, 5, 11), MPNet's tokenizer (`--student-layers 3`).",
             "- -aug8: the same with 8 augmented copies of each sentence (the recipe has 2)."]
    if bench.machine_load:
        lines += ["", f"Machine load while timing: {bench.machine_load.get('other_processes_cores')} cores used by "
                      f"other processes{' (FLAGGED)' if bench.machine_load.get('contended') else ' (quiet)'}."]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["train", "time", "report"])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--arms", default="minilm3,mpnet3",
                    help="train: students, the first over --seeds: minilm3, mpnet3 (the teacher's own 3 layers), "
                         "and either with -aug8 (8 augmented copies)")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--dry-run", action="store_true", help="train: plan each run (what would run, and why)")
    ap.add_argument("--name", default="base_teacher_mpnet")
    args = ap.parse_args()
    {"train": train, "time": time_models, "report": report}[args.action](args)


if __name__ == "__main__":
    main()
