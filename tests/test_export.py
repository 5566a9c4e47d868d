"""The export stage: round-trip parity at several shapes, the gates failing when they should,
and the output folder's contract."""
import json
import re

import numpy as np
import pytest
import torch

from conftest import data_of as _data
from kdeploy.errors import KdeployError
from kdeploy.export.api import AccuracyGateError, export
from kdeploy.export.config import ExportSettings
from kdeploy.export.parity import ParityError

FP32 = ExportSettings(optimize=None, quantize=None)


@pytest.fixture(scope="module")
def tiny_bilstm(tmp_path_factory, tiny_bert):
    from transformers import AutoTokenizer

    from kdeploy.distill.config import StudentConfig
    from kdeploy.distill.students import build_student

    folder = tmp_path_factory.mktemp("bilstm")
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model, tok, _ = build_student(StudentConfig(kind="bilstm", embedding_dim=16, hidden_size=8), None, tok,
                                  ["negative", "positive"])
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("which", ["tiny_bert", "tiny_bilstm"])
def test_fp32_round_trip_parity_at_many_shapes(request, which, toy_files, tmp_path):
    model_dir = request.getfixturevalue(which)
    report = export(FP32, model=model_dir, out=tmp_path / "onnx", data=_data(toy_files))
    parity = report.parity["model.onnx"]
    assert parity.passed and parity.max_abs_diff <= 1e-4 and parity.argmax_agreement == 1.0
    shapes = {tuple(c["shape"]) for c in parity.cases}
    assert {s[0] for s in shapes} >= {1, 4, 8, 32} and len({s[1] for s in shapes}) >= 3  # batch and length vary
    assert report.exporter == "torch.onnx"  # kdeploy's own exporter for transformers and small students alike

    # independent check: onnxruntime on fresh inputs the gate never saw
    import onnxruntime as ort
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import kdeploy.modelio.small_models  # noqa: F401

    out = tmp_path / "onnx"
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for texts in (["good"], ["the film was very good and the story was fine", "dull", "a b c d e f g h"] * 3):
        enc = tok(texts, padding=True, return_tensors="np")
        feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
        assert np.abs(session.run(None, feeds)[0] - ref).max() < 1e-4


def test_output_folder_contract(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "onnx"
    report = export(ExportSettings(optimize="O2", quantize="int8", max_accuracy_drop=100), model=tiny_bert, out=out,
                    data=_data(toy_files))
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "config.json", "export_report.json"} <= names
    fused = report.choice["chosen"].startswith("O2-")  # calibrated QDQ on the unfused graph may win instead
    assert ("model.opt.onnx" in names) is fused
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["kdeploy"]["max_length"] == 128 and config["kdeploy"]["label_names"] == ["negative", "positive"]
    saved = json.loads((out / "export_report.json").read_text())
    assert saved["parity"]["model.opt.onnx"]["passed"] if fused else "model.opt.onnx" not in saved["parity"]
    assert saved["files"]["model.int8.onnx"]["quantization"]["mode"] == "static"
    assert saved["files"]["model.int8.onnx"]["invariance"]["flips"] == 0
    int8 = saved["accuracy"]["files"]["model.int8.onnx"]
    assert "drop_points" in int8 and "agreement" in int8
    fp32 = saved["accuracy"]["files"]["model.onnx"]
    assert fp32["agreement_with"] == "pytorch" and fp32["agreement"] == 1.0 and fp32["max_abs_diff_vs_pytorch"] < 1e-4
    assert fp32["metrics"]["accuracy"] == saved["accuracy"]["pytorch"]["metrics"]["accuracy"]
    assert "onnxruntime" in saved["versions"] and saved["machine"]["cores"]
    assert report.files["model.int8.onnx"].mib < report.files["model.onnx"].mib
    choice = saved["choice"]  # both fusion plans were built and timed here; the faster one was kept
    assert {c["name"] for c in choice["candidates"] + choice["rejected"]} == {
        "O2-optimum+int8", "O2-lean+int8", "plain+int8-qdq"}  # calibrated int8: integer ops fused, and QDQ
    assert all(c["invariance"]["flips"] == 0 for c in choice["candidates"])
    assert all(c["bs1_p50_ms"] > 0 and c["bs32_per_s"] > 0 for c in choice["candidates"])
    assert choice["chosen"] == choice["candidates"][0]["name"] and "fastest" in choice["why"]
    chosen = next(c for c in choice["candidates"] if c["name"] == choice["chosen"])
    assert config["kdeploy"]["session"]["model.int8.onnx"] == chosen["session"]  # travels with the file
    assert not [p for p in out.iterdir() if p.name.startswith(".candidate")]
    from kdeploy.export.result import ExportResult

    assert ExportResult.load(out / "export_report.json").to_dict() == report.to_dict()  # reads back as it was
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_static_quantization(tiny_bilstm, toy_files, tmp_path):
    report = export(ExportSettings(optimize=None, quantize="int8-static", calibration_samples=32,
                                   calibration_method="percentile", max_accuracy_drop=100),
                    model=tiny_bilstm, out=tmp_path / "q", data=_data(toy_files))
    info = report.files["model.int8.onnx"].quantization
    assert info["mode"] == "static" and info["calibration_batches"] == 2 and info["calibration_method"] == "percentile"
    assert report.scores("model.int8.onnx").examples == 40


def test_parity_gate_fails_on_a_broken_export(tiny_bilstm, toy_files, tmp_path, monkeypatch):
    """An exporter that freezes the sequence length: the gate names the failing shape, nothing is written."""
    from kdeploy.export import onnx as onnx_module

    real = onnx_module.export_small

    def frozen_shapes(model, path, opset):
        wrapper = onnx_module._LogitsOnly(model).eval()
        ids = torch.full((1, 6), 5, dtype=torch.long)
        torch.onnx.export(wrapper, (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=opset, dynamo=False)  # no dynamic axes

    monkeypatch.setattr(onnx_module, "export_small", frozen_shapes)
    with pytest.raises(KdeployError) as err:
        export(FP32, model=tiny_bilstm, out=tmp_path / "bad", data=_data(toy_files))
    assert isinstance(err.value, ParityError)
    assert re.search(r"fails on batch1-\w+ \(input shape \(1, \d+\)\)", str(err.value)), err.value
    assert "fixed shapes" in str(err.value)
    assert not (tmp_path / "bad").exists()
    monkeypatch.setattr(onnx_module, "export_small", real)


def test_parity_gate_fails_on_wrong_numbers(tiny_bilstm, toy_files, tmp_path, monkeypatch):
    """A graph that runs at every shape but computes something else."""
    from kdeploy.export import onnx as onnx_module

    real_export = onnx_module.export_small

    def perturbed(model, path, opset):
        broken = type(model)(model.config).eval()
        broken.load_state_dict(model.state_dict())
        with torch.no_grad():
            broken.classifier.bias.add_(0.01)
        real_export(broken, path, opset)

    monkeypatch.setattr(onnx_module, "export_small", perturbed)
    with pytest.raises(ParityError, match=r"differs from PyTorch by 1\.00e-02 \(tolerance 1e-04\) on batch[\w-]+, input '"):
        export(FP32, model=tiny_bilstm, out=tmp_path / "bad", data=_data(toy_files))
    assert not (tmp_path / "bad").exists()


def test_accuracy_gate_fails_when_threshold_is_impossible(tiny_bert, toy_files, tmp_path, monkeypatch):
    from kdeploy.tasks.classification import Classification

    original = Classification.score

    calls = []

    def pessimistic(self, logits, labels, reference=None, thresholds=None):
        out = original(self, logits, labels, reference, thresholds)
        calls.append(out)
        if len(calls) >= 3:  # scored in order: pytorch, model.onnx, then each int8 attempt: every one "loses" 3 points
            out.metrics["accuracy"] -= 0.03
        return out

    monkeypatch.setattr(Classification, "score", pessimistic)
    with pytest.raises(AccuracyGateError, match="loses 3.00 accuracy points.*--max-accuracy-drop 0.5; on 40 examples "
                                                "it gets 0 wrong .*McNemar p=1.0.*the [23] other int8 variants tried \\(per-tensor, "):
        export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=0.5), model=tiny_bert,
               out=tmp_path / "q", data=_data(toy_files))
    assert not (tmp_path / "q").exists()


def test_quantization_without_labels_is_refused(tiny_bert, tmp_path):
    with pytest.raises(KdeployError, match="accuracy-gated: give labelled data"):
        export(ExportSettings(quantize="int8"), model=tiny_bert, out=tmp_path / "q")


@pytest.mark.parametrize("kwargs,message", [({"optimize": "O9"}, "--optimize must be"), ({"quantize": "int4"}, "--quantize must be"),
                                            ({"isa": "sse2"}, "--isa must be"), ({"calibration_method": "x"}, "calibration-method"),
                                            ({"max_length": -5}, "at least 2 tokens"), ({"atol": float("nan")}, "finite")])
def test_settings_validate_themselves(kwargs, message):
    with pytest.raises(KdeployError, match=message):
        ExportSettings(**kwargs)
    assert ExportSettings(optimize="none", quantize="none").quantize is None  # the CLI's way to say "off"


def test_isa_detection_matches_the_machine():
    """Compared with the flags this test reads itself, not with the preset table."""
    import platform

    from kdeploy.export.quantize import detect_isa

    if platform.machine().lower() in ("arm64", "aarch64"):
        assert detect_isa() == "arm64"
        return
    flags = next((set(line.split(":", 1)[1].split()) for line in open("/proc/cpuinfo") if line.startswith("flags")),
                 set())
    expected = ("avx512_vnni" if {"avx512_vnni", "avx512vnni"} & flags else "avx512" if "avx512f" in flags
                else "avx2")
    assert detect_isa() == expected


def test_the_gate_says_how_sure_it_is():
    """McNemar on the disagreements: golden values from the exact binomial."""
    from kdeploy.metrics import mcnemar

    ref = np.array([1] * 90 + [0] * 10, bool)
    cand = ref.copy()
    cand[:6] = False  # 6 examples only the reference gets right
    cand[90:92] = True  # 2 only the candidate gets right
    test = mcnemar(ref, cand)
    assert test["reference_only_correct"] == 6 and test["candidate_only_correct"] == 2
    assert test["p_value"] == pytest.approx(0.2891, abs=1e-4)  # 2 * P(X <= 2), X ~ Bin(8, 0.5)
    lo, hi = test["drop_ci95_points"]
    assert lo < 4.0 < hi and lo < 0  # a 4-point drop on 100 examples is within noise
    assert mcnemar(ref, ref)["p_value"] == 1.0


def test_export_refuses_a_model_that_is_not_the_one_trained(tiny_base_bert, toy_files, tmp_path):
    """Training records the in-memory model's logits on a few validation texts; export loads
    the model from disk and checks them (issue 25: a reload that changes the model passed
    every gate, because parity compared ONNX with the reloaded model)."""
    from conftest import finetune_settings
    from safetensors.torch import load_file, save_file

    from kdeploy.distill.api import finetune

    record = finetune(finetune_settings(train={"epochs": 1}), model=str(tiny_base_bert), data=_data(toy_files),
                      out=tmp_path / "m")
    assert len(record.reference["texts"]) == 16 and len(record.reference["logits"]) == 16
    exported = export(ExportSettings(optimize=None, quantize=None), model=tmp_path / "m", out=tmp_path / "ok")
    assert exported.provenance["reload_max_abs_diff"] <= 1e-5
    weights = load_file(tmp_path / "m" / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] + 0.5  # the file no longer holds the trained model
    save_file(weights, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KdeployError, match="not the one training ended with"):
        export(ExportSettings(optimize=None, quantize=None), model=tmp_path / "m", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_kdeploy_model_with_missing_weights_is_refused(tiny_base_bert, toy_files, tmp_path):
    from conftest import finetune_settings
    from safetensors.torch import load_file, save_file

    from kdeploy.distill.api import finetune
    from kdeploy.modelio.loading import load_classifier

    finetune(finetune_settings(train={"epochs": 1}), model=str(tiny_base_bert), data=_data(toy_files),
             out=tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    del weights["bert.encoder.layer.0.attention.output.LayerNorm.weight"]
    save_file(weights, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KdeployError, match="does not reload as it was trained .1 weights missing"):
        load_classifier(str(tmp_path / "m"))
