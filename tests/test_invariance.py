"""One answer per text: calibrated int8 is batch-invariant and the default; dynamic int8 is
caught by the invariance gate and shipped only when asked, saying so."""
import json

import numpy as np
import onnx
import pytest

from conftest import data_of
from kdeploy.errors import KdeployError
from kdeploy.export.api import export
from kdeploy.export.config import ExportSettings
from kdeploy.modelio.invariance import Invariance, check_invariance

OPEN = dict(optimize=None, max_accuracy_drop=100)  # the tiny model's weights are random: gate on parity alone


def test_check_invariance_golden():
    """A model that sees only its own row passes with 0; one whose output depends on the
    batch's longest member (as dynamic int8's scales do) fails, and the flips are counted."""
    texts = ["a", "bb", "ccc", "dddd " * 10, "e", "ff"]

    def pure(batch):
        return np.array([[len(t) / 100, 1 - len(t) / 100] for t in batch])

    def by_batch(batch):
        longest = max(len(t) for t in batch)
        p = [0.5 - 0.01 * longest + 0.011 * len(t) for t in batch]  # alone: 0.5 + 0.001 * len > 0.5
        return np.array([[x, 1 - x] for x in p])

    ok = check_invariance(pure, texts)
    assert ok == Invariance(texts=6, max_abs_diff=0.0, flips=0, worst="a") and ok.passed
    bad = check_invariance(by_batch, texts)
    assert not bad.passed and bad.max_abs_diff == pytest.approx(0.01 * (50 - 1), abs=1e-9)  # "a" beside the 50-char one
    assert bad.flips == 5  # every short text crosses 0.5 once the long one pads its batch
    assert check_invariance(pure, []).texts == 0


def test_static_is_the_default_and_invariant_dynamic_is_caught(tiny_bert, toy_files, tmp_path):
    assert ExportSettings().quantize == "int8" and ExportSettings().static
    static = export(ExportSettings(**OPEN), model=tiny_bert, out=tmp_path / "s", data=data_of(toy_files))
    info = static.files["model.int8.onnx"]
    assert info.quantization["mode"] == "static" and info.quantization["format"] in ("QOperator", "QDQ")
    assert {c["name"] for c in static.choice["candidates"]} == {"plain+int8", "plain+int8-qdq"}  # both timed
    assert info.batch_invariant is True and info.invariance.max_abs_diff <= 1e-5 and info.invariance.flips == 0
    assert info.invariance.texts == 40  # the whole evaluation split
    dynamic = export(ExportSettings(quantize="int8-dynamic", **OPEN), model=tiny_bert, out=tmp_path / "d",
                     data=data_of(toy_files))
    inv = dynamic.files["model.int8.onnx"].invariance
    assert dynamic.files["model.int8.onnx"].quantization["mode"] == "dynamic"
    assert inv.passed is False and inv.max_abs_diff > 1e-5  # measured and recorded, not gated: it was asked for
    assert static.files["model.onnx"].batch_invariant is True  # fp32 is invariant too


def test_calibration_is_seeded_and_recorded(tiny_bert, toy_files, tmp_path):
    """Same settings, same bytes; the report says which texts calibrated it."""
    for form in ("integer", "qdq"):  # pinned: with auto, timing picks the form
        for run in ("a", "b"):
            a = export(ExportSettings(calibration_samples=50, int8_format=form, **OPEN), model=tiny_bert,
                       out=tmp_path / f"{form}-{run}", data=data_of(toy_files))
        assert (tmp_path / f"{form}-a/model.int8.onnx").read_bytes() == (tmp_path / f"{form}-b/model.int8.onnx").read_bytes()
    q = a.files["model.int8.onnx"].quantization
    assert q["calibration_split"] == "train" and q["calibration_samples"] == 50 and q["calibration_seed"] == 0
    assert len(q["calibration_texts_sha256"]) == 64 and q["calibration_batches"] == 4
    c = export(ExportSettings(calibration_samples=50, calibration_seed=1, **OPEN), model=tiny_bert,
               out=tmp_path / "c", data=data_of(toy_files))
    assert c.files["model.int8.onnx"].quantization["calibration_texts_sha256"] != q["calibration_texts_sha256"]


def test_a_model_with_a_pooler_quantises_statically(tiny_bert, toy_files, tmp_path):
    """Regression: onnxruntime's quantiser raised on the pooler's Gemm bias ('Unable to get valid
    quantization scale for input .../pooler/Gather_output_0'). Gemm now stays fp32."""
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tiny_bert).bert.pooler is not None
    report = export(ExportSettings(quantize="int8-static", int8_format="qdq", **OPEN),
                    model=tiny_bert, out=tmp_path / "q", data=data_of(toy_files))
    graph = onnx.load(str(tmp_path / "q/model.int8.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert report.files["model.int8.onnx"].quantization["format"] == "QDQ"
    assert ops.count("DequantizeLinear") >= 4 * 6  # q, k, v, out, ffn up/down in each of 4 layers
    assert report.files["model.int8.onnx"].batch_invariant
    gemm_inputs = {i for n in graph.node if n.op_type == "Gemm" for i in n.input}
    producers = {o: n.op_type for n in graph.node for o in n.output}
    assert not any(producers.get(i) == "DequantizeLinear" for i in gemm_inputs)  # pooler/classifier fp32


def test_every_quantiser_failure_is_one_error_line(tiny_bert, toy_files, tmp_path, monkeypatch):
    import onnxruntime.quantization as q

    def broken(*args, **kwargs):
        raise ValueError("Unable to get valid quantization scale for input 'x'")

    monkeypatch.setattr(q, "quantize_static", broken)
    with pytest.raises(KdeployError, match=r"static int8 quantisation of model.onnx failed: Unable to get valid "
                                           r".*--quantize int8-dynamic"):
        export(ExportSettings(**OPEN), model=tiny_bert, out=tmp_path / "x", data=data_of(toy_files))
    assert not (tmp_path / "x").exists()


def test_an_invariance_failure_is_refused_for_the_default(tiny_bert, toy_files, tmp_path, monkeypatch):
    """If a calibrated file moved with the batch (a kernel that re-scales), the default refuses it."""
    from kdeploy.modelio import invariance

    real = invariance.check_invariance

    def moving(run, examples, task="classification", tolerance=invariance.TOLERANCE, thresholds=None):
        got = real(run, examples, task, tolerance, thresholds)
        got.max_abs_diff, got.flips = 0.02, 1
        return got

    monkeypatch.setattr(invariance, "check_invariance", moving)
    with pytest.raises(KdeployError, match="no calibrated int8 candidate is batch-invariant .*--quantize int8-dynamic"):
        export(ExportSettings(**OPEN), model=tiny_bert, out=tmp_path / "x", data=data_of(toy_files))


def test_bundles_say_whether_they_are_invariant(tiny_bert, toy_files, tmp_path):
    """python and web bundles of the static file pass the gate on the bundle itself; a dynamic
    file's bundle is written, says so in its manifest and card, and the predictor exposes it."""
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    for mode in ("int8", "int8-dynamic"):
        export(ExportSettings(quantize=mode, **OPEN), model=tiny_bert, out=tmp_path / mode, data=data_of(toy_files))
        result = package(PackageSettings(archive=None, formats=["python", "web"]), export_dir=tmp_path / mode,
                         out=tmp_path / f"b-{mode}", data=data_of(toy_files))
        for bundle in [result, *result.others]:
            manifest = json.loads((tmp_path / bundle.bundle / "bundle.json").read_text())
            card = (tmp_path / bundle.bundle / "README.md").read_text()
            assert manifest["batch_invariant"] is (mode == "int8"), (mode, bundle.kind)
            assert manifest["invariance"]["texts"] >= 40
            assert ("Batch-invariant:" in card) is (mode == "int8") and ("Not batch-invariant" in card) is (mode != "int8")
        predictor = Predictor(result.bundle)
        assert predictor.batch_invariant is (mode == "int8")
        if mode == "int8":
            texts = ["good film", "the plot was dull and the acting was flat and boring", "fine"]
            together = predictor.predict(texts)
            assert together == [predictor.predict([t])[0] for t in texts]  # exactly, not approximately


def test_one_qdq_file_runs_in_onnxruntime_and_openvino(tiny_bert, toy_files, tmp_path):
    """The same QDQ int8 file, in onnxruntime and in OpenVINO through the predictor: the same
    labels, probabilities close (not equal: OpenVINO's float kernels differ, and a fixed
    quantisation step turns a last-bit difference into one step), one answer per text when a
    text is run alone; OpenVINO is not batch-invariant and the predictor says so. The fused
    `integer` form, which OpenVINO cannot read, is refused in one line naming the form it can."""
    pytest.importorskip("openvino", reason="OpenVINO is optional (pip install openvino)")
    from kdeploy.edge import BundleError, Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    texts = [line.split("\t")[0] for line in toy_files["test"].read_text().splitlines()[1:]]
    for form in ("qdq", "integer"):
        fused = {"optimize": "O2"} if form == "integer" else {}  # the fused form: QAttention, which OpenVINO lacks
        export(ExportSettings(int8_format=form, **{**OPEN, **fused}), model=tiny_bert, out=tmp_path / form,
               data=data_of(toy_files))
        bundle = package(PackageSettings(archive=None), export_dir=tmp_path / form, out=tmp_path / f"b-{form}").bundle
        if form == "integer":
            with pytest.raises(BundleError, match=r"com\.microsoft\..*--int8-format qdq") as caught:
                Predictor(bundle, provider="openvino")
            assert "\n" not in str(caught.value)
            continue
        native, ov = Predictor(bundle), Predictor(bundle, provider="openvino")
        assert native.batch_invariant is True and ov.batch_invariant is False
        a, b = native.predict(texts, batch_size=1), ov.predict(texts, batch_size=1)
        assert [x["label"] for x in a] == [x["label"] for x in b]
        assert max(abs(x["probabilities"][k] - y["probabilities"][k]) for x, y in zip(a, b)
                   for k in x["probabilities"]) <= 2e-2
        assert b == ov.predict(texts, batch_size=1)  # a text alone: the same answer every time
