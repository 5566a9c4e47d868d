"""Vocabulary trimming on a real student: int8 bundle size and test accuracy, before and after.

    python bench/prune_vocab.py --student runs/sst2/bench/a0.5-s1 --name sst2_prune_vocab

Exports the student as it is and trimmed (same export settings: O2 + int8), packages
both, and scores both int8 models on the test split (never used to choose the vocabulary).
Writes bench/results/NAME.{json,md}. Needs ../shared/data/sst2.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    from kdeploy.data import DataConfig
    from kdeploy.environment import library_versions, machine
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.prune.api import prune
    from kdeploy.prune.config import PruneSettings

    p = argparse.ArgumentParser()
    p.add_argument("--student", default=str(ROOT / "runs/sst2/bench/a0.5-s1"))
    p.add_argument("--extra-corpus")
    p.add_argument("--out", default=str(ROOT / "runs/sst2/prune_vocab"))
    p.add_argument("--name", default="sst2_prune_vocab")
    a = p.parse_args()
    if not SST2.exists():
        sys.exit(f"{SST2} is absent")
    data = DataConfig(train=str(SST2 / "train.tsv"), validation=str(SST2 / "dev.tsv"), test=str(SST2 / "test.tsv"),
                      label_names=["negative", "positive"])
    out = Path(a.out)
    pr = prune(PruneSettings(), model=a.student, out=out / "pruned", data=data, extra_corpus=a.extra_corpus,
               overwrite=True).to_dict()
    rows = {}
    for name, model in (("original", a.student), ("trimmed", str(out / "pruned"))):
        rep = export(ExportSettings(max_accuracy_drop=100), model=model, out=out / name / "onnx", data=data,
                     overwrite=True)
        bundle = package(PackageSettings(), export_dir=out / name / "onnx", out=out / name / "bundle", overwrite=True)
        rows[name] = {"int8_test_accuracy": rep.scores("model.int8.onnx").main,
                      "fp32_test_accuracy": rep.scores("model.onnx").main,
                      "int8_mib": rep.files["model.int8.onnx"].mib, "bundle_mib": bundle.bundle_mib,
                      "archive_mib": bundle.archive_mib}
    result = {"date": date.today().isoformat(), "command": " ".join(["python", *sys.argv]),
              "machine": machine(), "versions": library_versions(), "student": a.student,
              "vocab": pr["vocab"], "pytorch": {"before": pr["before"], "after": pr["after"],
                                                "agreement": pr["agreement"]},
              "eval_token_coverage": pr["eval_token_coverage"], **rows}
    drop = 100 * (rows["trimmed"]["int8_test_accuracy"] - rows["original"]["int8_test_accuracy"])
    result["int8_accuracy_change_points"] = drop
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{a.name}.json").write_text(json.dumps(result, indent=2))
    o, t = rows["original"], rows["trimmed"]
    md = [f"# Vocabulary trimming on the SST-2 student ({result['date']})", "", f"`{result['command']}`", "",
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; torch "
          f"{result['versions'].get('torch')}, onnxruntime {result['versions'].get('onnxruntime')}", "",
          f"Kept tokens: those of the training and validation sentences"
          f"{' and ' + a.extra_corpus if a.extra_corpus else ''}, plus the special tokens: "
          f"{pr['vocab']['vocab_before']} → {pr['vocab']['vocab_after']}. The test split is only scored.", "",
          "| | int8 test accuracy | fp32 test accuracy | int8 ONNX MiB | bundle MiB | tar.gz MiB |",
          "|---|---|---|---|---|---|",
          *[f"| {n} | {100 * r['int8_test_accuracy']:.2f} | {100 * r['fp32_test_accuracy']:.2f} | {r['int8_mib']:.1f} | "
            f"{r['bundle_mib']:.1f} | {r['archive_mib']:.1f} |" for n, r in rows.items()], "",
          f"- int8 size ratio trimmed/original: {t['int8_mib'] / o['int8_mib']:.2f}; bundle "
          f"{t['bundle_mib'] / o['bundle_mib']:.2f}",
          f"- int8 test accuracy change: {drop:+.2f} points; PyTorch predictions agree on "
          f"{100 * pr['agreement']:.2f}% of test sentences",
          f"- test tokens that are not [UNK] after trimming: {100 * pr['eval_token_coverage']:.2f}%; test words "
          "outside the kept vocabulary are re-split into kept pieces by WordPiece, or become [UNK]", ""]
    (res / f"{a.name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
