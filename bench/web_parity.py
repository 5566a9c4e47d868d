"""One answer on every runtime: the Python predictor, the single-file e2e ONNX model, Node
(transformers.js + onnxruntime-node) and headless Chromium (transformers.js + onnxruntime-web
WASM, the web bundle's own index.html served from localhost), over a test split plus the
hostile-text list; with each runtime's end-to-end batch-1 latency (text → probabilities).

    (cd bench/web && ONNXRUNTIME_NODE_INSTALL=skip npm install)   # once; apt-get install chromium
    python bench/web_parity.py --export runs/demo/onnx --name bundle_runtimes

Every runtime gets one text per call (what a browser page does); the Python predictor's own
batching is measured against it too ("python, batched"): calibrated int8 must not move, dynamic
int8 (activations scaled per call) does. Not part of `make test` (npm packages and a browser are ~700 MB); the
default suite builds both bundles from a tiny model, and tests/test_bundle_formats.py runs
this script when bench/web/node_modules and chromium are present (marked `web`).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "bench" / "web"
VENDOR_DIRS = ["node_modules/@huggingface/transformers/dist",
               "node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist",
               "node_modules/onnxruntime-web/dist"]


#: Whom each runtime is compared with: the JS runtimes with the Python predictor on the same web
#: bundle (same file, every load-time fusion on, as JS runs it); that bundle with the python bundle,
#: whose export fusion plan may switch a fusion off (lean: SkipLayerNorm), which JS cannot do.
REFERENCE = {"node": "python (web bundle)", "chromium": "python (web bundle)"}


def texts_of(export: Path, split: str, limit: int | None, data_file: str | None = None) -> tuple[list[str], str]:
    """The split's texts: of --data FILE, else of the data the student was trained on."""
    from kdeploy.data import DataConfig, data_still_there, load_task_data
    from kdeploy.export.result import REPORT, ExportResult

    if data_file:
        data, split = DataConfig(test=data_file), "test"
    else:
        recorded = (ExportResult.load(export / REPORT).provenance or {}).get("data")
        data = data_still_there(recorded)
    if data is None:
        raise SystemExit(f"{export}: the export records no data whose files are still there; give --data FILE")
    from kdeploy.modelio.record import as_model_task, task_of_model

    task = load_task_data(as_model_task(data, task_of_model(export)))
    texts = list(task.splits[split]["text"])[:limit]
    return texts, f"{data.dataset or data.test} {split} split ({len(texts)} texts)"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The bundle at /, the npm packages' browser files at /vendor/; cross-origin isolated so
    onnxruntime-web may use threads."""

    def __init__(self, *args, bundle: Path, **kwargs):
        self.bundle = bundle
        super().__init__(*args, directory=str(bundle), **kwargs)

    def translate_path(self, path):
        name = path.split("?")[0]
        if name.startswith("/vendor/"):
            leaf = Path(name).name
            for folder in VENDOR_DIRS:
                if (WEB / folder / leaf).is_file():
                    return str(WEB / folder / leaf)
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def serve(bundle: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, bundle=bundle))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def python_runs(bundle: Path, texts: list[str], threads: int, provider: str = "cpu") -> dict:
    from kdeploy.edge import Predictor

    p = Predictor(bundle, threads=threads, provider=provider)
    for t in texts[:10]:
        p.predict([t], batch_size=1)
    results = []
    for t in texts:
        t0 = time.perf_counter()
        r = p.predict([t], batch_size=1)[0]
        results.append({"probabilities": r.by_label(), "ms": 1000 * (time.perf_counter() - t0)})
    return {"results": results, "labels": p.labels, "thresholds": p.thresholds}


def node_runs(script: str, target: str, texts_file: Path, work: Path) -> dict:
    out = work / f"{script}.json"
    cmd = ["node", str(WEB / script), target, str(texts_file), str(out)]
    run = subprocess.run(cmd, cwd=WEB, capture_output=True, text=True, timeout=3600)
    if run.returncode != 0:
        raise SystemExit(f"{script} failed:\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())


def decided(scores: dict[str, float], thresholds: dict[str, float] | None):
    """What a runtime's scores decide: the best label, or (multi-label) the labels at or above
    their thresholds, as every kdeploy format applies them."""
    if thresholds:
        return sorted(k for k, v in scores.items() if v >= thresholds[k])
    return max(scores, key=scores.get)


def compare(reference: list[dict], other: list[dict], labels: list[str], texts: list[str], n_test: int,
            thresholds: dict[str, float] | None = None) -> dict:
    def stats(rows):
        agree = sum(decided(r["probabilities"], thresholds) == decided(o["probabilities"], thresholds)
                    for _, r, o in rows)
        diffs = sorted(((max(abs(r["probabilities"][k] - o["probabilities"][k]) for k in labels), t)
                        for t, r, o in rows), reverse=True)
        return {"texts": len(rows), "agreement": agree / max(len(rows), 1),
                "max_abs_diff": diffs[0][0] if diffs else 0.0,
                "worst": [{"diff": d, "text": repr(t)[:80]} for d, t in diffs[:3]]}

    rows = list(zip(texts, reference, other))
    return {"test": stats(rows[:n_test]), "hostile": stats(rows[n_test:])}


def latency(results: list[dict], n_test: int) -> dict:
    ms = sorted(r["ms"] for r in results[:n_test])
    return {"p50_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (len(ms) - 1))], "texts": len(ms)}


def main() -> None:
    from kdeploy.configtools import settings_from
    from kdeploy.edge import BundleError
    from kdeploy.data import DataConfig
    from kdeploy.environment import library_versions, machine
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.package.hostile_texts import HOSTILE_TEXTS

    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True, type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--data", default=None, help="a labelled file whose texts to use (default: the student's data)")
    ap.add_argument("--model-file", default=None, help="which ONNX file of the export (default: int8)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default=None, help="write bench/results/NAME.{json,md}")
    ap.add_argument("--json", default=None, help="also write the summary to this file")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    if not (WEB / "node_modules").is_dir():
        raise SystemExit("bench/web/node_modules is missing: (cd bench/web && ONNXRUNTIME_NODE_INSTALL=skip npm install)")

    texts, source = texts_of(args.export, args.split, args.limit, args.data)
    n_test = len(texts)
    everything = texts + list(HOSTILE_TEXTS)
    with tempfile.TemporaryDirectory(prefix="kdeploy-web-parity-") as tmp:
        work = Path(tmp)
        settings = settings_from(PackageSettings, {"formats": ["python", "onnx-e2e", "web"], "archive": "none",
                                                   "model_file": args.model_file})
        bundles = package(settings, export_dir=args.export, out=work / "bundle",
                          data=DataConfig(test=args.data) if args.data else None)
        folders = {r.kind: Path(r.bundle) for r in [bundles, *bundles.others]}
        texts_file = work / "texts.json"
        texts_file.write_text(json.dumps(everything, ensure_ascii=False))
        runs = {}
        python = python_runs(folders["python"], everything, args.threads)
        labels, thresholds = python["labels"], python["thresholds"]
        runs["python"] = python["results"]
        runs["onnx-e2e"] = python_runs(folders["onnx-e2e"], everything, args.threads)["results"]
        runs["python (web bundle)"] = python_runs(folders["web"], everything, args.threads)["results"]
        skipped = {}
        try:  # the python bundle's own file in OpenVINO (it reads QDQ int8, not onnxruntime's integer form)
            import openvino  # noqa: F401

            runs["openvino (python bundle)"] = python_runs(folders["python"], everything, args.threads,
                                                           provider="openvino")["results"]
        except ImportError:
            skipped["openvino (python bundle)"] = "openvino is not installed"
        except BundleError as exc:
            skipped["openvino (python bundle)"] = str(exc).split(": ", 1)[-1]
        node = node_runs("node_check.mjs", str(folders["web"]), texts_file, work)
        runs["node"] = node["results"]
        server = serve(folders["web"])
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
            browser = node_runs("browser_check.mjs", url, texts_file, work)
            browser_version = browser["versions"]["chromium"]
            runs["chromium"] = browser["results"]
        finally:
            server.shutdown()
        from kdeploy.edge import Predictor

        batched = Predictor(folders["python"], threads=args.threads).predict(everything)
        runs_batched = [{"probabilities": r.by_label()} for r in batched]

    summary = {"source": source, "hostile_texts": len(HOSTILE_TEXTS), "threads": args.threads, "skipped": skipped,
               "machine": machine(), "versions": {**library_versions(), "node": node["versions"].get("node"),
                                                 "onnxruntime-node": node["versions"].get("onnxruntime"),
                                                 "chromium": browser_version},
               "runtimes": {}}
    for name, results in runs.items():
        reference = REFERENCE.get(name, "python")
        summary["runtimes"][name] = {"latency": latency(results, n_test), "reference": reference,
                                     "vs_python": compare(runs[reference], results, labels, everything, n_test,
                                                          thresholds)}
    summary["python_batched_vs_python"] = compare(runs["python"], runs_batched, labels, everything, n_test,
                                                  thresholds)
    summary["thresholds"] = thresholds
    lines = render(summary, args)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if args.name:
        out = ROOT / "bench" / "results"
        (out / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


def render(s: dict, args) -> list[str]:
    m = s["machine"]
    lines = ["# One answer on every runtime", "",
             "Command: `python bench/web_parity.py " + " ".join(sys.argv[1:]) + "`",
             f"Texts: the {s['source']} + the {s['hostile_texts']}-text hostile list "
             "(kdeploy/package/hostile_texts.py), one text per call in every runtime.",
             f"Machine: {m.get('cpu')}, {m.get('cores')} cores; Python runtimes with {s['threads']} threads; "
             + ", ".join(f"{k} {v}" for k, v in s["versions"].items() if v), "",
             "| runtime | compared with | label agreement (test) | max abs diff p (test) | agreement (hostile) "
             "| max abs diff p (hostile) | batch-1 p50 ms | p90 ms |", "|---|---|---|---|---|---|---|---|"]
    for name, r in s["runtimes"].items():
        t, h, lat = r["vs_python"]["test"], r["vs_python"]["hostile"], r["latency"]
        lines.append(f"| {name} | {r.get('reference', 'python')} | {100 * t['agreement']:.2f}% | {t['max_abs_diff']:.1e} | {100 * h['agreement']:.2f}% "
                     f"| {h['max_abs_diff']:.1e} | {lat['p50_ms']:.2f} | {lat['p90_ms']:.2f} |")
    for name, why in (s.get("skipped") or {}).items():
        lines.append(f"| {name} | not run: {why} | | | | | | |")
    lines += ["", "The e2e model's one hostile exception is NUL: strings cross the ONNX Runtime API as C strings, "
                  "which end there (its README says so); every other hostile text gives identical tokens.",
              "", "Largest differences:"]
    for name, r in s["runtimes"].items():
        for part in ("test", "hostile"):
            worst = [w for w in r["vs_python"][part]["worst"] if w["diff"] > 1e-6]
            if worst:
                lines.append(f"- {name}, {part}: " + "; ".join(f"{w['diff']:.1e} on {w['text']}" for w in worst))
    b = s["python_batched_vs_python"]
    lines += ["", f"Batch invariance: the Python predictor's default batching (texts grouped by length) against its "
                  f"own one-text calls: label agreement {100 * b['test']['agreement']:.2f}%, "
                  f"max |Δp| {b['test']['max_abs_diff']:.1e} on the test split (dynamic int8, the default before "
                  "calibrated int8, gave 98.59% and 2.0e-1 here)."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
