"""The documentation site builds strictly (a broken link or a missing reference fails), and the pages
generated at build time are there: the CLI reference from the Typer app, one measurements page per
results file in bench/results/, the API reference from the docstrings. And the README stays a map."""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install 'kdeploy[docs]' (make test installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_cli_reference_lists_every_command(site):
    import typer

    import kdeploy.cli  # noqa: F401  (registers the commands)
    from kdeploy.cli.app import app

    page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    commands = typer.main.get_command(app).commands
    assert "distill" in commands
    for name, command in commands.items():
        assert f'id="{name}"' in page, f"kdeploy {name} is missing from the CLI reference"
    assert "--student-layers" in page and "--max-accuracy-drop" in page  # options, with their help


def test_one_measurements_page_per_results_file(site):
    index = (site / "measurements" / "index.html").read_text(encoding="utf-8")
    files = sorted(RESULTS.glob("*.json"))
    assert files
    for path in files:
        page = site / "measurements" / f"{path.stem}.html"
        assert page.is_file(), f"no measurements page for {path.name}"
        assert f'href="{path.stem}.html"' in index, f"the measurements index does not link {path.name}"
        text = page.read_text(encoding="utf-8")
        data = json.loads(path.read_text(encoding="utf-8"))
        machine = data.get("machine") or (data.get("environment") or {}).get("machine")
        if isinstance(machine, dict) and machine.get("cpu"):
            assert html.escape(machine["cpu"], quote=False) in text  # the CPU it names
        elif "machine" not in json.dumps(data):
            assert "machine not recorded" in text.lower()


def test_api_reference_from_docstrings(site):
    page = (site / "reference" / "api" / "edge.html").read_text(encoding="utf-8")
    assert "Predictor" in page and 'id="kdeploy.edge.Predictor.predict"' in page
    stages = (site / "reference" / "api" / "stages.html").read_text(encoding="utf-8")
    assert 'id="kdeploy.distill.api.distill"' in stages and 'id="kdeploy.export.api.export"' in stages


def test_guides_are_built(site):
    for page in ("index.html", "getting-started.html", "tutorials/multi-label.html", "concepts/gates.html",
                 "how-to/e2e-bundle.html"):
        assert (site / page).is_file(), page
    e2e = (site / "how-to" / "e2e-bundle.html").read_text(encoding="utf-8")
    assert "RegisterCustomOpsLibrary" in e2e  # the usage code, taken from the model card's writer


def test_readme_is_a_map():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; detail belongs in docs/"
