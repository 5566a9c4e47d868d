"""Sentence-embedding students (issue 41): the task entry's golden values, the data layout, and
a tiny sentence-transformers teacher distilled, exported (pooling and normalisation in the
graph, int8 gated), bundled and served through /embed and /v1/embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_embedder, cli, make_scored_pairs, write_scored_pairs

from kdeploy.errors import KdeployError
from kdeploy.tasks import TASKS, task_kind
from kdeploy.tasks.embedding import cosines, pair_rows

EMB = task_kind("embedding")


def test_the_entry_says_what_an_embedder_is():
    assert EMB.sentence_vectors and EMB.metrics[0] == "spearman" and EMB.routes == ("/embed", "/v1/embeddings")
    assert [t.name for t in TASKS.values() if t.sentence_vectors] == ["embedding"]
    assert EMB.decisions(np.ones((2, 3))) is None  # a vector has no answer to flip


def test_scored_pairs_are_two_rows_each_and_scored_by_cosine():
    rows, scores = pair_rows(["a", "b"], ["c", "d"], [1.0, 2.0])
    assert rows == ["a", "b", "c", "d"] and scores == [1.0, 2.0, 1.0, 2.0]
    v = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert np.allclose(cosines(v), [0.0, 1.0])
    # golden: sims (0.0, 1.0, 0.5) against gold (1, 3, 2) rank the same way: ρ 1
    three = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5 * 3 ** 0.5]])
    scores = EMB.score(three, [1.0, 3.0, 2.0] * 2)
    assert scores.metric == "spearman" and scores.main == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two rows"):
        cosines(np.ones((3, 2)))


def test_kd_loss_golden_values():
    import torch

    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # MSE = (1 + 1 + 0 + 1) / 4 = 0.75; 1 - cos = (1 - 0) and (1 - 1): mean 0.5
    assert EMB.kd_loss(s, t, None, 0.5, 2.0).item() == pytest.approx(1.25)
    assert EMB.logit_mse_loss(s, t, None, 0.5, 2.0).item() == pytest.approx(0.75)
    with pytest.raises(KdeployError, match="no gold labels"):
        EMB.hard_loss(s, t)


def test_the_trivial_answer_is_a_constant_similarity():
    assert EMB.trivial_score(None, None, []) == (0.0, "a constant similarity")
    p = EMB.prediction(np.array([0.6, 0.8]), [])
    assert p.to_dict() == {"embedding": [0.6, 0.8]} and "2 dims" in p.line()


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> Path:
    return build_tiny_embedder(tmp_path_factory.mktemp("tiny_embedder"))


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pairs")
    return {"train": write_scored_pairs(d / "train.tsv", make_scored_pairs(120, 1)),
            "validation": write_scored_pairs(d / "dev.tsv", make_scored_pairs(40, 2)),
            "test": write_scored_pairs(d / "test.tsv", make_scored_pairs(40, 3))}


def test_embedding_data_reads_texts_and_scored_pairs(pair_files, tmp_path):
    from kdeploy.data import DataConfig
    from kdeploy.data.embedding import load_embedding_data

    lines = tmp_path / "more.txt"
    lines.write_text("first text\n\nsecond text\nfirst text\n")
    data = load_embedding_data(DataConfig(train=str(pair_files["train"]), validation=str(pair_files["validation"]),
                                          task="embedding"), str(lines))
    assert data.train[-2:] == ["first text", "second text"]  # each distinct text once, in order
    assert len(data.train) == len(set(data.train))
    rows, scores = data.scored["validation"]
    assert len(rows) == 80 and scores[:40] == scores[40:] and data.pairs("validation") == 40
    single = tmp_path / "single.tsv"
    single.write_text("sentence\tscore\na\t1\n")
    with pytest.raises(KdeployError, match="scored text pairs"):
        load_embedding_data(DataConfig(train=str(lines), validation=str(single), task="embedding"))


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, tiny_embedder, pair_files) -> Path:
    out = tmp_path_factory.mktemp("emb_student") / "student"
    code, stdout, err = cli("distill", "--teacher", tiny_embedder, "--task", "embedding", "--train", pair_files["train"],
                            "--validation", pair_files["validation"], "--test", pair_files["test"],
                            "--student-layers", "2", "--epochs", "2", "--batch-size", "16", "--out", out,
                            "--cache-dir", tmp_path_factory.mktemp("emb_cache"))
    assert code == 0, err
    assert "retention on validation" in stdout + err
    return out


def test_distil_writes_a_sentence_transformers_student(distilled, tiny_embedder):
    from sentence_transformers import SentenceTransformer

    from kdeploy.modelio.embedder import encoder_of, is_embedder, pooling_of
    from kdeploy.modelio.record import task_of_model

    assert is_embedder(distilled) and task_of_model(distilled) == "embedding"
    student = SentenceTransformer(str(distilled), device="cpu", local_files_only=True)
    teacher = SentenceTransformer(str(tiny_embedder), device="cpu", local_files_only=True)
    assert encoder_of(student).config.num_hidden_layers == 2
    assert pooling_of(student) == pooling_of(teacher) == {"pooling": "mean", "normalize": True, "dimension": 32}
    record = json.loads((distilled / "kdeploy.json").read_text())
    assert record["model"]["teacher_layers"] == [0, 3] and record["data"]["task"] == "embedding"
    assert record["validation"]["metrics"]["spearman"] is not None and record["teacher"]["validation"]
    assert record["training_examples"]["texts"] == len(set(t for a, b, _ in make_scored_pairs(120, 1) for t in (a, b)))
    vectors = student.encode(["the film was good"])
    assert np.linalg.norm(vectors, axis=-1) == pytest.approx(1.0, abs=1e-5)


def test_a_second_distillation_reuses_the_teachers_vectors(tiny_embedder, pair_files, tmp_path):
    from kdeploy.data import DataConfig
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings, StudentConfig, TrainConfig

    def run(out):
        return distill(DistillSettings(student=StudentConfig(layers=1), train=TrainConfig(epochs=1, batch_size=32)),
                       teacher=str(tiny_embedder), out=tmp_path / out, cache_dir=tmp_path / "cache",
                       data=DataConfig(train=str(pair_files["train"]), task="embedding"))
    first, second = run("a"), run("b")
    assert first.teacher_logits_cached == {"train": False} and second.teacher_logits_cached == {"train": True}
    assert list((tmp_path / "cache" / "embeddings").glob("*.npy"))


@pytest.mark.parametrize("teacher, extra, message", [
    ("embedder", ["--student", "bilstm"], "student 'bilstm' does not support a embedding task"),
    ("embedder", ["--augment", "2"], "augmented copies are not used for an embedding student"),
    ("classifier", [], "not a sentence embedder (no modules.json"),  # no pooling config: said, not assumed
])
def test_an_embedding_task_refuses_what_does_not_apply(tiny_embedder, tiny_bert, pair_files, tmp_path, teacher, extra,
                                                       message):
    from conftest import assert_one_error_line

    folder = tiny_embedder if teacher == "embedder" else tiny_bert
    code, _, err = cli("distill", "--teacher", folder, "--task", "embedding", "--train", pair_files["train"], *extra,
                       "--out", tmp_path / "o")
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, distilled, pair_files) -> Path:
    out = tmp_path_factory.mktemp("emb_export") / "export"
    code, _, err = cli("export", distilled, "--out", out, "--max-accuracy-drop", "5")
    assert code == 0, err
    return out


def test_export_puts_pooling_and_normalisation_in_the_graph(exported, distilled):
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    from kdeploy.modelio.exported import ExportedModel

    report = json.loads((exported / "export_report.json").read_text())
    assert report["parity"]["model.onnx"]["passed"] and report["parity"]["model.onnx"]["max_abs_diff"] < 1e-4
    assert report["accuracy"]["files"]["model.int8.onnx"]["gate_passed"] is True
    assert report["accuracy"]["files"]["model.int8.onnx"]["paired_test"]["test"] == "paired bootstrap over pairs"
    for name in ("model.onnx", "model.int8.onnx"):
        assert report["files"][name]["invariance"]["max_abs_diff"] <= 1e-5
    block = ExportedModel.read(exported)
    assert block.task == "embedding" and block.outputs == ["sentence_embedding"]
    assert block.pooling == {"pooling": "mean", "normalize": True, "dimension": 32}
    session = ort.InferenceSession(str(exported / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding"]
    student = SentenceTransformer(str(distilled), device="cpu", local_files_only=True)
    texts = ["the film was good", "a very dull and boring plot indeed"]
    enc = student.tokenizer(texts, padding=True, return_tensors="np")
    feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    got = session.run(None, feeds)[0]
    assert np.abs(got - student.encode(texts)).max() < 1e-5  # the model's own pooling and normalisation
    assert (exported / "modules.json").is_file() and (exported / "1_Pooling" / "config.json").is_file()


def test_the_python_bundle_embeds_as_sentence_transformers_does(exported, distilled, tmp_path):
    from sentence_transformers import SentenceTransformer

    from kdeploy.edge import Predictor

    code, _, err = cli("package", exported, "--out", tmp_path / "b", "--model-file", "model.onnx")
    assert code == 0, err
    p = Predictor(tmp_path / "b")
    texts = ["the film was good", "awful", "a very dull and boring plot indeed, and flat"]
    student = SentenceTransformer(str(distilled), device="cpu", local_files_only=True)
    assert np.abs(p.embed(texts) - student.encode(texts)).max() < 1e-5
    short = p.embed(texts, dimensions=8)
    assert short.shape == (3, 8) and np.allclose(np.linalg.norm(short, axis=-1), 1.0, atol=1e-5)
    assert np.allclose(p.embed(texts, dimensions=8, normalize=False), p.embed(texts, normalize=False)[:, :8])
    assert p.manifest.pooling["pooling"] == "mean" and p.manifest.batch_invariant
    with pytest.raises(KdeployError, match="dimensions must be"):
        p.embed(texts, dimensions=33)


def test_the_e2e_bundle_takes_text_and_gives_the_vector(exported, tmp_path):
    """Tokenizer, model, pooling and normalisation in one graph: the same vectors as the python
    bundle of the same file (gated at package time on the validation texts and the hostile list)."""
    import onnxruntime as ort

    from kdeploy.edge import Predictor, quiet_extensions

    code, _, err = cli("package", exported, "--out", tmp_path / "p", "--format", "python,onnx-e2e", "--archive", "none")
    assert code == 0, err
    python, e2e = Predictor(tmp_path / "p"), Predictor(tmp_path / "p-onnx-e2e")
    texts = ["the film was good", "Überraschend gut 👍", "", "awful " * 100]
    assert np.abs(e2e.embed(texts) - python.embed(texts)).max() < 1e-5
    manifest = json.loads((tmp_path / "p-onnx-e2e" / "bundle.json").read_text())
    assert manifest["parity"]["e2e"]["identical"] == manifest["parity"]["e2e"]["texts"]
    options = ort.SessionOptions()
    options.register_custom_ops_library(quiet_extensions())
    session = ort.InferenceSession(str(tmp_path / "p-onnx-e2e" / manifest["model"]), options)
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding"]  # what a C/Java app reads
    assert "sentence_embedding" in (tmp_path / "p-onnx-e2e" / "README.md").read_text()


def test_embed_requests_follow_tei_and_openai_shapes():
    import base64
    import struct

    from kdeploy.serve.requests import HttpError, embed_request, openai_body, openai_request, vectors
    from kdeploy.tasks.predictions import EmbeddingPrediction

    req = embed_request({"inputs": "a", "dimensions": 2}, 4, 10)
    assert req.texts == ["a"] and req.normalize and req.dimensions == 2
    for body, message in (({"inputs": ["a"], "dimensions": 5}, "from 1 to 4"), ({"inputs": [1, 2]}, "token ids"),
                          ({"inputs": "a", "normalize": "yes"}, "true or false"), ({"input": "a"}, "unknown key")):
        with pytest.raises(HttpError, match=message):
            embed_request(body, 4, 10)
    o = openai_request({"input": ["a", "b"], "model": "m", "encoding_format": "base64"}, 4, 10)
    assert o.base64 and o.model == "m"
    rows = vectors([EmbeddingPrediction([3.0, 4.0, 0.0, 0.0])], True, None)
    assert rows == [[0.6, 0.8, 0.0, 0.0]]
    assert vectors([EmbeddingPrediction([3.0, 4.0, 1.0, 0.0])], False, 2) == [[3.0, 4.0]]
    body = openai_body(rows, "m", 7, True)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and body["data"][0]["index"] == 0
    decoded = struct.unpack("<4f", base64.b64decode(body["data"][0]["embedding"]))
    assert np.allclose(decoded, rows[0])


def test_a_recipe_runs_an_embedder_through_every_stage(tiny_embedder, pair_files, tmp_path, cache_dir):
    """distill → export → package from one recipe (no finetune: the teacher is an embedder as it
    is); a second run finds every stage up to date."""
    from kdeploy.pipeline import run_recipe
    from kdeploy.pipeline.recipe import recipe_from_dict

    raw = {"name": "emb", "data": {"train": str(pair_files["train"]), "validation": str(pair_files["validation"]),
                                   "test": str(pair_files["test"]), "task": "embedding"},
           "distill": {"teacher": str(tiny_embedder), "student": {"kind": "layers", "layers": 2},
                       "train": {"epochs": 1, "batch_size": 32}},
           "export": {"quantize": "int8", "max_accuracy_drop": 100},
           "package": {"formats": ["python"], "archive": "none"}}
    result = run_recipe(recipe_from_dict(raw, "test"), tmp_path / "run")
    from kdeploy.edge import Predictor

    vectors = Predictor(tmp_path / "run" / "bundle").embed(["the film was good"])
    assert vectors.shape == (1, 32)
    again = run_recipe(recipe_from_dict(raw, "test"), tmp_path / "run")
    assert set(result.results) == {"distill", "export", "package"}
    assert result.results["distill"].task == "embedding" and result.table()[1]  # the run's table has rows
    assert [p.up_to_date for p in again.plan] == [True, True, True], [(p.stage, p.reason) for p in again.plan]


def test_the_web_bundle_gives_the_same_vectors(exported, tmp_path):
    """The transformers.js layout (feature-extraction; the graph pools and normalises, so the
    pipeline's pooling is "none"): the Python predictor on its files, and Node's transformers.js
    where bench/web/node_modules is installed, give the python bundle's vectors."""
    import shutil
    import subprocess

    from kdeploy.edge import Predictor

    code, _, err = cli("package", exported, "--out", tmp_path / "p", "--format", "python,web", "--archive", "none",
                       "--model-file", "model.onnx")
    assert code == 0, err
    web = tmp_path / "p-web"
    config = json.loads((web / "model" / "config.json").read_text())
    assert "problem_type" not in config and "id2label" not in config
    assert "feature-extraction" in (web / "index.html").read_text()
    texts = ["the film was good", "Überraschend gut 👍", "awful " * 100]
    python = Predictor(tmp_path / "p").embed(texts)
    assert np.abs(Predictor(web).embed(texts) - python).max() < 1e-5
    root = Path(__file__).resolve().parents[1] / "bench" / "web"
    if not (root / "node_modules").is_dir() or not shutil.which("node"):
        pytest.skip("Node parity needs node and bench/web/node_modules (npm install there)")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    run = subprocess.run(["node", str(root / "node_embed.mjs"), str(web), str(tmp_path / "texts.json"),
                          str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120, cwd=root)
    assert run.returncode == 0, run.stderr
    node = np.array([r["embedding"] for r in json.loads((tmp_path / "out.json").read_text())["results"]])
    assert np.abs(node - python).max() < 1e-5
    if not shutil.which("chromium"):
        pytest.skip("the Chromium check needs chromium (apt-get install chromium)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("web_parity", root.parent / "web_parity.py")
    web_parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web_parity)
    server = web_parity.serve(web)  # the bundle and the npm packages' browser files, on loopback
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        run = subprocess.run(["node", str(root / "browser_embed.mjs"), url, str(tmp_path / "texts.json"),
                              str(tmp_path / "chromium.json")], capture_output=True, text=True, timeout=300, cwd=root)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    chromium = np.array([r["embedding"] for r in json.loads((tmp_path / "chromium.json").read_text())["results"]])
    assert np.abs(chromium - python).max() < 1e-5
