"""Each tokenizer family trimmed and shipped as one e2e file: a tiny random RoBERTa (byte-level
BPE) and XLM-R (Unigram / SentencePiece) teacher, each with its family's tokenizer trained on toy
text (tests/tiny_families.py), through distill (2 layers) → prune (vocabulary trimmed) → export
(calibrated int8) → package onnx-e2e, with the numbers issue 25 asks for: vocabulary and size
before/after trimming, agreement and max |Δlogit| on the kept text, and the e2e token-parity gate.

    python bench/tokenizer_families.py [--archs roberta,xlm-roberta,bert] [--out /tmp/tokenizer-families]

Real RoBERTa/XLM-R checkpoints are not available offline here; the tokenizers are of the real kinds.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def one(arch: str, out: Path, data) -> dict:
    import numpy as np

    from conftest import distill_settings
    from kdeploy.data import load_task_data
    from kdeploy.distill.api import distill
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.modelio.loading import load_classifier, load_tokenizer
    from kdeploy.modelio.sizes import mib
    from kdeploy.modelio.torch_infer import compute_logits
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.prune.api import prune
    from kdeploy.prune.config import PruneSettings
    from tiny_families import ARCHITECTURES, build_teacher

    teacher = build_teacher(arch, out / "teacher")
    distill(distill_settings(student={"layers": 2}, train={"epochs": 1}), teacher=str(teacher), data=data,
            out=out / "student")
    pruned = prune(PruneSettings(), model=out / "student", out=out / "pruned", data=data)
    texts = load_task_data(data).texts("test")
    before = compute_logits(load_classifier(str(out / "student")), load_tokenizer(str(out / "student")), texts, 64)
    after = compute_logits(load_classifier(str(out / "pruned")), load_tokenizer(str(out / "pruned")), texts, 64)
    export(ExportSettings(max_accuracy_drop=100), model=out / "pruned", out=out / "onnx", data=data)
    bundle = package(PackageSettings(formats=["onnx-e2e"], archive=None), export_dir=out / "onnx", out=out / "e2e")
    return {"architecture": arch, "tokenizer": ARCHITECTURES[arch][1],
            "vocab_before": pruned.vocab["vocab_before"], "vocab_after": pruned.vocab["vocab_after"],
            "mib_before": round(mib(out / "student"), 2), "mib_after": round(mib(out / "pruned"), 2),
            "agreement": pruned.agreement, "max_abs_logit_change_on_test": float(np.abs(before - after).max()),
            "test_texts": len(texts), "e2e_mib": round(bundle.bundle_mib, 2), "e2e_gate": bundle.e2e_parity}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="roberta,xlm-roberta")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from conftest import data_of, make_sentences, write_tsv

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        root.mkdir(parents=True, exist_ok=True)
        files = {split: write_tsv(root / f"{split}.tsv", make_sentences(n, seed))
                 for split, n, seed in (("train", 200, 0), ("validation", 60, 1), ("test", 60, 2))}
        rows = [one(arch, root / arch, data_of(files)) for arch in args.archs.split(",")]
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
