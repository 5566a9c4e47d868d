"""The runtime's own arithmetic: batching that keeps input order, MACs counted on a known graph,
the machine's GEMM peaks, the machine-load flag, and runtime kinds that skip cleanly."""
from pathlib import Path

import numpy as np
import pytest

from kdeploy.modelio.batching import batched_logits, buckets, token_batches


def test_token_batches_respect_the_budget_and_return_every_index_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, size=500).tolist()
    seen = []
    for idx in token_batches(lengths, max_tokens=512, max_batch=32):
        assert len(idx) <= 32
        assert len(idx) == 1 or len(idx) * max(lengths[i] for i in idx) <= 512
        seen += idx.tolist()
    assert sorted(seen) == list(range(500))


def test_bucketed_inference_returns_results_in_input_order():
    texts = ["ccc", "a", "bbbbbb", "dd", "", "eeeee"] * 7
    run = lambda batch: np.array([[len(t), -len(t)] for t in batch], dtype=np.float32)  # noqa: E731
    out = batched_logits(run, texts, batch_size=4)
    np.testing.assert_array_equal(out[:, 0], [len(t) for t in texts])
    assert sorted(i for idx in buckets(texts, 5) for i in idx.tolist()) == list(range(len(texts)))


def test_the_predictor_keeps_input_order_whatever_the_batching(exported_tiny, tmp_path):
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    # the fp32 file: dynamic int8 quantises activations per batch, so its outputs move a little with
    # the batch's make-up; fp32 BERT is padding-invariant, so any difference would be a reordering bug
    package(PackageSettings(archive=None, model_file="model.onnx"), export_dir=exported_tiny, out=tmp_path / "b")
    p = Predictor(tmp_path / "b")
    texts = ["the film was good " * n for n in (9, 1, 30, 4, 0, 17)]
    alone = [p.predict([t])[0] for t in texts]
    for kwargs in ({}, {"batch_size": 2}, {"max_tokens": 40}):
        together = p.predict(texts, **kwargs)
        for a, b in zip(alone, together):
            assert a["label"] == b["label"]
            assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-5 for k in a["probabilities"])


def _tiny_graph(path, hidden=16, ffn=64, heads=2):
    """Embedding lookup, one linear layer, self-attention scores and a second linear layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", hidden])]
    inits = [numpy_helper.from_array(rng.standard_normal((100, hidden)).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.standard_normal((hidden, ffn)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((ffn, hidden)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([0, 2, 1], np.int64), "perm")]
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["x"]),
             helper.make_node("MatMul", ["x", "w1"], ["h"]),               # S*hidden*ffn per sequence
             helper.make_node("MatMul", ["h", "w2"], ["y"]),               # S*ffn*hidden
             helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["y", "yt"], ["scores"]),          # S*hidden*S
             helper.make_node("MatMul", ["scores", "y"], ["logits"])]      # S*S*hidden
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return hidden, ffn


def test_macs_are_counted_from_the_graph(tmp_path):
    from kdeploy.runtime.macs import onnx_mac_count, onnx_macs_at

    hidden, ffn = _tiny_graph(tmp_path / "model.onnx")
    assert onnx_macs_at(tmp_path / "model.onnx", 3, 10) == 3 * (2 * 10 * hidden * ffn + 2 * 10 * 10 * hidden)
    count = onnx_mac_count(tmp_path / "model.onnx")
    assert count.b == pytest.approx(2 * hidden * ffn) and count.c == pytest.approx(2 * hidden)
    assert count.a == pytest.approx(0, abs=1e-6)
    assert count.batch(4, 25) == pytest.approx(4 * (25 * 2 * hidden * ffn + 625 * 2 * hidden))


def test_the_shape_tool_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """onnxruntime's shape tool saves `sym_shape_infer_temp.onnx` (+ weights) into the cwd when a
    shape stays unknown (seen with the int8 BiLSTM/static students): it must land elsewhere."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from kdeploy.runtime.macs import onnx_macs_at

    real = SymbolicShapeInference.infer_shapes

    def leaky(model, **kwargs):
        Path("sym_shape_infer_temp.onnx").write_bytes(b"debug")  # what the tool does, into the cwd
        return real(model, **kwargs)

    monkeypatch.setattr(SymbolicShapeInference, "infer_shapes", staticmethod(leaky))
    hidden, ffn = _tiny_graph(tmp_path / "model.onnx")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert onnx_macs_at(tmp_path / "model.onnx", 3, 10) == 3 * (2 * 10 * hidden * ffn + 2 * 10 * 10 * hidden)
    assert list(work.iterdir()) == [] and Path.cwd() == work


def test_macs_of_a_real_export_match_the_pytorch_count(exported_tiny, tiny_bert):
    from kdeploy.modelio.loading import load_classifier
    from kdeploy.runtime.macs import onnx_mac_count, torch_mac_count

    onnx_count = onnx_mac_count(exported_tiny / "model.int8.onnx")
    torch_count = torch_mac_count(load_classifier(str(tiny_bert)).eval())
    assert onnx_count.source in ("model.onnx", "model.int8.onnx")  # an unfused file counts itself
    assert onnx_count.b == pytest.approx(torch_count.b, rel=1e-6)  # the linear layers, per token


def test_gemm_peaks_are_measured():
    from kdeploy.runtime.peaks import gemm_peak

    int8 = gemm_peak("int8", threads=1, seconds=0.2, shape=(256, 256, 256))
    fp32 = gemm_peak("fp32", threads=1, seconds=0.2, shape=(256, 256, 256))
    for peak in (int8, fp32):  # GMAC/s of one core: far above a slow loop, far below any chip
        assert 0.05 < peak < 20_000, peak


def test_a_busy_machine_is_flagged(monkeypatch):
    from kdeploy.runtime import contention

    busy = iter([100.0, 160.0])  # other processes: 60 CPU-seconds over the run
    monkeypatch.setattr(contention, "_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(contention, "_own_seconds", lambda: 0.0)
    times = iter([0.0, 30.0])
    monkeypatch.setattr(contention.time, "perf_counter", lambda: next(times))
    load = contention.MachineLoad.start().stop()
    assert load.other_processes_cores == 2.0 and load.contended and "not to be trusted" in load.warning


def test_runtime_kinds_skip_cleanly_when_their_package_is_absent(monkeypatch, exported_tiny, tiny_bert):
    import importlib.util

    from kdeploy.runtime import candidates

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("openvino", "nncf", "optimum") else real(name, *a))
    context = candidates.Context("cpu", 1, False, None, ["a text"], exported_tiny)
    for kind in ("openvino", "openvino-bf16", "openvino-int8"):
        note = candidates.load_candidate("x", exported_tiny / "model.onnx", kind, context)
        assert isinstance(note, str) and "is not installed" in note
    peer = candidates.load_candidate("t", tiny_bert, "ort-int8", context)  # optimum absent: onnxruntime's quantiser
    assert not isinstance(peer, str) and peer.precision == "int8" and peer.kind == "ort-int8"
    with pytest.raises(Exception, match="runs a PyTorch model folder"):
        candidates.expand(f"{exported_tiny / 'model.onnx'}@pytorch-bf16")
    entries = candidates.expand(str(tiny_bert)) + candidates.expand(str(exported_tiny / "model.int8.onnx"))
    peers = candidates.peers_of(entries, entries[0][0])
    assert f"{tiny_bert}@pytorch-bf16" in peers and f"{exported_tiny / 'model.onnx'}@openvino-int8" in peers


def test_bench_with_peers_runs_the_installed_kinds(tiny_bert, exported_tiny, toy_files, tmp_path):
    from kdeploy.data import DataConfig
    from kdeploy.runtime.bench import benchmark
    from kdeploy.runtime.config import BenchSettings

    _, report = benchmark(BenchSettings(batch_sizes=[1, 4], iterations=4, warmup=1, threads=1, rounds=2),
                          models=[str(tiny_bert), f"{tiny_bert}@bf16", str(exported_tiny / "model.int8.onnx")],
                          data=DataConfig(test=str(toy_files["test"])))
    names = [m.name for m in report.models]
    assert names[1] == "tiny_bert0 (pytorch bf16)" or "bf16" in names[1]
    student = report.models[2]
    assert student.precision == "int8" and student.efficiency[4].achieved_gmacs > 0
    assert 0 <= student.efficiency[4].padding_share < 1 and student.efficiency[4].peak_share > 0
    assert report.peaks["int8_gmacs"] > 0 and report.machine_load["seconds"] > 0
    assert report.headline and "faster than" in report.headline[0]
    assert student.vs_reference.p50_speedup_vs_fastest_reference[1] > 0
    markdown = report.to_markdown()
    assert "## How close to the machine's limit" in markdown
    sizes = markdown.split("## Size, memory and accuracy")[1].split("\n\n")[1].splitlines()[2:]
    assert [row.split(" | ")[0].lstrip("| ") for row in sizes] == names  # one size row per model, not the GMAC rows
    assert f"| {student.size_mib:.1f} |" in sizes[2]


def test_an_openvino_bundle_is_gated_packaged_and_verified(tiny_bert, toy_files, tmp_path):
    """Pick the runtime: the export's OpenVINO IR passes the same gates, bundles, and predicts
    like the ONNX file (skipped where openvino is not installed: pip install 'kdeploy[openvino]')."""
    pytest.importorskip("openvino")
    import json

    from conftest import data_of
    from kdeploy.edge import BundleError, Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    report = export(ExportSettings(optimize=None, quantize=None, openvino=True, max_accuracy_drop=100),
                    model=tiny_bert, out=tmp_path / "onnx", data=data_of(toy_files))
    ov = report.scores("model.ov.xml")
    assert report.files["model.ov.xml"].runtime == "openvino" and ov.gate_passed and ov.agreement >= 0.9
    assert report.parity["model.ov.xml"].max_abs_diff < 0.05  # fp16 weights, bf16 arithmetic
    bundle = package(PackageSettings(model_file="model.ov.xml", archive=None), export_dir=tmp_path / "onnx",
                     out=tmp_path / "b")
    assert bundle.manifest.runtime == {"name": "openvino", "precision": "bf16"}
    assert {"model.xml", "model.bin"} <= set(bundle.manifest.files)
    onnx = package(PackageSettings(model_file="model.onnx", archive=None), export_dir=tmp_path / "onnx",
                   out=tmp_path / "fp32")
    texts = ["the film was good", "dull and boring", "a lovely story " * 10]
    assert [r["label"] for r in Predictor(bundle.bundle).predict(texts)] == \
        [r["label"] for r in Predictor(onnx.bundle).predict(texts)]
    manifest = json.loads((tmp_path / "b" / "bundle.json").read_text())
    manifest["label_names"] = manifest["label_names"][::-1]
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="differ from the ones bound into model.xml"):
        Predictor(tmp_path / "b")
