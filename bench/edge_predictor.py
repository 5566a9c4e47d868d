"""Sentences per second through the torch-free predictor, end to end (tokenise, run, softmax),
at batch 1 and 32, from a bundle; checks that torch never got imported.

    python bench/edge_predictor.py runs/demo/bundle.tar.gz [--texts ../shared/data/sst2/test.tsv]

Writes bench/results/edge_predictor.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import onnxruntime
    import tokenizers

    from kdeploy.edge import Predictor

    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--texts", default=str(ROOT.parent / "shared/data/sst2/test.tsv"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    texts = [l.split("\t")[0] for l in Path(a.texts).read_text(encoding="utf-8").splitlines()[1:]]
    t0 = time.perf_counter()
    predictor = Predictor(a.bundle, threads=a.threads)
    load_s = time.perf_counter() - t0
    predictor.predict(texts[:64])  # warm-up
    rates = {}
    for bs in (1, 32, "auto"):  # auto: the predictor picks batch sizes itself (a token budget)
        best = 0.0
        for _ in range(a.repeats):
            n = 400 if bs == 1 else len(texts)
            t = time.perf_counter()
            if bs == 1:
                for text in texts[:n]:
                    predictor.predict([text])
            else:
                predictor.predict(texts[:n], **({"batch_size": 32} if bs == 32 else {}))
            best = max(best, n / (time.perf_counter() - t))
        rates[str(bs)] = best
    heavy = [m for m in ("torch", "transformers", "optimum", "datasets") if m in sys.modules]
    assert not heavy, f"the edge predictor imported {heavy}"
    manifest = predictor.manifest
    result = {"date": date.today().isoformat(), "command": " ".join(["python", *sys.argv]),
              "bundle": a.bundle, "threads": a.threads, "sentences_per_second": rates, "load_seconds": load_s,
              "heavy_modules_imported": heavy, "model_dtype": manifest.dtype,
              "versions": {"onnxruntime": onnxruntime.__version__, "tokenizers": tokenizers.__version__,
                           "python": platform.python_version()}}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "edge_predictor.json").write_text(json.dumps(result, indent=2))
    md = [f"# Edge predictor throughput ({result['date']})", "", f"`{result['command']}`", "",
          f"{platform.processor() or platform.machine()}, {a.threads} threads; onnxruntime {onnxruntime.__version__}, "
          f"tokenizers {tokenizers.__version__}; model {manifest.dtype}; end to end (tokenise + run + softmax), "
          f"best of {a.repeats}; `torch`/`transformers` in sys.modules: {bool(heavy)}.", "",
          "| batch | sentences/s |", "|---|---|", *[f"| {bs} | {r:.0f} |" for bs, r in rates.items()],
          "", f"Bundle load + checksum verification: {load_s:.2f} s", ""]
    (out / "edge_predictor.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
