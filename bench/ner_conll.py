"""Entity taggers side by side on CoNLL-2003 (issue 40), in one interleaved run on a quiet machine.

    python bench/ner_conll.py crf                      # the CRF baseline (sklearn-crfsuite, hand features)
    PYTHONPATH=/work/spacylib python bench/ner_conll.py spacy   # spaCy's NER (its CNN), spacy installed there
    python bench/ner_conll.py report --name ner_conll \\
        teacher=torch:runs/conll/teacher-minilm L3-int8=bundle:runs/conll/L3-bundle crf=crf:runs/conll/crf.crfsuite

Every system reads each test sentence as one text (its words joined by spaces, as a served model
gets it) and answers entity spans with character offsets; the spans are turned back into one BIO2
tag per CoNLL word (a word takes the tag of the span covering its first character: B where the span
starts in it) and scored with seqeval (strict, entity level). So a bundle is scored exactly as it
ships, its own word splitting and all. Latency: batch-1 p50 over the same sentences, the systems
taking turns in blocks of 25. Systems:

- `torch:FOLDER`  a token classifier run by PyTorch (transformers), spans as the bundle makes them
- `bundle:FOLDER` a kdeploy bundle (`Predictor.predict`, onnxruntime)
- `crf:FILE`      a CRF over hand features (sklearn-crfsuite; `crf` trains it), on the text's words
- `spacy:FOLDER`  a spaCy pipeline with an `ner` component (its own tokenizer)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"
BLOCK = 25


def read(split: str) -> tuple[list[list[str]], list[list[str]]]:
    rows = [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    return [r["tokens"] for r in rows], [r["tags"] for r in rows]


def word_features(words: list[str], i: int) -> dict:
    """sklearn-crfsuite's tutorial features (the word, its suffixes, shape, and its neighbours')."""
    w = words[i]
    f = {"bias": 1.0, "lower": w.lower(), "suffix3": w[-3:], "suffix2": w[-2:], "prefix3": w[:3],
         "is_upper": w.isupper(), "is_title": w.istitle(), "is_digit": w.isdigit(),
         "shape": "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in w)[:6]}
    for d, name in ((-1, "prev"), (1, "next"), (-2, "prev2"), (2, "next2")):
        j = i + d
        if 0 <= j < len(words):
            f.update({f"{name}:lower": words[j].lower(), f"{name}:is_title": words[j].istitle(),
                      f"{name}:is_upper": words[j].isupper()})
        else:
            f[f"{name}:none"] = True
    return f


def train_crf(out: Path) -> dict:
    """L-BFGS with L1/L2 (c1 0.1, c2 0.1, 100 iterations: the tutorial's), saved in crfsuite's own
    format (no pickle)."""
    import sklearn_crfsuite

    words, tags = read("train")
    t0 = time.perf_counter()
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100, all_possible_transitions=True,
                               model_filename=str(out), keep_tempfiles=False)
    crf.fit([[word_features(w, i) for i in range(len(w))] for w in words], tags)
    return {"train_seconds": round(time.perf_counter() - t0, 1), "sentences": len(words)}


def train_spacy(out: Path, epochs: int) -> dict:
    """spaCy's own NER recipe: `spacy init config --pipeline ner --optimize efficiency` (its CNN
    tok2vec, no pretrained vectors: what `spacy train` gives a practitioner on a CPU), trained on
    CoNLL train with dev for its checkpoint choice, `epochs` passes at most. spaCy is not a kdeploy
    dependency: `pip install --target DIR spacy` and PYTHONPATH=DIR (bench/ner_conll.sh says how)."""
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.cli.train import train
    from spacy.tokens import Doc, DocBin

    nlp = spacy.blank("en")
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        words, tags = read(split)
        docs = DocBin()
        for w, t in zip(words, tags):
            docs.add(Doc(nlp.vocab, words=w, spaces=[True] * (len(w) - 1) + [False], ents=t))
        docs.to_disk(out / f"{split}.spacy")
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["training"]["max_epochs"] = epochs
    config.to_disk(out / "config.cfg")
    t0 = time.perf_counter()
    train(out / "config.cfg", out / "model", overrides={"paths.train": str(out / "train.spacy"),
                                                        "paths.dev": str(out / "dev.spacy")})
    return {"train_seconds": round(time.perf_counter() - t0, 1), "model": str(out / "model" / "model-best"),
            "epochs": epochs, "config": "spacy init config --lang en --pipeline ner --optimize efficiency"}


def offsets(words: list[str]) -> list[tuple[int, int]]:
    out, at = [], 0
    for w in words:
        out.append((at, at + len(w)))
        at += len(w) + 1
    return out


def tags_of(spans: list[tuple[str, int, int]], words: list[str]) -> list[str]:
    """Spans (type, start, end) → one BIO2 tag per word, by each word's first character."""
    tags = []
    for a, b in offsets(words):
        hit = next(((k, s, e) for k, s, e in spans if s < b and e > a), None)
        if hit is None:
            tags.append("O")
        else:
            k, s, _ = hit
            tags.append(f"B-{k}" if s >= a else f"I-{k}")
    return tags


class System:
    def __init__(self, name: str, spec: str, threads: int):
        self.name, self.spec = name, spec
        kind, _, path = spec.partition(":")
        if kind == "bundle":
            from kdeploy.edge import Predictor

            p = Predictor(path, threads=threads)
            self.kind = f"kdeploy bundle ({p.manifest.dtype}, onnxruntime)"
            self.run = lambda texts: [[(e.entity, e.start, e.end) for e in r.entities] for r in p.predict(texts)]
        elif kind == "torch":
            import torch
            from transformers import AutoModelForTokenClassification, AutoTokenizer

            from kdeploy.modelio.words import text_spans
            from kdeploy.tasks.tokens import softmax

            torch.set_num_threads(threads)
            model = AutoModelForTokenClassification.from_pretrained(path).eval()
            tok = AutoTokenizer.from_pretrained(path)
            names = [model.config.id2label[i] for i in range(model.config.num_labels)]
            self.kind = "PyTorch fp32 (transformers)"

            def run(texts):
                out = []
                for t in texts:
                    enc = tok(t, return_offsets_mapping=True, truncation=True, max_length=512)
                    with torch.inference_mode():
                        logits = model(input_ids=torch.tensor([enc["input_ids"]]),
                                       attention_mask=torch.tensor([enc["attention_mask"]])).logits[0].numpy()
                    spans = text_spans(t, enc["offset_mapping"], enc.word_ids(), softmax(logits), names)
                    out.append([(s["entity"], s["start"], s["end"]) for s in spans])
                return out
            self.run = run
        elif kind == "crf":
            import pycrfsuite

            tagger = pycrfsuite.Tagger()
            tagger.open(path)
            self.kind = "CRF, hand features (sklearn-crfsuite)"

            def run(texts):
                out = []
                for t in texts:
                    words = t.split(" ")
                    tags = tagger.tag([word_features(words, i) for i in range(len(words))])
                    spans, at = [], offsets(words)
                    from kdeploy.tasks.tokens import word_spans

                    for k, a, b in word_spans(tags):
                        spans.append((k, at[a][0], at[b - 1][1]))
                    out.append(spans)
                return out
            self.run = run
        elif kind == "spacy":
            import spacy

            nlp = spacy.load(path)
            self.kind = f"spaCy {spacy.__version__} ({', '.join(nlp.pipe_names)})"
            self.run = lambda texts: [[(e.label_, e.start_char, e.end_char) for e in d.ents] for d in nlp.pipe(texts)]
        else:
            raise SystemExit(f"unknown system {spec!r}: torch:, bundle:, crf: or spacy:")


def quality(system: System, words: list[list[str]], gold: list[list[str]]) -> tuple[dict, list]:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    texts = [" ".join(w) for w in words]
    spans = []
    for start in range(0, len(texts), 64):
        spans += system.run(texts[start:start + 64])
    predicted = [tags_of(s, w) for s, w in zip(spans, words)]
    r = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {k: round(100 * v["f1-score"], 2) for k, v in r.items() if "avg" not in k}
    return {"entity_f1": round(100 * r["micro avg"]["f1-score"], 2),
            "precision": round(100 * r["micro avg"]["precision"], 2),
            "recall": round(100 * r["micro avg"]["recall"], 2), "per_type_f1": per_type}, spans


def timings(systems: list[System], texts: list[str], calls: int) -> dict:
    for s in systems:
        s.run(texts[:8])  # warm-up
    one = {s.name: [] for s in systems}
    for start in range(0, calls, BLOCK):
        for s in systems:
            s.run(texts[start:start + 2])
            for t in texts[start:start + BLOCK]:
                t0 = time.perf_counter()
                s.run([t])
                one[s.name].append(time.perf_counter() - t0)
    return {k: {"bs1_p50_ms": round(1000 * float(np.median(v)), 3)} for k, v in one.items()}


def report(args) -> None:
    from kdeploy.environment import _PACKAGES, library_versions, machine

    words, gold = read("test")
    if args.limit:  # a quick check of the script, not a measurement
        words, gold = words[:args.limit], gold[:args.limit]
    systems = [System(*spec.split("=", 1), args.threads) for spec in args.systems]
    rows, spans = {}, {}
    for s in systems:
        rows[s.name], spans[s.name] = quality(s, words, gold)
        rows[s.name]["kind"], rows[s.name]["spec"] = s.kind, s.spec
    for name, t in timings(systems, [" ".join(w) for w in words], args.calls).items():
        rows[name].update(t)
    ref = systems[0].name
    for r in rows.values():
        r["of_reference_f1"] = round(100 * r["entity_f1"] / rows[ref]["entity_f1"], 2)
        r["bs1_speedup"] = round(rows[ref]["bs1_p50_ms"] / r["bs1_p50_ms"], 2)
    pairs = {}
    for a, b in (p.split(":") for p in args.same_spans or []):  # span mismatches, sentence by sentence
        pairs[f"{a} vs {b}"] = sum(x != y for x, y in zip(spans[a], spans[b]))
    command = "python bench/ner_conll.py report " + " ".join(sys.argv[2:])
    out = {"machine": machine(), "versions": library_versions((*_PACKAGES, "seqeval", "sklearn-crfsuite", "spacy")),
           "command": command, "threads": args.threads, "alone": "run alone on the machine (nothing else running)",
           "sentences": len(words), "reference": ref, "systems": rows, "span_mismatches": pairs}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    mc = out["machine"]
    lines = [f"# Entity taggers on CoNLL-2003 ({args.name})", "",
             f"Machine: {mc.get('cpu')}, {mc.get('cores')} cores, class {mc.get('cpu_class')}; {args.threads} threads; "
             f"run alone. Quality: CoNLL-2003 test ({len(words):,} sentences), each read as one text, its spans "
             "turned back into a tag per word, entity-level F1 (seqeval, strict BIO2). Latency: batch-1 p50 over "
             f"{args.calls} test sentences, the systems taking turns in blocks of {BLOCK}. Command: `{command}`.", "",
             "| system | runs as | entity F1 | P | R | % of reference F1 | bs1 p50 ms | bs1 speed-up | F1 per type |",
             "|" + "---|" * 9]
    for name, r in rows.items():
        types = ", ".join(f"{k} {v:.1f}" for k, v in r["per_type_f1"].items())
        lines.append(f"| {name} | {r['kind']} | {r['entity_f1']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['of_reference_f1']:.1f}% | {r['bs1_p50_ms']:.2f} | {r['bs1_speedup']:.1f}× | {types} |")
    if pairs:
        lines += ["", "Span mismatches (sentences whose spans differ): "
                  + "; ".join(f"{k}: {v}" for k, v in pairs.items())]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crf")
    c.add_argument("--out", default="runs/conll/crf.crfsuite")
    sp = sub.add_parser("spacy")
    sp.add_argument("--out", default="runs/conll/spacy")
    sp.add_argument("--epochs", type=int, default=10)
    r = sub.add_parser("report")
    r.add_argument("systems", nargs="+", help="name=torch:FOLDER | bundle:FOLDER | crf:FILE | spacy:FOLDER")
    r.add_argument("--name", default="ner_conll")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--calls", type=int, default=300)
    r.add_argument("--limit", type=int, help="the first N test sentences only (a check of the script)")
    r.add_argument("--same-spans", nargs="*", help="A:B pairs whose spans are compared sentence by sentence")
    args = ap.parse_args()
    if args.cmd == "crf":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        print(json.dumps(train_crf(Path(args.out))))
    elif args.cmd == "spacy":
        print(json.dumps(train_spacy(Path(args.out), args.epochs)))
    else:
        report(args)


if __name__ == "__main__":
    main()
