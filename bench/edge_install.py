"""The slim install on a real bundle: build kdeploy's wheel, install it into a fresh virtual
environment (its core only: onnxruntime, tokenizers, numpy, typer, rich, pyyaml; no torch), run
`kdeploy predict` there over a bundle and a text file, and compare labels and probabilities with
`kdeploy predict` in this (full) environment.

    python bench/edge_install.py --bundle runs/demo/bundle.tar.gz --texts-from builtin:rotten_tomatoes \
        --name edge_install
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def texts_of(spec: str) -> list[str]:
    from kdeploy.data import DataConfig, load_task_data

    data = load_task_data(DataConfig(dataset=spec) if spec.startswith("builtin:") else DataConfig(test=spec))
    return list(data.splits["test"]["text"])


def predict(kdeploy: str, bundle: str, texts: Path) -> list[dict]:
    out = subprocess.run([kdeploy, "predict", bundle, "--file", str(texts)], capture_output=True, text=True,
                         timeout=1200, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--texts-from", required=True, help="builtin:rotten_tomatoes or a labelled test file")
    ap.add_argument("--name", default="edge_install")
    args = ap.parse_args()
    from kdeploy.environment import library_versions, machine

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "wheel"), str(ROOT)],
                       check=True)
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        install = [str(tmp / "venv/bin/pip"), "install", "-q", *map(str, (tmp / "wheel").glob("*.whl"))]
        subprocess.run(install, check=True)
        freeze = subprocess.run([str(tmp / "venv/bin/pip"), "freeze"], capture_output=True, text=True).stdout.splitlines()
        freeze = [line.split(" @ ")[0] for line in freeze]
        has_torch = subprocess.run([str(tmp / "venv/bin/python"), "-c", "import torch"],
                                   capture_output=True).returncode == 0
        texts = texts_of(args.texts_from)
        file = tmp / "texts.txt"
        file.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
        slim = predict(str(tmp / "venv/bin/kdeploy"), args.bundle, file)
        full = predict(str(Path(sys.executable).with_name("kdeploy")), args.bundle, file)
    agree = sum(a["label"] == b["label"] for a, b in zip(slim, full))
    worst = max(abs(a["probabilities"][k] - b["probabilities"][k]) for a, b in zip(slim, full) for k in a["probabilities"])
    result = {"bundle": args.bundle, "texts": len(texts), "label_agreement": agree / len(texts),
              "max_abs_probability_difference": worst, "slim_environment": freeze, "torch_importable": has_torch,
              "machine": machine(), "versions": library_versions()}
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{args.name}.md").write_text("\n".join([
        "# The slim (torch-free) install predicts what the full one predicts", "",
        f"Command: `python bench/edge_install.py --bundle {args.bundle} --texts-from {args.texts_from} --name {args.name}`",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; full environment: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
        "Fresh virtual environment: `pip install kdeploy-*.whl` (the core only), holding: " + ", ".join(freeze)
        + f". `import torch` there: {'works' if has_torch else 'fails (not installed)'}.", "",
        "| texts | label agreement | max abs probability difference |", "|---|---|---|",
        f"| {len(texts)} | {100 * result['label_agreement']:.2f}% | {worst:.2e} |", ""]))
    print(json.dumps({k: v for k, v in result.items() if k != "slim_environment"}, indent=1))
    if agree != len(texts) or worst > 1e-6 or has_torch:
        sys.exit(1)


if __name__ == "__main__":
    main()
