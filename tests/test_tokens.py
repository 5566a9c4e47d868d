"""Entity taggers (the token-classification task kind): data, the labelling rule, the KD loss,
entity F1, and one tiny tagger through finetune → distill → export → package → predict, its
spans identical in PyTorch and the bundle."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdeploy.errors import KdeployError
from kdeploy.tasks import task_kind
from kdeploy.tasks.tokens import strict_entities, tag_names, to_bio2, word_spans

from conftest import NER_FILLER as FILLER, PEOPLE, PLACES, assert_one_error_line, cli, write_ner

TOKENS = task_kind("token-classification")
NAMES = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_bio2_repair_and_spans_golden():
    assert to_bio2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == (
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-PER"], 3)
    assert to_bio2(["B-PER", "I-PER", "O"]) == (["B-PER", "I-PER", "O"], 0)
    # the pipeline's grouping: an I-X after O starts an entity; strict BIO2 (the metric) drops it
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]
    assert word_spans(tags) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("PER", 5, 6)]
    assert strict_entities(tags) == {("PER", 0, 2), ("LOC", 4, 5)}
    assert tag_names({"B-PER", "I-LOC", "O"}) == NAMES


def test_entity_f1_golden_values_are_seqeval_strict():
    gold = [[3, 4, 0, 1], [0, 1, 2]]  # PER(0,2) LOC(3,4) | LOC(1,3)
    predicted = [[3, 4, 0, 2], [0, 1, 2]]  # PER right, an I-LOC after O (not an entity), LOC right
    logits = [np.eye(5)[row] * 4 for row in predicted]
    scores = TOKENS.score(logits, gold, label_names=NAMES)
    # 2 correct of 2 predicted, of 3 gold: P 1, R 2/3, F1 0.8
    assert scores.metrics == pytest.approx({"entity_f1": 0.8, "entity_precision": 1.0, "entity_recall": 2 / 3})
    assert scores.per_label == pytest.approx([2 / 3, 1.0])  # LOC, PER
    same = TOKENS.paired_test(logits, logits, gold, label_names=NAMES)
    assert same["drop_ci95_points"] == [0.0, 0.0]
    assert TOKENS.trivial_score(None, gold, NAMES)[0] == 0.0


def test_token_kd_loss_golden_values():
    """(1-α)·CE at gold first sub-tokens + α·T²·KL(t/T ‖ s/T) at every first sub-token (-100 elsewhere;
    -1: a word with no gold tag, distilled only)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, 3, 4, -100], [-100, -1, 0, -100]])
    alpha, temp = 0.3, 2.0
    got = TOKENS.kd_loss(s, t, labels, alpha, temp)
    at = labels != -100
    gold = labels >= 0
    ce = F.cross_entropy(s[gold], labels[gold])
    p_t = F.softmax(t[at] / temp, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s[at] / temp, -1))).sum(-1).mean()
    assert float(got) == pytest.approx(float((1 - alpha) * ce + alpha * temp ** 2 * kl), rel=1e-6)
    assert float(TOKENS.kd_loss(t, t, labels, 1.0, temp)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ner")
    return {"train": write_ner(d / "train.jsonl", 300, 1), "validation": write_ner(d / "dev.jsonl", 60, 2),
            "test": write_ner(d / "test.jsonl", 60, 3)}


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 4-layer, 32-wide BERT base (no head) whose vocabulary spells out unknown words (##a..##z)."""
    import torch
    from transformers import BertConfig, BertModel

    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tagger-base")
    letters = list("abcdefghijklmnopqrstuvwxyz")  # lima and quito are not words here: they spell out (##)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "-"] + sorted(
        set(PEOPLE + PLACES[:3] + FILLER + letters)) + [f"##{c}" for c in letters]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    return folder


def test_conll_columns_iob1_and_id_tags_are_read_and_said(tmp_path, capsys):
    from kdeploy.data import DataConfig, load_task_data

    conll = tmp_path / "train.conll"
    conll.write_text("-DOCSTART- -X- O O\n\nAlice NNP I-PER\nSmith NNP I-PER\nin IN O\nRome NNP I-LOC\n\n"
                     "Bob NNP I-PER\nsmiled VBD O\n")
    data = load_task_data(DataConfig(train=str(conll), validation=str(conll), task="token-classification"))
    assert data.label_names == NAMES
    assert list(data.splits["train"]["words"]) == [["Alice", "Smith", "in", "Rome"], ["Bob", "smiled"]]
    assert list(data.splits["train"]["label"]) == [[3, 4, 0, 1], [3, 0]]
    assert "3 tags made BIO2" in capsys.readouterr().err
    ids = tmp_path / "ids.jsonl"
    ids.write_text(json.dumps({"tokens": ["Bob", "went"], "ner_tags": [1, 0]}) + "\n")
    with pytest.raises(KdeployError, match="--label-names"):
        load_task_data(DataConfig(train=str(ids), task="token-classification"))
    read = load_task_data(DataConfig(train=str(ids), validation=str(ids), test=str(ids), task="token-classification",
                                     label_names=["O", "B-PER", "I-PER"]))
    assert list(read.splits["test"]["label"]) == [[1, 0]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(KdeployError, match="sentence 1 has 2 words but 1 tags"):
        load_task_data(DataConfig(train=str(bad), task="token-classification"))
    hostile = {"empty": ("", "no sentences"),
               "null-tag": ('{"tokens": ["a"], "tags": [null]}\n', "sentence 1 has tag None"),
               "nan-tag": ('{"tokens": ["a"], "tags": [NaN]}\n', "sentence 1 has tag nan"),
               "one-sentence": ('{"tokens": ["a"], "tags": ["O"]}\n', "too few to set a validation split aside")}
    for name, (text, says) in hostile.items():
        (tmp_path / f"{name}.jsonl").write_text(text)
        with pytest.raises(KdeployError, match=says):
            load_task_data(DataConfig(train=str(tmp_path / f"{name}.jsonl"), task="token-classification"))


def test_tags_in_other_schemes_blank_words_empty_sentences_and_test_only_tags_are_said(tmp_path, capsys):
    """BIOES/BILOU and prefix-less IO tags become BIO2; blank words (whitespace, zero-width) and the
    sentences left empty are dropped; a tag only evaluation has is kept in the tag set — each said."""
    from kdeploy.data import DataConfig, load_task_data

    def rows(*sentences):
        return "".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in sentences)

    assert to_bio2(["S-PER", "O", "B-LOC", "E-LOC", "U-ORG", "L-ORG", "b_per"]) == (
        ["B-PER", "O", "B-LOC", "I-LOC", "B-ORG", "B-ORG", "B-per"], 5)
    assert to_bio2(["PER", "PER", "O", "LOC"]) == (["B-PER", "I-PER", "O", "B-LOC"], 3)  # IO: runs merge
    train = tmp_path / "train.jsonl"
    train.write_text(rows((["Ann", "Lee", "met", "Bo"], ["B-PER", "E-PER", "O", "S-PER"]),
                          ([], []), (["Ann", " ", "\u200b", "Lee", "\t"], ["B-PER", "I-PER", "I-PER", "I-PER", "O"]),
                          (["in", "Oslo"], ["O", "S-LOC"])))
    test = tmp_path / "test.jsonl"
    test.write_text(rows((["Acme", "hired", "Bo"], ["B-ORG", "O", "B-PER"])))
    data = load_task_data(DataConfig(train=str(train), validation=str(train), test=str(test),
                                     task="token-classification"))
    said = capsys.readouterr().err
    assert list(data.splits["train"]["words"]) == [["Ann", "Lee", "met", "Bo"], ["Ann", "Lee"], ["in", "Oslo"]]
    names = data.label_names
    assert names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert [[names[i] for i in s] for s in data.splits["train"]["label"]] == [
        ["B-PER", "I-PER", "O", "B-PER"], ["B-PER", "I-PER"], ["O", "B-LOC"]]
    assert f"{train}: 3 tags made BIO2" in said and "BIOES/BILOU" in said
    assert f"{train}: 3 blank words dropped" in said and "2 of them were tagged as part of an entity" in said
    assert f"{train}: 1 empty sentences skipped" in said
    assert "tags B-ORG occur in evaluation but never in train" in said


def _kdeploy(*args) -> str:
    code, out, err = cli(*map(str, args))
    assert code == 0, err[-2000:]
    return out + err


@pytest.fixture(scope="module")
def tagger_bundle(tmp_path_factory, tiny_encoder, ner_files) -> dict[str, Path]:
    """A tiny teacher fine-tuned, a 2-layer student distilled from it, exported int8 and packaged."""
    d = tmp_path_factory.mktemp("tagger")
    data = ["--train", ner_files["train"], "--validation", ner_files["validation"], "--test", ner_files["test"],
            "--task", "token-classification"]
    train = ["--epochs", 10, "--early-stopping", 0, "--lr", "8e-3", "--batch-size", 16]
    log = _kdeploy("finetune", "--model", tiny_encoder, *data, *train, "--out", d / "teacher")
    log += _kdeploy("distill", "--teacher", d / "teacher", *data, "--student-layers", 2, "--augment", 1, *train,
                    "--out", d / "student")
    log += _kdeploy("export", d / "student", "--test", ner_files["test"], "--out", d / "onnx")
    log += _kdeploy("package", d / "onnx", "--out", d / "bundle")
    return {"teacher": d / "teacher", "student": d / "student", "onnx": d / "onnx", "bundle": d / "bundle",
            "log": log}


def test_a_tagger_learns_and_says_its_retention(tagger_bundle):
    record = json.loads((tagger_bundle["student"] / "kdeploy.json").read_text())
    assert record["data"]["task"] == "token-classification"
    assert record["test"]["metrics"]["entity_f1"] > 0.85  # the toy task is lexical: a tagger that learned gets it
    assert record["retention"]["trivial"] == 0.0 and record["retention"]["student"] > 0.85
    assert record["training_examples"]["augmented"] == 300 and record["training_examples"]["copies"] == 1
    assert "augment: 1 entity-aware copies per sentence" in tagger_bundle["log"]
    assert "retention on validation: student entity F1" in tagger_bundle["log"]
    report = json.loads((tagger_bundle["onnx"] / "export_report.json").read_text())
    assert report["parity"]["model.onnx"]["passed"] and report["parity"]["model.onnx"]["max_abs_diff"] < 1e-4
    int8 = report["accuracy"]["files"]["model.int8.onnx"]
    assert int8["gate_passed"] and int8["paired_test"]["test"] == "paired bootstrap over sentences"
    for name in ("model.onnx", "model.int8.onnx"):
        assert report["files"][name]["invariance"]["flips"] == 0


def test_bundle_spans_match_pytorch_and_redact(tagger_bundle):
    """The bundle's spans are PyTorch's, character offsets and all, on texts the tokenizer splits
    itself (punctuation, spelled-out words, case, emoji)."""
    import torch
    from tokenizers import Tokenizer

    from kdeploy.edge import Predictor
    from kdeploy.modelio.loading import load_classifier
    from kdeploy.modelio.words import text_spans

    texts = ["Alice and Bob met in Rome.", "the story was quite ALICE-ish , in lima 😀 !", "nothing to see",
             "erin carol paris quito oslo", ""]
    predictor = Predictor(tagger_bundle["bundle"])
    bundled = predictor.predict(texts)
    model = load_classifier(str(tagger_bundle["student"]), model_class=TOKENS.model_class).eval()
    tok = Tokenizer.from_file(str(tagger_bundle["student"] / "tokenizer.json"))
    for text, got in zip(texts, bundled):
        enc = tok.encode(text)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([enc.ids]), attention_mask=torch.tensor([enc.attention_mask])).logits[0]
        want = text_spans(text, enc.offsets, enc.word_ids, TOKENS.outputs(logits.numpy()), predictor.labels)
        assert [(e.entity, e.start, e.end, e.text) for e in got.entities] == \
            [(w["entity"], w["start"], w["end"], w["text"]) for w in want]
        assert [e.score for e in got.entities] == pytest.approx([w["score"] for w in want], abs=2e-2)  # int8
        for e in got.entities:
            assert text[e.start:e.end] == e.text
    from kdeploy.package.hostile_texts import HOSTILE_TEXTS

    for text, got in zip(HOSTILE_TEXTS, predictor.predict(list(HOSTILE_TEXTS))):  # NUL, CJK, combining marks, …
        assert all(text[e.start:e.end] == e.text and 0 <= e.start < e.end <= len(text) for e in got.entities)
    known = predictor.predict("the story was Alice and Bob and Rome .")[0]  # words the toy data has
    assert [(e.entity, e.text) for e in known.entities] == [("PER", "Alice"), ("PER", "Bob"), ("LOC", "Rome")]
    code, out, _ = cli("predict", tagger_bundle["bundle"], "--redact", "the story was Alice and Bob and Rome .")
    assert code == 0 and out.strip() == "the story was [PER] and [PER] and [LOC] ."
    assert predictor.manifest.task == "token-classification" and predictor.manifest.batch_invariant


def test_a_text_longer_than_the_window_is_read_whole(tagger_bundle):
    """Split into overlapping windows and merged (each token from the window that gives it the
    most context): every copy of a sentence keeps its entities, none past the window is left
    unredacted, and a text that fits is read exactly as before."""
    from kdeploy.edge import Predictor

    predictor = Predictor(tagger_bundle["bundle"])
    sentence = "the story was Alice and Bob and Rome . "
    once = [(e.entity, e.text) for e in predictor.predict(sentence)[0].entities]
    assert once == [("PER", "Alice"), ("PER", "Bob"), ("LOC", "Rome")]
    text = sentence * 30
    assert len(predictor._whole.encode(text).ids) > 4 * predictor.max_length
    got = predictor.predict(text)[0].entities
    assert [(e.entity, e.text) for e in got] == once * 30
    assert all(text[e.start:e.end] == e.text for e in got)
    assert [e.start for e in got] == sorted({e.start for e in got})  # in order, none read twice
    code, out, _ = cli("predict", tagger_bundle["bundle"], "--redact", text)
    assert code == 0 and out.strip() == ("the story was [PER] and [PER] and [LOC] . " * 30).strip()


def test_the_e2e_bundle_gives_the_python_bundles_spans_from_text_alone(tagger_bundle, tmp_path):
    """One ONNX file, text in, entities with code-point offsets out (the tokenizer, the word rule
    and the grouping in the graph), gated at package time on the python bundle's spans; run here
    as an app would, with onnxruntime and the extensions library only."""
    import numpy as np
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    from kdeploy.edge import Predictor
    from kdeploy.package.hostile_texts import HOSTILE_TEXTS

    log = _kdeploy("package", tagger_bundle["onnx"], "--format", "onnx-e2e", "--out", tmp_path / "e2e")
    assert "e2e gate: entities (type, start, end) identical on" in log
    manifest = json.loads((tmp_path / "e2e" / "bundle.json").read_text())
    gate = manifest["parity"]["e2e"]
    assert gate["compared"] == "spans" and gate["identical"] == gate["texts"] >= 60 and gate["max_abs_diff"] < 1e-5
    e2e, python = Predictor(tmp_path / "e2e"), Predictor(tagger_bundle["bundle"])
    texts = ["the story was Alice and Bob and Rome .", "Ça, ALICE-ish! erin\u0301 carol\u200b oslo 😀 北京 lima",
             "  quito\tparis\n", ""] + [t for t in HOSTILE_TEXTS if "\x00" not in t and len(t) < 200]
    for text, a in zip(texts, e2e.predict(texts)):
        b = python.predict(text)[0]  # alone, as the graph reads every text
        assert [(e.entity, e.start, e.end, e.text) for e in a.entities] == \
            [(e.entity, e.start, e.end, e.text) for e in b.entities], text
        assert [e.score for e in a.entities] == pytest.approx([e.score for e in b.entities], abs=1e-5)
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(str(tmp_path / "e2e" / manifest["model"]), options,
                                   providers=["CPUExecutionProvider"])
    entity, start, end, _ = session.run(["entity", "start", "end", "score"],
                                        {"text": np.array([texts[0]], dtype=object)})
    assert [(str(k), int(a), int(b)) for k, a, b in zip(entity, start, end)] == [("PER", 14, 19), ("PER", 24, 27),
                                                                                ("LOC", 32, 36)]
    with pytest.raises(KdeployError, match="reads one text a call"):
        e2e.outputs(texts[:2])
    code, out, _ = cli("predict", tmp_path / "e2e", "--redact", texts[0])
    assert code == 0 and out.strip() == "the story was [PER] and [PER] and [LOC] ."
    assert "code-point" in (tmp_path / "e2e" / "README.md").read_text()


def test_a_bilstm_tagger_distils_exports_and_gives_the_same_spans(tagger_bundle, ner_files, tmp_path):
    """A BiLSTM over the teacher's tokenizer and embeddings, a tag per token: distilled at the
    words' first sub-tokens, exported with the per-token parity gate, bundled, spans as PyTorch's."""
    import torch
    from tokenizers import Tokenizer

    from kdeploy.edge import Predictor
    from kdeploy.modelio.loading import load_classifier
    from kdeploy.modelio.words import text_spans

    data = ["--train", ner_files["train"], "--validation", ner_files["validation"], "--test", ner_files["test"],
            "--task", "token-classification"]
    _kdeploy("distill", "--teacher", tagger_bundle["teacher"], *data, "--student", "bilstm", "--hidden-size", 32,
             "--epochs", 8, "--early-stopping", 0, "--lr", "1e-2", "--batch-size", 16, "--out", tmp_path / "s")
    record = json.loads((tmp_path / "s" / "kdeploy.json").read_text())
    assert record["model"]["builder"] == "kdeploy-bilstm" and record["test"]["metrics"]["entity_f1"] > 0.8
    _kdeploy("export", tmp_path / "s", "--test", ner_files["test"], "--out", tmp_path / "onnx")
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    assert report["parity"]["model.onnx"]["passed"]
    assert all(f["invariance"]["flips"] == 0 for f in report["files"].values())
    _kdeploy("package", tmp_path / "onnx", "--out", tmp_path / "bundle")
    predictor = Predictor(tmp_path / "bundle")
    model = load_classifier(str(tmp_path / "s"), model_class=TOKENS.model_class).eval()
    tok = Tokenizer.from_file(str(tmp_path / "s" / "tokenizer.json"))
    texts = ["the story was Alice and Bob and Rome .", "Erin , Carol ; lima 😀 oslo", ""]
    for text, got in zip(texts, predictor.predict(texts)):
        enc = tok.encode(text)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([enc.ids]), attention_mask=torch.tensor([enc.attention_mask])).logits[0]
        want = text_spans(text, enc.offsets, enc.word_ids, TOKENS.outputs(logits.numpy()), predictor.labels)
        assert [(e.entity, e.start, e.end) for e in got.entities] == [(w["entity"], w["start"], w["end"]) for w in want]
    assert [(e.entity, e.text) for e in predictor.predict(texts[0])[0].entities] == [
        ("PER", "Alice"), ("PER", "Bob"), ("LOC", "Rome")]


def test_a_student_that_learned_nothing_is_refused_by_export(tmp_path, tiny_encoder, ner_files):
    """Zero epochs' worth of learning: the retention verdict (trivial answer: O everywhere) stops export."""
    from kdeploy.distill.result import TrainingResult

    folder = tmp_path / "blank"
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(
        tiny_encoder, num_labels=5, id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    model.config.problem_type = TOKENS.problem_type
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes((tiny_encoder / "tokenizer.json").read_bytes())
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_encoder / name).exists():
            (folder / name).write_bytes((tiny_encoder / name).read_bytes())
    from kdeploy.metrics import Scores
    from kdeploy.retention import verdict

    record = TrainingResult(stage="distill", model={"builder": "layers"}, parameters=0, config={},
                            data={"task": TOKENS.name})
    record.retention = verdict(Scores({"entity_f1": 0.01}), Scores({"entity_f1": 0.95}), None, [[0]], NAMES,
                               "validation", TOKENS.name)
    record.save(folder / "kdeploy.json")
    code, _, err = cli("export", folder, "--test", ner_files["test"], "--out", tmp_path / "x")
    assert_one_error_line(code, err, "--allow-low-retention")
    assert not (tmp_path / "x").exists()


def test_what_a_tagger_does_not_have_yet_is_refused_in_one_line(tagger_bundle, ner_files, tiny_bundle, tmp_path):
    """Each before any work: the stage or variant names what it supports."""
    code, _, err = cli("prune", tagger_bundle["student"], "--out", tmp_path / "p")
    assert_one_error_line(code, err, "a token-classification model is not supported yet")
    code, _, err = cli("bench", tagger_bundle["onnx"] / "model.int8.onnx", "--data", ner_files["test"],
                       "--out", tmp_path / "b")
    assert_one_error_line(code, err, "bench/ner_conll.py")
    code, _, err = cli("package", tagger_bundle["onnx"], "--format", "web", "--out", tmp_path / "w")
    assert_one_error_line(code, err, "does not support a token-classification task (it supports: onnx-e2e, python)")
    code, _, err = cli("distill", "--teacher", tagger_bundle["teacher"], "--task", "token-classification",
                       "--train", ner_files["train"], "--student", "cnn", "--out", tmp_path / "s")
    assert_one_error_line(code, err, "does not support a token-classification task (it supports: bilstm, layers)")
    code, _, err = cli("predict", tagger_bundle["bundle"], "--pair", "a", "b")
    assert_one_error_line(code, err, "reads one text per example")
    code, _, err = cli("predict", tiny_bundle, "--redact", "a good film")
    assert_one_error_line(code, err, "--redact replaces the entities an entity tagger finds")
    assert not any((tmp_path / n).exists() for n in ("p", "b", "w", "s"))


def test_entity_aware_copies_keep_a_gold_tag_per_word():
    """Mentions swapped for others of their type, words outside entities dropped or masked, the
    tags still valid BIO2 and still the words' own; the same seed gives the same copies."""
    from kdeploy.distill.entity_augment import entity_copies, mentions_by_type

    words = [["alice", "met", "bob", "carol", "in", "rome", "."], ["dave", "went", "to", "oslo"]]
    tags = [["B-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O"], ["B-PER", "O", "O", "B-LOC"]]
    mentions = mentions_by_type(words, tags)
    assert mentions == {"PER": [("alice",), ("bob", "carol"), ("dave",)], "LOC": [("rome",), ("oslo",)]}
    cw, ct = entity_copies(words, tags, 4, 0, "[MASK]", rate=0.5)
    assert len(cw) == 8 and all(len(w) == len(t) for w, t in zip(cw, ct))
    assert (cw, ct) == entity_copies(words, tags, 4, 0, "[MASK]", rate=0.5)
    assert (cw, ct) != entity_copies(words, tags, 4, 1, "[MASK]", rate=0.5)
    for w, t in zip(cw, ct):
        assert to_bio2(t)[1] == 0
        assert all(tuple(w[a:b]) in mentions[kind] for kind, a, b in strict_entities(t))
        assert all(tag == "O" for word, tag in zip(w, t) if word == "[MASK]")
    originals = [w for w in words for _ in range(4)]
    assert any(c != o for c, o in zip(cw, originals))
