"""The runtime stage: latency statistics, provider checks, and the reports."""
import json

import numpy as np
import pytest

from kdeploy.errors import KdeployError
from kdeploy.runtime.latency import Latency
from kdeploy.runtime.report import pareto_front


def test_latency_statistics_on_known_values():
    lat = Latency.from_values([0.001 * v for v in range(1, 101)], batch_size=4)  # 1..100 ms
    s = lat.summary()
    assert s.calls == 100
    assert s.mean_ms == pytest.approx(50.5)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.min_ms == pytest.approx(1.0) and s.max_ms == pytest.approx(100.0)
    assert s.stdev_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.throughput_per_s == pytest.approx(4 * 100 / 5.05)
    assert lat.to_markdown_row("m").startswith("| m | 50.50 | 90.10 | 99.01 |")
    with pytest.raises(ValueError):
        Latency.from_values([])


def test_pareto_front():
    pts = [(1.0, 80.0), (2.0, 85.0), (3.0, 84.0), (0.5, 70.0), (2.0, 83.0)]
    assert pareto_front(pts) == [3, 0, 1]


def test_missing_provider_is_a_clear_error(tmp_path):
    import onnxruntime as ort

    from kdeploy.modelio.onnx_session import create_session

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(KdeployError, match=r"CUDAExecutionProvider is not available .*pip install onnxruntime-gpu"):
        create_session(tmp_path / "m.onnx", provider="cuda")
    with pytest.raises(KdeployError, match="unknown provider 'tpu'"):
        create_session(tmp_path / "m.onnx", provider="tpu")


def test_silent_fallback_is_refused(monkeypatch, tmp_path):
    """A session that reports another provider than asked for is an error unless allowed."""
    import onnxruntime as ort

    from kdeploy.modelio import onnx_session as session_module

    class FakeSession:
        def __init__(self, *a, **k):
            pass

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    with pytest.raises(KdeployError, match="asked for CUDAExecutionProvider but onnxruntime fell back to CPUExecutionProvider"):
        session_module.create_session(tmp_path / "m.onnx", provider="cuda")
    assert session_module.create_session(tmp_path / "m.onnx", provider="cuda", allow_fallback=True)


@pytest.fixture(scope="module")
def exported(exported_tiny):
    return exported_tiny


def test_bench_reports(tiny_bert, exported, toy_files, tmp_path):
    from kdeploy.data import DataConfig
    from kdeploy.runtime.bench import bench
    from kdeploy.runtime.config import BenchSettings
    from kdeploy.runtime.result import BenchReport

    out = tmp_path / "report"
    report = bench(BenchSettings(batch_sizes=[1, 4], iterations=10, warmup=1, threads=1),
                   models=[str(tiny_bert), f"{tiny_bert}@int8", str(exported)], out=out,
                   data=DataConfig(test=str(toy_files["test"])))
    saved = json.loads((out / "report.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert BenchReport.load(out / "report.json").to_dict() == report.to_dict()
    assert report.models[0].latency[1].calls == 10  # typed: batch sizes are ints in Python
    assert report.accuracy_split == "test" and report.data["sizes"] == {"test": 40}  # an evaluation file is not split
    names = [m["name"] for m in saved["models"]]
    assert len(names) == 4 and names[0].endswith("(pytorch)") and any("int8" in n for n in names)
    for m in saved["models"]:
        assert set(m["latency"]) == {"1", "4"}
        for key in ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "stdev_ms", "throughput_per_s", "calls"):
            assert key in m["latency"]["1"]
        assert m["latency"]["1"]["calls"] == 10
        assert m["size_mib"] > 0 and m["threads"] == 1 and m["provider"]
        assert 0 <= m["accuracy"]["metrics"]["accuracy"] <= 1 and "agreement" in m["accuracy"]
    onnx_fp32 = next(m for m in saved["models"] if m["name"].endswith("model.onnx"))
    assert onnx_fp32["accuracy"]["agreement"] == 1.0  # same function as the PyTorch reference
    assert onnx_fp32["provider"] == "CPUExecutionProvider"
    env = saved["environment"]
    assert env["machine"]["cores"] and "onnxruntime" in env["versions"] and "torch" in env["versions"]
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3  # accuracy-vs-latency, size, latency distribution
    assert "http://" not in page and "https://" not in page  # opens offline
    md = (out / "report.md").read_text()
    assert "## Batch 1" in md and "## Batch 4" in md and "| model | size MiB" in md


def test_bench_cli(exported, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r"
    result = subprocess.run([sys.executable, "-m", "kdeploy", "bench", str(exported / "model.onnx"), "--out", str(out),
                             "--iterations", "5", "--warmup", "1", "--batch-sizes", "1", "--seq-length", "16"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "report.html" in result.stdout and (out / "report.md").exists()
    bad = subprocess.run([sys.executable, "-m", "kdeploy", "bench", str(exported / "model.onnx"), "--out", str(out),
                          "--provider", "cuda"], capture_output=True, text=True, timeout=300)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert bad.returncode == 2 and "error: CUDAExecutionProvider is not available" in bad.stderr


def test_same_file_names_from_different_runs_are_kept_apart(exported, tmp_path):
    """Two runs' onnx/model.int8.onnx (each with its own tokenizer) are two models, not one."""
    import shutil
    from pathlib import Path

    from kdeploy.runtime.bench import benchmark
    from kdeploy.runtime.candidates import unique_names
    from kdeploy.runtime.config import BenchSettings

    for run in ("a", "b"):
        shutil.copytree(exported, tmp_path / run / "onnx")
    _, report = benchmark(BenchSettings(batch_sizes=[1], iterations=2, warmup=0, threads=1),
                          models=[str(tmp_path / r / "onnx" / "model.int8.onnx") for r in "ab"])
    assert [m.name for m in report.models] == ["a/onnx/model.int8.onnx", "b/onnx/model.int8.onnx"]
    teacher = ("teacher (pytorch)", Path("x/teacher"), "pytorch")
    assert unique_names([teacher])[0][0] == "teacher (pytorch)"  # unique names are left alone
    with pytest.raises(KdeployError, match="given twice"):
        unique_names([teacher, teacher])


def test_teacher_is_named_or_given_as_its_path(tiny_bert, exported, tmp_path):
    """--teacher takes the path a user passed among the models, not only the report's name for it."""
    from kdeploy.runtime.bench import _entries
    from kdeploy.runtime.config import BenchSettings

    models = [str(tiny_bert), str(exported / "model.onnx")]
    settings = BenchSettings(batch_sizes=[1])
    by_name = _entries(settings, models, None)[0][0][0]
    assert _entries(settings, models, str(tiny_bert))[1] == by_name
    assert _entries(settings, models, by_name)[1] == by_name
    assert _entries(settings, models, str(exported / "model.onnx"))[1] != by_name
    with pytest.raises(KdeployError, match="not among the models"):
        _entries(settings, models, str(tmp_path))
