"""Sentence-embedding students side by side (issue 41), in one interleaved run on a quiet machine:
quality on STS-B test (Spearman ρ of cosine), SICK test relatedness, and paraphrase retrieval
(each first sentence of an STS-B test pair scored ≥ 4 finds its second among all of them:
recall@1 and MRR), then batch-1 latency (p50 over the same texts, models taking turns) and
batch-32 throughput. Models: a sentence-transformers folder (run by sentence-transformers,
PyTorch), a kdeploy bundle (run by `Predictor.embed`, onnxruntime), `model2vec:TEACHER` (a
static model2vec distilled from the teacher at run time: the cheap baseline a practitioner
tries first) or `bag:TEACHER` (the teacher's word vectors averaged: the retention verdict's floor).

    python bench/embedding_report.py --name embedding_stsb \
        teacher=builtin:all-MiniLM-L6-v2 student-int8=runs/embedding_stsb/L3-int8 model2vec=model2vec:builtin:all-MiniLM-L6-v2
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from kdeploy.environment import library_versions, machine
from kdeploy.metrics import spearman
from kdeploy.tasks.embedding import cosines

RESULTS = Path(__file__).parent / "results"
TRUNCATED = (128, 64)  # the first D dimensions, as /embed's and Predictor.embed's `dimensions` give
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def scored(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], np.array([float(r["score"]) for r in rows])


class Model:
    def __init__(self, name: str, spec: str, threads: int):
        self.name, self.spec = name, spec
        if spec.startswith("bag:"):  # the floor: the teacher's word vectors averaged, no layer
            from sentence_transformers import SentenceTransformer

            from kdeploy.assets import resolve_model
            from kdeploy.distill.embedding import bag_of_embeddings

            self.model = SentenceTransformer(resolve_model(spec.removeprefix("bag:")), device="cpu",
                                             local_files_only=True)
            self.kind = "teacher's word vectors averaged (PyTorch)"
            self.run = lambda texts: bag_of_embeddings(self.model, texts, 256).astype(np.float32)
        elif spec.startswith("model2vec:"):
            from model2vec.distill import distill

            from kdeploy.assets import resolve_model

            t0 = time.perf_counter()
            self.model = distill(model_name=resolve_model(spec.removeprefix("model2vec:")), pca_dims=256)
            self.kind, self.made_seconds = "model2vec (static, PCA 256)", round(time.perf_counter() - t0, 1)
            self.run = lambda texts: np.asarray(self.model.encode(texts), dtype=np.float32)
        elif (Path(spec) / "bundle.json").is_file():
            from kdeploy.edge import Predictor

            self.model = Predictor(spec, threads=threads)
            self.kind = f"kdeploy bundle ({self.model.manifest.dtype}, onnxruntime)"
            self.run = lambda texts: self.model.embed(texts, batch_size=len(texts))
        else:
            import torch
            from sentence_transformers import SentenceTransformer

            from kdeploy.assets import resolve_model

            torch.set_num_threads(threads)
            self.model = SentenceTransformer(resolve_model(spec), device="cpu", local_files_only=True)
            self.kind = "sentence-transformers (PyTorch fp32)"
            self.run = lambda texts: np.asarray(self.model.encode(texts, batch_size=len(texts)), dtype=np.float32)

    def vectors(self, texts: list[str]) -> np.ndarray:
        out = [self.run(texts[i:i + 64]) for i in range(0, len(texts), 64)]
        return np.concatenate(out)


def quality(model: Model, sets: dict) -> dict:
    out = {}
    for name, (a, b, gold) in sets.items():
        v = model.vectors(a + b)
        out[f"{name}_spearman"] = float(spearman(cosines(v), gold))
        if name == "stsb_test":  # what `dimensions=` (truncation, then renormalising) costs without Matryoshka training
            for d in TRUNCATED:
                if v.shape[1] > d:
                    out[f"stsb_test_spearman_{d}"] = float(spearman(cosines(v[:, :d]), gold))
    a, b, gold = sets["stsb_test"]
    keep = np.flatnonzero(gold >= 4.0)
    qa, qb = model.vectors([a[i] for i in keep]), model.vectors([b[i] for i in keep])
    qa, qb = qa / np.linalg.norm(qa, axis=1, keepdims=True), qb / np.linalg.norm(qb, axis=1, keepdims=True)
    sims = qa @ qb.T
    rank = (sims > sims[np.arange(len(keep)), np.arange(len(keep))][:, None]).sum(1) + 1
    out.update(retrieval_pairs=int(len(keep)), recall_at_1=float((rank == 1).mean()), mrr=float((1 / rank).mean()))
    return out


BLOCK = 25  # calls in a row per model before the next takes its turn


def timings(models: list[Model], texts: list[str], calls: int) -> dict:
    """Batch-1 p50 with the models taking turns in blocks of 25 texts (one call after another's
    would time onnxruntime's still-spinning threads against PyTorch's); batch-32 throughput in turns."""
    for m in models:
        m.run(texts[:8])  # warm-up
    one = {m.name: [] for m in models}
    for start in range(0, calls, BLOCK):
        for m in models:
            m.run(texts[start:start + 2])  # the threads of the model before settle
            for t in texts[start:start + BLOCK]:
                t0 = time.perf_counter()
                m.run([t])
                one[m.name].append(time.perf_counter() - t0)
    batch = {m.name: 0.0 for m in models}
    chunks = [texts[i:i + 32] for i in range(0, min(len(texts), 32 * 20), 32)]
    for chunk in chunks:
        for m in models:
            t0 = time.perf_counter()
            m.run(chunk)
            batch[m.name] += time.perf_counter() - t0
    n = sum(len(c) for c in chunks)
    return {m.name: {"bs1_p50_ms": 1000 * float(np.median(one[m.name])), "bs32_per_s": n / batch[m.name]}
            for m in models}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="name=spec (a sentence-transformers folder or builtin, a bundle, "
                                              "model2vec:TEACHER)")
    ap.add_argument("--name", default="embedding_stsb")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    sets = {"stsb_test": scored(DATA / "stsb" / "test.tsv"), "sick_test": scored(DATA / "sick" / "test.tsv")}
    models = [Model(*spec.split("=", 1), args.threads) for spec in args.models]
    rows = {m.name: {"kind": m.kind, "spec": m.spec, **quality(m, sets)} for m in models}
    a, b, _ = sets["stsb_test"]
    for name, t in timings(models, list(dict.fromkeys(a + b)), args.calls).items():
        rows[name].update(t)
    ref = models[0].name
    for r in rows.values():
        r["of_reference_stsb"] = r["stsb_test_spearman"] / rows[ref]["stsb_test_spearman"]
        r["bs1_speedup"] = rows[ref]["bs1_p50_ms"] / r["bs1_p50_ms"]
    for m in models:
        if hasattr(m, "made_seconds"):
            rows[m.name]["made_seconds"] = m.made_seconds
    command = "python bench/embedding_report.py " + " ".join(sys.argv[1:])
    from kdeploy.environment import _PACKAGES

    versions = library_versions((*_PACKAGES, "sentence-transformers", "model2vec"))
    out = {"machine": machine(), "versions": versions, "command": command, "threads": args.threads,
           "alone": "run alone on the machine (nothing else running)", "reference": ref, "models": rows}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    mc = out["machine"]
    lines = [f"# Sentence-embedding students ({args.name})", "",
             f"Machine: {mc.get('cpu')}, {mc.get('cores')} cores, class {mc.get('cpu_class')}; {args.threads} threads; "
             "run alone. Quality: STS-B test (1,379 pairs) and SICK test (4,927 pairs) Spearman ρ of cosine × 100; "
             "retrieval: each first sentence of an STS-B test pair scored ≥ 4 finds its second among all of them. "
             f"Latency: batch-1 p50 over {args.calls} STS-B sentences, the models taking turns in blocks of {BLOCK}. Command: `{command}`.",
             "", "| model | runs as | STS-B ρ | ρ, first 128 dims | ρ, first 64 | SICK ρ | recall@1 | MRR | "
                 "% of reference STS-B | bs1 p50 ms | bs1 speed-up | bs32 texts/s |", "|" + "---|" * 12]
    for name, r in rows.items():
        cut = [f"{100 * r[k]:.2f}" if k in r else "-" for k in (f"stsb_test_spearman_{d}" for d in TRUNCATED)]
        lines.append(f"| {name} | {r['kind']} | {100 * r['stsb_test_spearman']:.2f} | {' | '.join(cut)} | "
                     f"{100 * r['sick_test_spearman']:.2f} "
                     f"| {100 * r['recall_at_1']:.1f} | {r['mrr']:.3f} | {100 * r['of_reference_stsb']:.1f}% | "
                     f"{r['bs1_p50_ms']:.2f} | {r['bs1_speedup']:.1f}× | {r['bs32_per_s']:.0f} |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
