"""The quickstart notebook runs top to bottom (on a tiny model)."""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KDEPLOY_QUICKSTART", "tiny")
    monkeypatch.setenv("KDEPLOY_QUICKSTART_DIR", str(tmp_path / "qs"))
    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) == 3  # the report's plots
    assert (tmp_path / "qs" / "bundle.tar.gz").exists()
    last = nb.cells[-1].outputs[-1]["data"]["text/plain"]
    assert "ClassPrediction(label=" in last and "probabilities=" in last  # the typed prediction
