"""The slim install: in a fresh virtual environment with only kdeploy's core (onnxruntime,
tokenizers, numpy, and the CLI's typer/rich/pyyaml), no torch, a bundle predicts exactly what
the full install predicts. Builds the wheel and installs it from the package index (~20 s)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the film was very good", "", "dull boring plot", "Überraschend gut — ça marche 👍", "good " * 300]


@pytest.fixture(scope="module")
def slim_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slim")
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "wheel"),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    pip = subprocess.run([str(root / "venv/bin/pip"), "install", "-q", *map(str, (root / "wheel").glob("*.whl"))],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return root / "venv"


def test_slim_install_predicts_like_the_full_one(slim_venv, exported_tiny, tmp_path):
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    bundle = package(PackageSettings(), export_dir=exported_tiny, out=tmp_path / "bundle")
    py = slim_venv / "bin" / "python"
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0  # no torch there
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = subprocess.run([str(slim_venv / "bin" / "kdeploy"), "predict", bundle.archive, "--file", str(texts)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    slim = [json.loads(line) for line in out.stdout.splitlines()]
    full = Predictor(bundle.archive).predict(TEXTS)
    assert [r["label"] for r in slim] == [r["label"] for r in full]
    for a, b in zip(slim, full):
        for label in a["probabilities"]:
            assert abs(a["probabilities"][label] - b["probabilities"][label]) <= 1e-6
    refused = subprocess.run([str(slim_venv / "bin" / "kdeploy"), "distill", "--teacher", "x", "--train", "y",
                              "--out", str(tmp_path / "z")], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "pip install 'kdeploy[train]'" in refused.stderr
