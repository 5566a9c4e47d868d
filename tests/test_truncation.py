"""Which tokens of a long text a model reads (kdeploy.truncation: head, tail, head+tail:N):
the rule's golden values, and the same token ids in PyTorch's tokenizer, the Python bundle, the
e2e graph and the web bundle for every strategy (tiny model), recorded from training onwards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdeploy.errors import KdeployError
from kdeploy.truncation import Window, check, cut, keep_first, kept_positions, owners, refit, resolve, windows

from conftest import build_tiny_bert, data_of, distill_settings, finetune_settings

LONG = ["good " * 20 + "film " * 20 + "dull " * 20, "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3,
        "the film was very good", "", "great😀 film " * 30]  # typed "[SEP]": the gate's hostile texts


def test_golden_rule():
    assert resolve("head", 512) == "head" and resolve("tail", 64) == "tail"
    assert resolve("head+tail", 512) == "head+tail:128"  # Sun et al.: 128 + 382 (+ [CLS], [SEP])
    assert resolve("head+tail:10", 32) == "head+tail:10"
    assert keep_first("head", 8) == 7 and keep_first("tail", 8) == 1 and keep_first("head+tail:3", 8) == 4
    ids = list(range(12))  # [CLS]=0 … [SEP]=11
    assert cut(ids, 8, keep_first("head", 8)) == [0, 1, 2, 3, 4, 5, 6, 11]
    assert cut(ids, 8, keep_first("tail", 8)) == [0, 5, 6, 7, 8, 9, 10, 11]
    assert cut(ids, 8, keep_first("head+tail:3", 8)) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert cut(ids[:8], 8, 1) == ids[:8]  # short texts are left alone
    assert refit("head+tail:128", 64) == "head+tail:16" and refit("head+tail:10", 64) == "head+tail:10"


def test_windows_read_every_position_once_with_the_most_context():
    """An entity tagger's long text: overlapping windows ([CLS] … [SEP] around each), and each
    position taken from the window where it sits furthest from an edge."""
    assert windows(8, 8) == [(1, 7)]  # fits: one window, the text as it is
    assert windows(14, 8, overlap=2) == [(1, 7), (5, 11), (9, 13)]  # 6 text positions each, 2 shared
    assert windows(14, 8) == [(1, 7), (6, 12), (11, 13)]  # default overlap: a quarter of 6 → 1
    assert owners([(1, 7), (5, 11), (9, 13)], 14) == [-1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, -1]
    ids = list(range(14))

    class Enc:
        pass

    enc = Enc()
    enc.ids, enc.attention_mask, enc.type_ids = ids, [1] * 14, [0] * 14
    assert Window(enc, 5, 11, 1, 1).ids == [0, 5, 6, 7, 8, 9, 10, 13]


@given(st.integers(3, 400), st.integers(4, 64), st.integers(0, 70))
@settings(max_examples=200, deadline=None)
def test_windows_cover_the_text_within_the_window(length, max_length, overlap):
    ranges = windows(length, max_length, 1, 1, overlap)
    assert ranges[0][0] == 1 and ranges[-1][1] == length - 1
    assert all(b - a + 2 <= max(max_length, length if len(ranges) == 1 else 0) for a, b in ranges)
    assert all(a2 <= b1 for (_, b1), (a2, _) in zip(ranges, ranges[1:]))  # no position skipped
    assert all(a1 < a2 for (a1, _), (a2, _) in zip(ranges, ranges[1:]))  # always moving on
    owner = owners(ranges, length)
    assert all(ranges[owner[j]][0] <= j < ranges[owner[j]][1] for j in range(1, length - 1))


@pytest.mark.parametrize("bad", ["middle", "tail:3", "head+tail:x", "", None])
def test_bad_strategy_is_one_line(bad):
    with pytest.raises(KdeployError, match="--truncation"):
        check(bad)


def test_head_count_must_leave_room():
    with pytest.raises(KdeployError, match="between 1 and 29"):
        resolve("head+tail:30", 32)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, 300), max_length=st.integers(3, 64), data=st.data())
def test_kept_positions_property(length, max_length, data):
    first = data.draw(st.integers(1, max_length - 1))
    kept = kept_positions(length, max_length, first)
    assert kept == sorted(set(kept)) and len(kept) == min(length, max_length)
    if length > max_length:  # both ends survive: [CLS] and [SEP] stay where they were
        assert kept[0] == 0 and kept[-1] == length - 1 and kept[:first] == list(range(first))
    assert cut(list(range(length)), max_length, first) == kept


def test_data_config_checks_the_strategy():
    from kdeploy.data import DataConfig

    assert DataConfig(dataset="x", truncation="head+tail").truncation == "head+tail"
    with pytest.raises(KdeployError, match="--truncation"):
        DataConfig(dataset="x", truncation="middle")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy_files):
    """A tiny BERT (vocabulary with ## pieces) fine-tuned with head+tail at 16 tokens."""
    from kdeploy.distill.api import finetune

    root = tmp_path_factory.mktemp("truncation")
    base = build_tiny_bert(root / "base", label_names=None, continuation=True)
    record = finetune(finetune_settings(train={"epochs": 1, "max_length": 16}), model=str(base),
                      data=data_of(toy_files, truncation="head+tail"), out=root / "teacher")
    return root, record


def test_training_records_the_resolved_strategy(trained):
    root, record = trained
    assert record.data["truncation"] == "head+tail:4"  # a quarter of 16
    saved = json.loads((root / "teacher" / "kdeploy.json").read_text())
    assert saved["data"]["truncation"] == "head+tail:4"
    from kdeploy.modelio.inputs import tokenize
    from kdeploy.modelio.loading import load_tokenizer

    ids = tokenize(load_tokenizer(str(root / "teacher")), [LONG[0]], 16, padding=False)["input_ids"][0]
    whole = load_tokenizer(str(root / "teacher"))(LONG[0])["input_ids"]
    assert ids == whole[:5] + whole[-11:]  # [CLS] + 4 from the head, 10 from the tail + [SEP]


@pytest.mark.parametrize("strategy", ["head", "tail", "head+tail:5"])
def test_every_runtime_reads_the_same_tokens(trained, toy_files, tmp_path, strategy):
    """PyTorch's tokenizer, the Python bundle, the e2e graph (gated at package time on the
    validation split and the hostile texts) and the web graph fed untruncated ids, as
    transformers.js feeds it: one set of token ids, one answer."""
    pytest.importorskip("onnxruntime_extensions")
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.modelio.inputs import tokenize
    from kdeploy.modelio.loading import load_tokenizer
    from kdeploy.modelio.onnx_session import extensions_library
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.package.tokenizer_graph import bert_tokenizer_attributes, normaliser_table, tokenizer_model

    root, _ = trained
    data = data_of(toy_files, truncation=strategy)
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=root / "teacher",
           out=tmp_path / "onnx", data=data)
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["kdeploy"]["truncation"] == strategy
    result = package(PackageSettings(formats=["python", "onnx-e2e", "web"], archive=None),
                     export_dir=tmp_path / "onnx", out=tmp_path / "b", data=data_of(toy_files))
    bundles = {r.kind: r for r in [result, *result.others]}
    assert all(b.manifest.truncation == strategy for b in bundles.values())
    gate = bundles["onnx-e2e"].e2e_parity
    assert gate["identical"] == gate["texts"] and gate["max_abs_diff"] <= 1e-5

    torch_ids = tokenize(load_tokenizer(str(tmp_path / "onnx")), LONG, 16, padding=False)["input_ids"]
    python = Predictor(bundles["python"].bundle)
    assert [list(e.ids) for e in python._encode(LONG)] == [list(r) for r in torch_ids]
    folder = Path(bundles["python"].bundle)
    attributes = bert_tokenizer_attributes(folder / "tokenizer.json", 16)
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    graph = ort.InferenceSession(tokenizer_model(attributes, normaliser_table(folder / "tokenizer.json"),
                                                 truncation=strategy).SerializeToString(), options)
    assert [graph.run(None, {"text": np.array([t], dtype=object)})[0].tolist() for t in LONG] == torch_ids

    web = Path(bundles["web"].bundle) / "model"
    whole = Tokenizer.from_file(str(web / "tokenizer.json"))
    whole.no_truncation()
    rows = [e.ids for e in whole.encode_batch(LONG)]  # transformers.js passes the whole text
    assert max(map(len, rows)) > 16
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows], dtype=np.int64)
    mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=np.int64)
    session = ort.InferenceSession(str(web / "onnx" / "model_quantized.onnx"))
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    logits = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    assert np.abs(logits - python.logits(LONG)).max() <= 1e-5
    probabilities = [r["probabilities"] for r in Predictor(bundles["onnx-e2e"].bundle).predict(LONG)]
    assert np.abs(np.array([[p[k] for k in python.labels] for p in probabilities])
                  - np.array([[r["probabilities"][k] for k in python.labels] for r in python.predict(LONG)])).max() <= 1e-5


def test_strategies_differ_on_long_text(trained):
    """The rule is not a no-op: the three strategies read three different windows of a long text."""
    from kdeploy.modelio.inputs import set_truncation, tokenize
    from kdeploy.modelio.loading import load_tokenizer

    root, _ = trained
    tok = load_tokenizer(str(root / "teacher"))
    windows = {s: tokenize(set_truncation(tok, s), [LONG[0]], 16, padding=False)["input_ids"][0]
               for s in ("head", "tail", "head+tail:5")}
    assert len({tuple(w) for w in windows.values()}) == 3 and all(len(w) == 16 for w in windows.values())


def test_manifest_truncation_is_checked():
    from kdeploy.manifest import BundleManifest

    from kdeploy.manifest import BUNDLE_FORMAT, BundleError

    base = dict(format=BUNDLE_FORMAT, model="m.onnx", tokenizer="t.json", label_names=["a", "b"], max_length=16,
                files={"m.onnx": {"sha256": "0" * 64, "bytes": 1}, "t.json": {"sha256": "0" * 64, "bytes": 1}})
    BundleManifest.parse(json.dumps({**base, "truncation": "head+tail:4"}).encode(), "x")
    for bad in ({"truncation": "head+tail:40"}, {"truncation": "middle"}, {"truncation": "tail", "pairs": True}):
        with pytest.raises(BundleError, match="malformed truncation"):
            BundleManifest.parse(json.dumps({**base, **bad}).encode(), "x")


def test_a_student_inherits_the_teachers_reading(trained, toy_files, tmp_path, cache_dir, capsys):
    """No --truncation: the student reads as its teacher was trained to (head+tail:4 fits 32
    too); the teacher's soft labels come from its own 16-token window, said in one line."""

    from kdeploy.distill.api import distill

    root, _ = trained
    record = distill(distill_settings(student={"kind": "layers", "layers": 1}, train={"epochs": 1, "max_length": 32}),
                     teacher=str(root / "teacher"), data=data_of(toy_files), out=tmp_path / "student")
    assert record.data["truncation"] == "head+tail:4"
    assert "reads 16 tokens (head+tail:4), as it was trained; the student reads 32" in " ".join(capsys.readouterr().out.split())


def test_auto_window_rule():
    from kdeploy.distill.config import auto_max_length

    assert auto_max_length([20] * 95 + [400] * 5, 512, False)[:2] == (128, None)  # sentences: unchanged
    assert auto_max_length([600] * 100, 512, False)[:2] == (512, "head+tail")  # documents, a transformer
    assert auto_max_length([600] * 100, 512, True)[:2] == (512, None)  # --truncation given: kept
    assert auto_max_length([300] * 100, 512, False)[:2] == (512, None)  # fits the long window whole
    assert auto_max_length([600] * 100, None, False)[:2] == (640, None)  # a BiLSTM reads it whole
    assert auto_max_length([9000] * 100, None, False)[:2] == (2048, None)
    assert auto_max_length([600] * 100, 256, False)[:2] == (256, "head+tail")  # the position table bounds it
    # issue 42 #15: a model of 64 positions gets 64 by default, never a window it cannot read
    window, cut_, why = auto_max_length([20] * 100, 64, False)
    assert (window, cut_) == (64, None) and "limit" in why and "--max-length 128" not in why
    assert "--max-length 128" not in auto_max_length([600] * 100, 64, False)[2]  # no advice to go longer


def test_distill_default_window_fits_a_short_position_table(toy_files, tmp_path, cache_dir):
    """Issue 42 #15, end to end: a RoBERTa teacher with 64 positions, no --max-length."""
    from kdeploy.distill.api import distill

    from tiny_families import build_teacher

    teacher = build_teacher("roberta", tmp_path / "teacher")
    record = distill(distill_settings(student={"layers": 1}, train={"epochs": 1, "max_length": None}),
                     teacher=str(teacher), data=data_of(toy_files), out=tmp_path / "student", cache_dir=cache_dir)
    assert record.config["settings"]["train"]["max_length"] == 64


def test_long_training_texts_get_a_long_window(tmp_path, tiny_base_bert, cache_dir, capsys):
    """max_length left out on long documents: the window grows and head+tail is chosen, in one line."""
    from conftest import write_tsv

    from kdeploy.data import DataConfig
    from kdeploy.distill.api import finetune

    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(["good", "film", "plot", "dull"], 150)), ["negative", "positive"][i % 2])
            for i in range(40)]
    train = write_tsv(tmp_path / "train.tsv", rows)
    record = finetune(finetune_settings(train={"epochs": 1, "max_length": None}), model=str(tiny_base_bert),
                      data=DataConfig(train=str(train)), out=tmp_path / "t")
    assert record.config["settings"]["train"]["max_length"] == 128  # the tiny BERT's position table
    assert record.data["truncation"] == "head+tail:32"
    assert "max_length: 128 tokens, head+tail" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("kind", ["bpe", "unigram", "unigram-replace"])
@pytest.mark.parametrize("strategy", ["head", "tail", "head+tail:5"])
def test_a_bpe_or_unigram_tokenizer_in_the_graph_reads_the_same_tokens(tmp_path, strategy, kind):
    """Byte-level BPE (RoBERTa's <s> … </s>) through the extensions' tokenizer.json reader, and
    Unigram (XLM-R's Metaspace, with and without a normaliser's Replace rule) through
    SentencepieceTokenizer, then kdeploy.truncation's cut: `tokenizers`' ids for each strategy,
    spaces leading, trailing and repeated, empty texts and the hostile texts included."""
    pytest.importorskip("onnxruntime_extensions")
    import onnxruntime as ort

    from kdeploy.modelio.inputs import set_truncation, tokenize
    from kdeploy.modelio.loading import load_tokenizer
    from kdeploy.modelio.onnx_session import extensions_library
    from kdeploy.package.tokenizer_graph import in_graph_tokenizer, tokenizer_model
    from kdeploy.truncation import refit
    from tiny_families import build_tokenizer

    from kdeploy.package.hostile_texts import HOSTILE_TEXTS

    build_tokenizer(kind.split("-")[0], tmp_path, token_types=False)
    if kind == "unigram-replace":  # XLM-R collapses space runs in its normaliser
        spec = json.loads((tmp_path / "tokenizer.json").read_text())
        spec["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
        (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    tokenizer = load_tokenizer(str(tmp_path))
    set_truncation(tokenizer, refit(strategy, 16))
    texts = LONG + ["short one", "", " ", "  two  spaces  ", "naïve café €, 你好"] + \
        [t for t in HOSTILE_TEXTS if "\x00" not in t]  # the extensions read C strings: a NUL ends the text
    want = tokenize(tokenizer, texts, 16, padding=False)["input_ids"]
    assert max(len(tokenizer(t)["input_ids"]) for t in texts) > 16 and max(map(len, want)) == 16
    attributes, table = in_graph_tokenizer(tmp_path / "tokenizer.json", 16)
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    graph = ort.InferenceSession(tokenizer_model(attributes, table, truncation=strategy).SerializeToString(), options)
    got = [graph.run(None, {"text": np.array([t], dtype=object)}) for t in texts]
    assert [g[0].tolist() for g in got] == want
    assert all(g[2].tolist() == [1] * len(w) and g[1].tolist() == [0] * len(w) for g, w in zip(got, want))


@pytest.mark.parametrize("change, refusal", [
    ({"model": {"byte_fallback": True}}, "byte fallback is not built in the graph"),
    ({"normalizer": {"type": "Lowercase"}}, "normaliser step Lowercase is not built"),
    ({"pre_tokenizer": {"type": "Whitespace"}}, "pre-tokenizer \\(Whitespace\\) is not SentencePiece's Metaspace"),
    ({"post_processor": None}, "post-processor \\(None\\) is not one special token before")])
def test_a_unigram_tokenizer_the_graph_cannot_reproduce_is_refused_in_one_line(tmp_path, change, refusal):
    from kdeploy.package.tokenizer_graph import in_graph_tokenizer
    from tiny_families import build_tokenizer

    build_tokenizer("unigram", tmp_path, token_types=False)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    for key, value in change.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and key == "model" else value
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(KdeployError, match=refusal):
        in_graph_tokenizer(tmp_path / "tokenizer.json", 16)
    with pytest.raises(KdeployError, match="pair template is not built in the graph"):
        build_tokenizer("unigram", tmp_path / "ok", token_types=False)
        in_graph_tokenizer(tmp_path / "ok" / "tokenizer.json", 16, pairs=True)


def test_chunk_and_pool_reads_a_long_text_window_by_window(tiny_bert):
    """A text that fits is read once, exactly as without chunks; a longer one is the mean of its
    windows' logits, each window a run of consecutive tokens of the text."""
    from kdeploy.modelio.loading import load_classifier, load_tokenizer
    from kdeploy.modelio.torch_infer import chunked_logits, compute_logits

    model, tok = load_classifier(str(tiny_bert)), load_tokenizer(str(tiny_bert))
    short = "good great fine movie"
    long = " ".join(["good movie great acting", "bad plot awful ending", "fine"] * 12)  # ~100 tokens
    window = 16  # 14 tokens of text per window beside [CLS] and [SEP]
    got = chunked_logits(model, tok, [short, long], window)
    np.testing.assert_allclose(got[0], compute_logits(model, tok, [short], window)[0], atol=1e-6)  # batch-mates aside
    ids = tok(long, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode(ids[k:k + window - 2]) for k in range(0, len(ids), window - 2)]
    assert len(pieces) == -(-len(ids) // (window - 2)) > 1
    np.testing.assert_allclose(got[1], compute_logits(model, tok, pieces, window).mean(0), atol=1e-6)
    assert np.abs(got[1] - compute_logits(model, tok, [long], window)[0]).max() > 5e-6  # not the head alone


def test_a_student_learns_from_a_chunked_teacher(tiny_bert, toy_files, tmp_path, cache_dir):
    from kdeploy.data import load_task_data
    from kdeploy.distill.api import distill
    from kdeploy.modelio.loading import load_classifier, load_tokenizer
    from kdeploy.modelio.torch_infer import chunked_logits, compute_logits

    from conftest import distill_settings

    record = distill(distill_settings(train={"epochs": 1, "max_length": 8}, teacher_chunks=True),
                     teacher=str(tiny_bert), data=data_of(toy_files), out=tmp_path / "chunked")
    assert record.config["settings"]["teacher_chunks"] is True
    cached = [np.load(f) for f in (cache_dir / "teacher-logits").glob("*.npy")]
    model, tok = load_classifier(str(tiny_bert)), load_tokenizer(str(tiny_bert))
    test = load_task_data(data_of(toy_files)).texts("test")  # toy sentences run past the 6 tokens of a window
    pooled, head = chunked_logits(model, tok, test, 8), compute_logits(model, tok, test, 8)
    assert len(cached) == 3 and any(c.shape == pooled.shape and np.allclose(c, pooled, atol=1e-6) for c in cached)
    assert not any(c.shape == head.shape and np.allclose(c, head, atol=1e-6) for c in cached)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("sentence1\tsentence2\tlabel\na good film\tfine\tpositive\nbad\tawful plot\tnegative\n")
    from kdeploy.data import DataConfig

    with pytest.raises(KdeployError, match="--teacher-chunks reads one long text"):
        distill(distill_settings(teacher_chunks=True), teacher=str(tiny_bert),
                data=DataConfig(train=str(pairs), validation=str(pairs)), out=tmp_path / "p")


def test_a_window_of_special_tokens_only_is_refused(toy_files, tmp_path, tiny_bert, cache_dir):
    """Issue 42 #16: --max-length 2 made every text [CLS][SEP]; refused in one line, with the minimum."""
    from kdeploy.distill.api import distill

    with pytest.raises(KdeployError, match=r"--max-length 2 leaves no room for the text.*--max-length 3 or more"):
        distill(distill_settings(student={"layers": 1}, train={"epochs": 1, "max_length": 2}), teacher=str(tiny_bert),
                data=data_of(toy_files), out=tmp_path / "student", cache_dir=cache_dir)
    assert not (tmp_path / "student").exists()


def test_a_fractional_epoch_budget_is_not_overrun(toy_files, tmp_path, tiny_bert, cache_dir, capsys):
    """Issue 42 (minor): --epochs 0.5 trained 0.6 of an epoch and printed "epoch 0.6/0.5"."""
    import re

    from kdeploy.distill.api import distill

    record = distill(distill_settings(student={"layers": 1}, train={"epochs": 0.5, "batch_size": 32}),
                     teacher=str(tiny_bert), data=data_of(toy_files), out=tmp_path / "student", cache_dir=cache_dir)
    said = [float(e) for e in re.findall(r"epoch ([0-9.]+)/0\.5", capsys.readouterr().out)]
    assert said and max(said) <= 0.5, said
    assert record.epochs and max(e["epoch"] for e in record.epochs) <= 0.5


def test_long_work_to_a_pipe_says_where_it_is(toy_files, tmp_path, tiny_bert, cache_dir, capsys, monkeypatch):
    """Issue 42 (minor): with output to a file or a pipe, training and the probe printed nothing
    for tens of minutes; now a line every KDEPLOY_PROGRESS_S seconds (0 here: every step)."""
    import kdeploy.progress as progress
    from kdeploy.distill.api import distill

    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    distill(distill_settings(student={"layers": 1}, train={"epochs": 1}), teacher=str(tiny_bert),
            data=data_of(toy_files), out=tmp_path / "student", cache_dir=cache_dir)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "training steps: " in err and "/10 (" in err
    beat = progress.Heartbeat("x", 4, every=0.0)
    beat(2)
    assert beat.line(beat.started + 60).startswith("x: 2/4 (50%), 1 min 00 s, about 1 min 00 s left")
