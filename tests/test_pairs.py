"""Sentence pairs and scores: a pair dataset through every stage (finetune, distill, export
with token_type_ids as a real input, bundle, predict, rank), a regression head, and bad pair
input refused with one line."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FILLER, NEGATIVE, POSITIVE, assert_one_error_line, cli, distill_settings, finetune_settings

from kdeploy.data import DataConfig, load_task_data
from kdeploy.errors import KdeployError


def _sentence(rng, cue) -> str:
    words = rng.sample(FILLER, rng.randint(2, 6))
    words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words)


def write_pairs(path: Path, n: int, seed: int, header=("sentence1", "sentence2", "label", "score")) -> Path:
    """Entailment when both sentences carry the same polarity; the score says how alike they are."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first = POSITIVE if rng.random() < 0.5 else NEGATIVE
        same = i % 2 == 0
        second = first if same else (NEGATIVE if first is POSITIVE else POSITIVE)
        score = round(rng.uniform(3.5, 5.0) if same else rng.uniform(1.0, 2.5), 1)
        rows.append((_sentence(rng, first), _sentence(rng, second), "entailment" if same else "contradiction", score))
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    return {"train": write_pairs(d / "train.tsv", 160, 1), "validation": write_pairs(d / "dev.tsv", 40, 2),
            "test": write_pairs(d / "test.tsv", 40, 3)}


def pair_data(files, **kwargs) -> DataConfig:
    return DataConfig(train=str(files["train"]), validation=str(files["validation"]), test=str(files["test"]), **kwargs)


def test_pair_columns_are_found_and_fingerprinted(pair_files, tmp_path):
    task = load_task_data(pair_data(pair_files))
    assert task.pairs and task.label_names == ["contradiction", "entailment"]
    first = task.texts("train")[0]
    assert isinstance(first, tuple) and len(first) == 2
    single = load_task_data(pair_data(pair_files, text_column="sentence1"))  # one column named: one text
    assert not single.pairs and single.fingerprint != task.fingerprint
    swapped = tmp_path / "swapped.tsv"
    lines = Path(pair_files["train"]).read_text().splitlines()
    swapped.write_text("\n".join([lines[0]] + ["\t".join([r.split("\t")[1], r.split("\t")[0], *r.split("\t")[2:]])
                                               for r in lines[1:]]) + "\n")
    other = load_task_data(DataConfig(train=str(swapped), validation=str(pair_files["validation"])))
    assert other.fingerprint != task.fingerprint  # both texts, in order, are in the fingerprint
    scores = load_task_data(pair_data(pair_files, task="regression", label_column="score"))
    assert scores.num_labels == 1 and scores.label_names == ["score"] and isinstance(scores.splits["train"][0]["label"], float)


@pytest.mark.parametrize("flags, message", [
    (["--text-pair-column", "nope"], "no column 'nope'"),
    (["--label-column", "score"], "look like scores"),
    (["--task", "regression", "--label-column", "label"], "not a number"),
])
def test_bad_pair_input_is_one_line(pair_files, tmp_path, tiny_base_bert, flags, message):
    run = subprocess.run([sys.executable, "-m", "kdeploy", "finetune", "--model", str(tiny_base_bert),
                          "--train", str(pair_files["train"]), "--out", str(tmp_path / "t"), *flags],
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert lines[-1].startswith("error: ") and message in lines[-1], lines[-1]


def test_empty_second_text_is_refused(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("premise\thypothesis\tlabel\na man sings\t\tneutral\na dog runs\tan animal moves\tentailment\n")
    with pytest.raises(KdeployError, match="row 1 has an empty second text in column 'hypothesis'"):
        load_task_data(DataConfig(test=str(path)))


@pytest.fixture(scope="module")
def pair_pipeline(tmp_path_factory, tiny_base_bert, pair_files):
    """finetune → distill (2 layers) → export int8 → package python + onnx-e2e, on pairs."""
    from kdeploy.distill.api import distill, finetune
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    root = tmp_path_factory.mktemp("pair_run")
    data = pair_data(pair_files)
    teacher = finetune(finetune_settings(), model=str(tiny_base_bert), data=data, out=root / "teacher")
    student = distill(distill_settings(student={"kind": "layers", "layers": 2}, augment=1),
                      teacher=str(root / "teacher"), data=data, out=root / "student")
    exported = export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=root / "student",
                      out=root / "onnx", data=data)
    bundles = package(PackageSettings(formats=["python"], archive=None), export_dir=root / "onnx", out=root / "bundle",
                      data=data)
    return {"root": root, "teacher": teacher, "student": student, "export": exported, "bundle": bundles, "data": data}


def test_pairs_flow_through_every_stage(pair_pipeline):
    student, exported = pair_pipeline["student"], pair_pipeline["export"]
    assert student.data["pairs"] and student.test.examples == 40
    assert student.training_examples == {"labelled": 160, "unlabeled": 0, "augmented": 160, "copies": 1}  # each pair edited
    cases = {c["case"] for c in exported.parity["model.onnx"].cases}
    assert {"batch1-second-truncated", "batch1-first-truncated", "batch2-swapped"} <= cases
    assert exported.parity["model.onnx"].max_abs_diff < 1e-4
    config = json.loads((pair_pipeline["root"] / "onnx" / "config.json").read_text())["kdeploy"]
    assert config["pairs"] is True and "token_type_ids" in config["inputs"]
    manifest = pair_pipeline["bundle"].manifest
    assert manifest.pairs and manifest.task == "classification"


def test_token_type_ids_matter_in_the_graph(pair_pipeline):
    """The same two texts swapped, or with their token types zeroed, change the logits in ONNX
    exactly as in PyTorch: token_type_ids is a real input of the graph, not a frozen constant."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    student = pair_pipeline["root"] / "student"
    model = AutoModelForSequenceClassification.from_pretrained(student).eval()
    tok = AutoTokenizer.from_pretrained(student)
    session = ort.InferenceSession(str(pair_pipeline["root"] / "onnx" / "model.onnx"))
    a, b = "the film was very good", "a dull boring plot"

    def both(first, second, zero_types=False):
        enc = dict(tok([first], [second], return_tensors="pt"))
        if zero_types:
            enc["token_type_ids"] = torch.zeros_like(enc["token_type_ids"])
        onnx_logits = session.run(None, {i.name: enc[i.name].numpy().astype(np.int64) for i in session.get_inputs()})[0]
        with torch.no_grad():
            return onnx_logits, model(**enc).logits.numpy()

    ab, ba, zeroed = both(a, b), both(b, a), both(a, b, zero_types=True)
    for onnx_logits, torch_logits in (ab, ba, zeroed):
        np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-6)
    for other in (ba, zeroed):
        torch_change = np.abs(other[1] - ab[1]).max()
        assert torch_change > 1e-6  # the inputs differ for the model...
        np.testing.assert_allclose(other[0] - ab[0], other[1] - ab[1], atol=1e-6)  # ...and for the graph alike


def test_predict_and_rank_pairs(pair_pipeline):
    from kdeploy.edge import Predictor

    p = Predictor(pair_pipeline["bundle"].bundle)
    pairs = [("the film was very good", "a great lovely story"), ("the film was very good", "a dull boring plot")]
    results = p.predict(pairs)
    assert len(results) == 2 and all(set(r["probabilities"]) == {"contradiction", "entailment"} for r in results)
    assert p.predict(pairs[0], batch_size=1)[0] == p.predict(pairs, batch_size=1)[0]  # one pair on its own
    ranked = p.rank("the film was very good", ["a great lovely story", "a dull boring plot", "it was fine"])
    assert sorted(r["index"] for r in ranked) == [0, 1, 2]
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    with pytest.raises(KdeployError, match="reads sentence pairs"):
        p.predict(["one text"])


def test_predict_cli_pairs(pair_pipeline):
    bundle = pair_pipeline["bundle"].bundle
    run = subprocess.run([sys.executable, "-m", "kdeploy", "predict", bundle, "--pair", "a good film", "great story"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout.splitlines()[0])
    assert row["text"] == "a good film" and row["text_pair"] == "great story" and row["label"] in ("contradiction", "entailment")
    lines = subprocess.run([sys.executable, "-m", "kdeploy", "predict", bundle], input="a good film\tgreat story\nno tab\n",
                           capture_output=True, text=True, timeout=300)
    assert lines.returncode == 2 and "line 2: a pair model reads FIRST<TAB>SECOND" in lines.stderr


def test_pair_bundle_e2e_and_web(pair_pipeline, tmp_path):
    pytest.importorskip("onnxruntime_extensions")
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    with pytest.raises(KdeployError, match="transformers.js truncates a long pair"):
        package(PackageSettings(formats=["web"], archive=None), export_dir=pair_pipeline["root"] / "onnx",
                out=tmp_path / "web")
    # the tiny vocabulary has no "##" pieces, so unknown words split differently in the op: refused, not shipped
    with pytest.raises(KdeployError, match="tokens differ"):
        package(PackageSettings(formats=["onnx-e2e"], archive=None), export_dir=pair_pipeline["root"] / "onnx",
                out=tmp_path / "e2e", data=pair_pipeline["data"])
    assert Predictor(pair_pipeline["bundle"].bundle).manifest.pairs


def test_one_text_students_refuse_pairs(pair_pipeline, pair_files, tmp_path):
    from kdeploy.distill.api import distill

    with pytest.raises(KdeployError, match="a bilstm student reads one text"):
        distill(distill_settings(student={"kind": "bilstm"}),
                teacher=str(pair_pipeline["root"] / "teacher"), data=pair_data(pair_files), out=tmp_path / "s")


def test_regression_distils_exports_and_predicts(tmp_path, tiny_base_bert, pair_files):
    from kdeploy.distill.api import distill, finetune
    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    data = pair_data(pair_files, task="regression", label_column="score")
    teacher = finetune(finetune_settings(), model=str(tiny_base_bert), data=data, out=tmp_path / "t")
    assert teacher.test.metric == "pearson" and teacher.test.metrics["mse"] is not None
    student = distill(distill_settings(student={"kind": "layers", "layers": 2}),
                      teacher=str(tmp_path / "t"), data=data, out=tmp_path / "s")
    assert student.test.metric == "pearson" and -1 <= student.test.main <= 1
    exported = export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=tmp_path / "s",
                      out=tmp_path / "onnx", data=data)
    assert exported.parity["model.onnx"].max_abs_diff < 1e-4
    assert exported.accuracy.files["model.int8.onnx"].metric == "pearson"
    with pytest.raises(KdeployError, match="does not support a regression task"):
        package(PackageSettings(formats=["web"], archive=None), export_dir=tmp_path / "onnx", out=tmp_path / "w")
    bundle = package(PackageSettings(archive=None), export_dir=tmp_path / "onnx", out=tmp_path / "b")
    p = Predictor(bundle.bundle)
    out = p.predict([("the film was very good", "a great lovely story")])
    assert set(out[0]) == {"score"} and isinstance(out[0]["score"], float)
    ranked = p.rank("the film was good", ["great story", "dull plot"])
    assert ranked[0]["score"] >= ranked[1]["score"]


def test_pair_e2e_model_matches_python(tmp_path, pair_files):
    """A vocabulary with "##" pieces (as real ones have): the e2e model reads [N, 2] string rows
    and answers as the python bundle, long pairs truncated the same way (the gate checks the
    validation split and every hostile text on either side)."""
    pytest.importorskip("onnxruntime_extensions")
    from conftest import build_tiny_bert

    from kdeploy.distill.api import finetune
    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    data = pair_data(pair_files)
    base = build_tiny_bert(tmp_path / "base", label_names=None, continuation=True)
    finetune(finetune_settings(train={"epochs": 1}), model=str(base), data=data, out=tmp_path / "t")
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=tmp_path / "t",
           out=tmp_path / "onnx", data=data)
    result = package(PackageSettings(formats=["python", "onnx-e2e"], archive=None), export_dir=tmp_path / "onnx",
                     out=tmp_path / "b", data=data)
    e2e = result.others[0]
    gate = e2e.e2e_parity
    assert gate["identical"] == gate["texts"] and gate["max_abs_diff"] <= 1e-5 and "pairs" in gate["source"]
    pairs = [("the film was very good", "a great lovely story"), ("good " * 200, "dull " * 200), ("plot", "")]
    python, graph = Predictor(result.bundle), Predictor(e2e.bundle)
    for pair in pairs:
        want, got = python.predict([pair], batch_size=1)[0], graph.predict([pair])[0]
        assert want["label"] == got["label"] and abs(want["score"] - got["score"]) <= 1e-5


# --- a pair bundle from the CLI: bench on pair data, predict refuses a third field ----------

def test_a_pair_bundle_benches_on_pair_data(hostile_world, tmp_path):  # issue 22 #15: was a TypeError
    code, _, err = cli("bench", hostile_world["BP"], "--data", hostile_world["pairs"], "--out", tmp_path / "o")
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["models"][0]["accuracy"]["examples"] == 40


def test_pair_lines_with_a_third_field_are_refused(hostile_world):  # issue 22 #8: the label must not join the passage
    code, _, err = cli("predict", hostile_world["BP"], stdin=b"great film\tlovely\tpositive\n")
    assert_one_error_line(code, err, "this line has 3 tab-separated fields")
    code, out, err = cli("predict", hostile_world["BP"], stdin=b"great film\tlovely movie\n")
    assert code == 0 and json.loads(out)["text_pair"] == "lovely movie"
