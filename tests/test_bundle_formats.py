"""Bundle formats: the single-file e2e ONNX model (tokenizer inside), the transformers.js web
layout, and one answer across them (token and probability parity), from a tiny model."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdeploy.edge import BundleError, Predictor
from kdeploy.errors import KdeployError
from kdeploy.package.bundle import package
from kdeploy.package.config import PackageSettings
from kdeploy.package.hostile_texts import HOSTILE_TEXTS

from conftest import build_tiny_bert, data_of

pytest.importorskip("onnxruntime_extensions")
ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the film was very good", "", "dull boring plot", "Überraschend gut — ça marche 👍", "good " * 300,
         "great😀 film", "[SEP] good [CLS]"]


@pytest.fixture(scope="module")
def exported_wordpiece(tmp_path_factory, toy_files):
    """A tiny BERT whose vocabulary has "##a".."##z" as real ones do, exported with int8."""
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    model = build_tiny_bert(tmp_path_factory.mktemp("tiny_wp"), continuation=True)
    out = tmp_path_factory.mktemp("exported_wp") / "onnx"
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=model, out=out,
           data=DataConfig(train=str(toy_files["train"]), test=str(toy_files["test"])))
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, exported_wordpiece, toy_files):
    out = tmp_path_factory.mktemp("formats") / "bundle"
    result = package(PackageSettings(formats=["python", "onnx-e2e", "web"], archive="tar.gz"),
                     export_dir=exported_wordpiece, out=out, data=data_of(toy_files))
    return {r.kind: r for r in [result, *result.others]}


def _probabilities(predictor, texts):
    return np.array([[r["probabilities"][k] for k in predictor.labels]
                     for t in texts for r in predictor.predict([t], batch_size=1)])


def test_formats_are_written_side_by_side(bundles):
    assert Path(bundles["python"].bundle).name == "bundle"
    assert Path(bundles["onnx-e2e"].bundle).name == "bundle-onnx-e2e"
    assert Path(bundles["web"].bundle).name == "bundle-web"
    for r in bundles.values():
        assert Path(r.archive).is_file() and r.manifest.kind == r.kind


def test_e2e_gate_covers_validation_and_hostile_texts(bundles):
    p = bundles["onnx-e2e"].e2e_parity
    assert p["texts"] == 40 + len(HOSTILE_TEXTS) and p["identical"] == p["texts"]
    assert p["max_abs_diff"] <= 1e-5 and p["probability_texts"] == p["texts"]
    assert p["nul_truncated"] == sum("\x00" in t for t in HOSTILE_TEXTS)
    assert "validation split" in p["source"]


def test_e2e_is_one_file_text_in_label_out(bundles):
    """Any onnxruntime binding: register the extensions library, feed strings."""
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    folder = Path(bundles["onnx-e2e"].bundle)
    assert sorted(p.name for p in folder.iterdir()) == [".kdeploy-output.json", "README.md", "bundle.json", "model.e2e.onnx",
                                                       "tokenizer.json"]  # the ledger: every file kdeploy wrote
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(str(folder / "model.e2e.onnx"), options)
    probs, labels = session.run(None, {"text": np.array(TEXTS, dtype=object)})
    assert probs.shape == (len(TEXTS), 2) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert list(labels) == [["negative", "positive"][i] for i in probs.argmax(1)]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["kdeploy.label_names"]) == ["negative", "positive"]
    assert json.loads(meta["kdeploy.e2e"])["max_length"] == bundles["python"].manifest.max_length


def test_every_format_gives_the_python_answer(bundles):
    """Text by text (int8 activations are scaled per call), hostile texts included."""
    texts = TEXTS + [t for t in HOSTILE_TEXTS if "\x00" not in t]
    reference = _probabilities(Predictor(bundles["python"].bundle), texts)
    for kind in ("onnx-e2e", "web"):
        got = _probabilities(Predictor(bundles[kind].bundle), texts)
        assert np.abs(got - reference).max() <= 1e-5, kind
    archived = _probabilities(Predictor(bundles["web"].archive), texts[:3])
    assert np.abs(archived - reference[:3]).max() <= 1e-5


def test_e2e_batches_rows_independently(bundles):
    p = Predictor(bundles["onnx-e2e"].bundle)
    one_by_one = _probabilities(p, TEXTS)
    together = np.array([[r["probabilities"][k] for k in p.labels] for r in p.predict(TEXTS)])
    assert np.abs(one_by_one - together).max() <= 1e-6


def test_web_layout_is_what_transformers_js_loads(bundles):
    from kdeploy.package.web import NO_LIMIT

    folder = Path(bundles["web"].bundle)
    model = folder / "model"
    assert (model / "onnx" / "model_quantized.onnx").is_file() and (folder / "index.html").is_file()
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "bert" and config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["transformers.js_config"] == {"dtype": "q8"}
    assert json.loads((model / "tokenizer_config.json").read_text())["model_max_length"] == NO_LIMIT
    assert json.loads((model / "tokenizer.json").read_text())["added_tokens"] == []
    page = (folder / "index.html").read_text()
    assert "https://" not in page and "./vendor/transformers.min.js" in page and "allowRemoteModels = false" in page
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["model"] == "model/onnx/model_quantized.onnx" and "model/config.json" in manifest["files"]
    readme = (folder / "README.md").read_text()
    assert "npm install @huggingface/transformers" in readme and "pipeline('text-classification'" in readme


def test_web_model_truncates_like_tokenizers(bundles):
    """transformers.js cuts after [SEP] is added; the web graph keeps [CLS] … [SEP] itself."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    web = Path(bundles["web"].bundle) / "model"
    max_length = bundles["web"].manifest.max_length
    tok = Tokenizer.from_file(str(web / "tokenizer.json"))
    tok.no_truncation()
    long_ids = tok.encode("good film " * 200).ids  # untruncated, as transformers.js passes it
    short = Tokenizer.from_file(str(web / "tokenizer.json"))
    short.enable_truncation(max_length)
    cut = short.encode("good film " * 200).ids
    assert len(long_ids) > max_length and len(cut) == max_length and cut[-1] == long_ids[-1]
    session = ort.InferenceSession(str(web / "onnx" / "model_quantized.onnx"))
    plain = ort.InferenceSession(str(Path(bundles["python"].bundle) / "model.onnx"))

    def run(s, rows):
        width = max(map(len, rows))
        ids = np.array([r + [0] * (width - len(r)) for r in rows], dtype=np.int64)
        mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})[0]

    assert np.abs(run(session, [long_ids]) - run(plain, [cut])).max() <= 1e-5
    assert np.abs(run(session, [cut]) - run(plain, [cut])).max() <= 1e-6  # short input: untouched


def test_predict_cli_reads_every_format(bundles):
    from typer.testing import CliRunner

    from kdeploy.cli import app

    for r in bundles.values():
        out = CliRunner().invoke(app, ["predict", r.bundle, "good film"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output.splitlines()[0])["label"] in ("negative", "positive")


def test_e2e_refuses_what_it_would_answer_differently(tmp_path, exported_tiny, toy_files):
    """Without "##" pieces WordPiece fails inside words, where the op keeps a partial word:
    the gate sees the difference and writes nothing."""
    with pytest.raises(KdeployError, match="tokens differ"):
        package(PackageSettings(formats=["onnx-e2e"], archive=None), export_dir=exported_tiny, out=tmp_path / "e2e",
                data=data_of(toy_files))
    assert not (tmp_path / "e2e").exists()


def test_package_cli_formats(tmp_path, exported_tiny):
    from typer.testing import CliRunner

    from kdeploy.cli import app

    out = CliRunner().invoke(app, ["package", str(exported_tiny), "--out", str(tmp_path / "b"), "--format", "python,web",
                                   "--archive", "none"])
    assert out.exit_code == 0, out.output
    assert "web bundle:" in out.output and "python bundle:" in out.output and "index.html" in out.output
    assert (tmp_path / "b-web" / "model" / "config.json").is_file()
    bad = subprocess.run([sys.executable, "-m", "kdeploy", "package", str(exported_tiny), "--out", str(tmp_path / "c"),
                          "--format", "apk"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --format takes")


def test_tokenizers_the_graph_cannot_express_are_refused(tmp_path):
    from kdeploy.package.tokenizer_graph import bert_tokenizer_attributes

    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}, "normalizer": None, "pre_tokenizer": None}))
    with pytest.raises(KdeployError, match="WordPiece"):
        bert_tokenizer_attributes(path, 128)


def test_nested_manifest_names_stay_inside(bundles, tmp_path):
    from kdeploy.manifest import verify_bundle

    src = Path(bundles["web"].bundle)
    copy = tmp_path / "web"
    shutil.copytree(src, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    for bad in ("model/../../etc/passwd", "/abs/model.onnx", "a/b/c/d.onnx", "model/.hidden"):
        broken = dict(manifest, files={**manifest["files"], bad: manifest["files"]["model/config.json"]})
        (copy / "bundle.json").write_text(json.dumps(broken))
        with pytest.raises(BundleError, match="not a plain file name"):
            verify_bundle(copy)
    (copy / "bundle.json").write_text(json.dumps(manifest))
    verify_bundle(copy)
    shutil.move(str(copy / "model"), str(tmp_path / "elsewhere"))
    os.symlink(tmp_path / "elsewhere", copy / "model")  # a folder link out of the bundle
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(copy)


def test_bench_times_bundles_end_to_end(bundles, tmp_path, toy_files):
    from kdeploy.runtime.bench import benchmark
    from kdeploy.runtime.config import BenchSettings

    settings = BenchSettings(batch_sizes=[1, 4], iterations=4, warmup=1, rounds=1, peaks=False)
    _, report = benchmark(settings, [bundles["python"].bundle, bundles["onnx-e2e"].bundle, bundles["web"].archive],
                          data=data_of(toy_files))
    kinds = [m.provider for m in report.models]
    assert kinds == ["python bundle", "onnx-e2e bundle", "web bundle"]
    accuracies = {round(m.accuracy.main, 6) for m in report.models}
    assert len(accuracies) == 1  # the same answers from every format
    assert all(m.latency[1].p50_ms > 0 and m.latency[4].throughput_per_s > 0 for m in report.models)


def _export_fp32(model: Path, out: Path, toy_files) -> Path:
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    export(ExportSettings(optimize=None, quantize="none", max_length=64), model=model, out=out, data=data_of(toy_files))
    return out


def _python_and_e2e_agree(result, texts) -> None:
    """The e2e gate passed on every text, and the e2e bundle answers what the python one does."""
    e2e = next(r for r in [result, *result.others] if r.kind == "onnx-e2e")
    assert e2e.e2e_parity["identical"] == e2e.e2e_parity["texts"] and e2e.e2e_parity["max_abs_diff"] <= 1e-5
    np.testing.assert_allclose(_probabilities(Predictor(e2e.bundle), texts),
                               _probabilities(Predictor(result.bundle), texts), atol=1e-5)


def test_a_roberta_saved_the_ordinary_way_packages_as_e2e(tmp_path, toy_files):
    """RobertaTokenizerFast(vocab_file=, merges_file=) + save_pretrained writes tokenizer_class
    "RobertaTokenizer", as every fine-tuned RoBERTa's config says; the extensions' tokenizer.json
    op knows no such class, and package died in its raw "Unknown tokenizer type" traceback."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    from tiny_families import _corpus

    model, raw = tmp_path / "roberta", tmp_path / "bpe"
    raw.mkdir()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=700, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(raw))
    tok = RobertaTokenizerFast(vocab_file=str(raw / "vocab.json"), merges_file=str(raw / "merges.txt"))
    if len(tok) != bpe.get_vocab_size():  # transformers 5 ignores the *_file names (5 tokens): its own names
        tok = RobertaTokenizerFast(vocab=str(raw / "vocab.json"), merges=str(raw / "merges.txt"))
    assert len(tok) == bpe.get_vocab_size() == 700
    assert tok.tokenize(" film was good") == ["Ġfilm", "Ġwas", "Ġgood"]  # the trained vocabulary, merges too
    tok.save_pretrained(model)
    assert json.loads((model / "tokenizer_config.json").read_text())["tokenizer_class"] == "RobertaTokenizer"
    config = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_attention_heads=2, intermediate_size=64,
                           num_hidden_layers=2, max_position_embeddings=66, type_vocab_size=1, num_labels=2,
                           pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                           id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    RobertaForSequenceClassification(config).save_pretrained(model)
    onnx_dir = _export_fp32(model, tmp_path / "onnx", toy_files)
    result = package(PackageSettings(formats=["python", "onnx-e2e"], archive=None), export_dir=onnx_dir,
                     out=tmp_path / "bundle", data=data_of(toy_files))
    _python_and_e2e_agree(result, TEXTS)


def test_a_unigram_e2e_bundle_keeps_sentencepiece_quiet(tmp_path, toy_files):
    """XLM-R as transformers 5 saves it (its tokenizer rebuilt: WhitespaceSplit, then Metaspace)
    packages as e2e, and its bundle predicts without SentencePiece's LOG(INFO) lines on stderr."""
    from tiny_families import build_teacher

    onnx_dir = _export_fp32(build_teacher("xlm-roberta", tmp_path / "teacher"), tmp_path / "onnx", toy_files)
    pre = json.loads((onnx_dir / "tokenizer.json").read_text())["pre_tokenizer"]
    assert [p["type"] for p in pre.get("pretokenizers", [pre])] == ["WhitespaceSplit", "Metaspace"]
    result = package(PackageSettings(formats=["python", "onnx-e2e"], archive=None), export_dir=onnx_dir,
                     out=tmp_path / "bundle", data=data_of(toy_files))
    _python_and_e2e_agree(result, TEXTS + ["  spaced   out\ttext ", "\u3000wide\u00a0space", " "])
    out = subprocess.run([sys.executable, "-m", "kdeploy", "predict", result.others[0].bundle, "good film"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert json.loads(out.stdout)["label"] in ("negative", "positive")


@pytest.mark.web
def test_node_and_chromium_agree(exported_wordpiece, toy_files, tmp_path):
    """transformers.js in Node and in headless Chromium (bench/web_parity.py); needs
    `cd bench/web && ONNXRUNTIME_NODE_INSTALL=skip npm install` and chromium."""
    if not (ROOT / "bench" / "web" / "node_modules").is_dir() or not shutil.which("node") \
            or not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        pytest.skip("needs node, bench/web/node_modules (npm install there) and chromium")
    out = tmp_path / "summary.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "web_parity.py"), "--export", str(exported_wordpiece),
                          "--data", str(toy_files["test"]), "--json", str(out)], capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(out.read_text())
    for name in ("onnx-e2e", "node", "chromium"):
        test = summary["runtimes"][name]["vs_python"]["test"]
        assert test["agreement"] == 1.0 and test["max_abs_diff"] <= 1e-3, (name, test)
