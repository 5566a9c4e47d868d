"""Calibrated int8 on each small student family with a real teacher and real data: each
family distilled from the demo teacher on the demo's Rotten Tomatoes sample, then exported
twice (the calibrated default and `--quantize int8-dynamic`) and scored on the whole test
split: accuracy, batch invariance, and export's own timing of the file it ships.

    make demo    # once: runs/demo/teacher
    python bench/static_int8_families.py --teacher runs/demo/teacher --families static,cnn,bilstm \
        --name static_int8_families

`width` is a 2-layer student with half of every feed-forward layer pruned and its vocabulary
trimmed (`kdeploy prune --ffn 0.5`); `pairs` is a 3-layer student of a SICK entailment teacher
(`--pairs-teacher`, e.g. the finetune stage of models/sick_entailment.yaml) on ../shared/data/sick.

Stage outputs land in runs/static_int8_families/ and are reused when present (kdeploy's own
records; delete the folder to start over).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdeploy.configtools import settings_from  # noqa: E402
from kdeploy.data import DataConfig  # noqa: E402
from kdeploy.distill.api import distill  # noqa: E402
from kdeploy.distill.config import DistillSettings  # noqa: E402
from kdeploy.environment import library_versions, machine  # noqa: E402
from kdeploy.export.api import export  # noqa: E402
from kdeploy.export.config import ExportSettings  # noqa: E402
from kdeploy.export.files import FP32, INT8  # noqa: E402
from kdeploy.export.result import REPORT, ExportResult  # noqa: E402
from kdeploy.prune.api import prune  # noqa: E402
from kdeploy.prune.config import PruneSettings  # noqa: E402

STUDENTS = {"static": {"kind": "static"}, "cnn": {"kind": "cnn"}, "bilstm": {"kind": "bilstm"},
            "layers2": {"kind": "layers", "layers": 2}, "width": {"kind": "layers", "layers": 2},
            "pairs": {"kind": "layers", "layers": 3}}
SICK = Path(__file__).resolve().parents[2] / "shared" / "data" / "sick"


def make_student(family: str, teacher: str, data: DataConfig, root: Path, epochs: int) -> Path:
    """The family's student under root (reused when its record is there); `width` is then
    FFN-pruned by half with its vocabulary trimmed."""
    student = root / (f"{family}-unpruned" if family == "width" else family)
    if not (student / "kdeploy.json").is_file():
        settings = settings_from(DistillSettings, {"student": STUDENTS[family], "augment": 0,
                                                   "train": {"epochs": epochs}})
        distill(settings, teacher=teacher, data=data, out=student, overwrite=True)
    if family != "width":
        return student
    pruned = root / family
    if not (pruned / "kdeploy.json").is_file():
        prune(PruneSettings(vocab=True, ffn=0.5, recover_epochs=1), model=student, out=pruned, data=data,
              teacher=teacher, overwrite=True)
    return pruned


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--families", default="static,cnn,bilstm")
    ap.add_argument("--pairs-teacher", default=None, help="a SICK entailment teacher, for the `pairs` family")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    demo = DataConfig(dataset="builtin:rotten_tomatoes", max_train_samples=4000)
    sick = DataConfig(train=str(SICK / "train.tsv"), validation=str(SICK / "dev.tsv"), test=str(SICK / "test.tsv"),
                      label_column="label")
    root = Path("runs") / "static_int8_families"
    rows = []
    for family in args.families.split(","):
        if family == "pairs" and not args.pairs_teacher:
            sys.exit("the pairs family needs --pairs-teacher (a SICK entailment teacher)")
        data, teacher = (sick, args.pairs_teacher) if family == "pairs" else (demo, args.teacher)
        student = make_student(family, teacher, data, root, args.epochs)
        for mode in ("int8", "int8-dynamic"):
            out = root / f"{family}-onnx-{mode}"
            if (out / REPORT).is_file():
                report = ExportResult.load(out / REPORT)
            else:
                report = export(ExportSettings(quantize=mode), model=student, out=out, data=data, overwrite=True)
            f, acc = report.files[INT8.file], report.accuracy
            chosen = next(c for c in report.choice["candidates"] if c["name"] == report.choice["chosen"])
            rows.append({"family": family, "quantize": mode, "format": f.quantization.get("format", "QOperator"),
                         "fp32": round(100 * acc.files[FP32.file].main, 2),
                         "int8": round(100 * acc.files[INT8.file].main, 2),
                         "invariance": f.invariance.summary(), "chosen": report.choice["chosen"],
                         "bs1_p50_ms": chosen.get("bs1_p50_ms"), "bs32_per_s": chosen.get("bs32_per_s"),
                         "mib": f.mib})
            print(rows[-1], flush=True)
    command = "python bench/static_int8_families.py " + " ".join(sys.argv[1:])
    results = Path(__file__).parent / "results"
    (results / f"{args.name}.json").write_text(json.dumps({"command": command, "machine": machine(),
                                                           "versions": library_versions(), "rows": rows}, indent=2))
    lines = [f"# Calibrated vs dynamic int8 per student family: {args.name}", "", f"`{command}`", "",
             f"Machine: {machine()}; onnxruntime {library_versions().get('onnxruntime')}. Teacher: the demo's "
             "fine-tuned all-MiniLM-L6-v2; data: the demo's Rotten Tomatoes sample (4,000 training sentences, "
             "whole test split); `pairs`: a SICK entailment teacher and SICK's splits. Timings: export's own interleaved timing of the candidates (batch 1 p50, "
             "length-sorted batches of 32), nothing else running.", "",
             "| family | --quantize | chosen | fp32 % | int8 % | batch invariance (whole test split) | bs1 p50 ms | "
             "bs32 texts/s | MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['quantize']} | {r['chosen']} | {r['fp32']} | {r['int8']} | "
                     f"{r['invariance']} | {r['bs1_p50_ms']} | {r['bs32_per_s']} | {r['mib']} |")
    (results / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
