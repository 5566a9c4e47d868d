"""Write bench/results/goemotions.{json,md} from the typed results bench/goemotions.sh leaves in
its run folder: the teacher's and each student's records, their exports and the one interleaved
bench (nothing retyped).

    python bench/goemotions_report.py [runs/goemotions_minilm]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from kdeploy.distill.result import TrainingResult
from kdeploy.export.result import ExportResult
from kdeploy.runtime.result import BenchReport

RESULTS = Path(__file__).parent / "results"
PUBLISHED = 0.46  # BERT-base macro-F1 on the GoEmotions test split (Demszky et al., 2020)


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/goemotions_minilm")
    teacher = TrainingResult.of_folder(run / "teacher")
    students = {n: TrainingResult.of_folder(run / f"student{n}") for n in (3, 2) if (run / f"student{n}").is_dir()}
    exports = {n: ExportResult.of_folder(run / f"onnx{n}") for n in students if (run / f"onnx{n}").is_dir()}
    bench = BenchReport.of_folder(run / "bench")
    ref = bench.model(bench.reference)
    rows = []
    for m in bench.models:
        a = m.accuracy
        rows.append({"model": m.name, "kind": m.kind, "macro_f1": a.metrics.get("macro_f1"),
                     "micro_f1": a.metrics.get("micro_f1"), "subset_accuracy": a.metrics.get("subset_accuracy"),
                     "of_teacher_macro_f1": a.main / ref.accuracy.main, "bs1_p50_ms": m.latency[1].p50_ms,
                     "bs1_speedup": m.vs_reference.p50_speedup.get(1), "bs32_per_s": m.latency[32].throughput_per_s,
                     "size_mib": m.size_mib, "flips": m.invariance.flips if m.invariance else None})
    out = {"machine": bench.environment.get("machine"), "versions": bench.environment.get("versions"),
           "teacher": {"test": teacher.test.metrics, "validation": teacher.validation.metrics,
                       "learning_rate_probe": teacher.learning_rate_probe, "train_seconds": teacher.train_seconds,
                       "epochs": len(teacher.epochs), "thresholds": teacher.thresholds},
           "students": {n: {"test": s.test.metrics, "validation": s.validation.metrics, "train_seconds": s.train_seconds,
                            "retention": s.retention.line() if s.retention else None, "thresholds": s.thresholds,
                            "int8_gate": (exports[n].accuracy.files["model.int8.onnx"].paired_test
                                          if n in exports and exports[n].accuracy else None)}
                        for n, s in students.items()},
           "bench": rows, "headline": bench.headline, "published_bert_base_macro_f1": PUBLISHED}
    (RESULTS / "goemotions.json").write_text(json.dumps(out, indent=2) + "\n")
    machine = out["machine"] or {}
    lines = ["# GoEmotions (multi-label, 28 labels): teacher, two students in int8, the cheap baselines", "",
             f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, class {machine.get('cpu_class')} (flags "
             f"{', '.join(machine.get('isa', []) or [])}); one interleaved bench with nothing else running on the 2 cores "
             f"(batch 1 and 32, 200 calls each, 2 threads). Command: `bash bench/goemotions.sh && "
             "python bench/goemotions_report.py`.", "",
             f"Teacher (MiniLM-L6 fine-tuned, learning rate {teacher.config['settings']['train']['learning_rate']:g} "
             f"by the probe, {len(teacher.epochs)} epochs, {teacher.train_seconds / 60:.0f} min): test macro-F1 "
             f"{100 * teacher.test.metrics['macro_f1']:.2f}, micro-F1 {100 * teacher.test.metrics['micro_f1']:.2f} "
             f"(published BERT-base: macro-F1 {100 * PUBLISHED:.0f}).", "",
             "| model | test macro-F1 | micro-F1 | subset acc | % of teacher's macro-F1 | bs1 p50 ms | bs1 speed-up "
             "| bs32 texts/s | MiB | flips (alone vs batched) |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['model']} | {100 * r['macro_f1']:.2f} | {100 * r['micro_f1']:.2f} | "
                     f"{100 * r['subset_accuracy']:.2f} | {100 * r['of_teacher_macro_f1']:.1f}% | {r['bs1_p50_ms']:.2f} | "
                     f"{r['bs1_speedup']:.1f}× | {r['bs32_per_s']:.0f} | {r['size_mib']:.1f} | {r['flips']} |")
    lines += ["", "Students (validation-tuned thresholds, recorded in each model, export and bundle):", ""]
    for n, s in out["students"].items():
        lines.append(f"- {n} layers: {s['retention']}; int8 gate: {s['int8_gate']}")
    lines += ["", "Headline:", "", *[f"- {h}" for h in bench.headline], ""]
    (RESULTS / "goemotions.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
