"""Vocabulary trimming: the same logits on text of kept tokens, [UNK] for unseen words,
and a trimmed model that exports and packages like any other."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import NEGATIVE, data_of, write_tsv
from kdeploy.errors import KdeployError
from kdeploy.export.config import ExportSettings
from kdeploy.prune.api import prune
from kdeploy.prune.config import PruneSettings
from kdeploy.prune.vocab import trim_vocabulary

KEPT = ["the film was good", "a great and moving story", "it was quite funny"]


def _logits(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.numpy()


def test_kept_text_gives_identical_logits_and_unseen_words_become_unk(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    before = _logits(model, tok, KEPT)
    trimmed_model, trimmed_tok, record = trim_vocabulary(model, tok, KEPT)
    assert record["vocab_after"] < record["vocab_before"] == len(tok)
    assert len(trimmed_tok) == record["vocab_after"] == trimmed_model.get_input_embeddings().weight.shape[0]
    np.testing.assert_allclose(_logits(trimmed_model, trimmed_tok, KEPT), before, atol=1e-6)
    ids = trimmed_tok("the film was boring")["input_ids"]
    assert trimmed_tok.convert_ids_to_tokens(ids) == ["[CLS]", "the", "film", "was", "[UNK]", "[SEP]"]
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= set(trimmed_tok.get_vocab())  # specials always kept
    assert set("abcdefghijklmnopqrstuvwxyz") <= set(trimmed_tok.get_vocab())  # and single characters


def test_a_weighted_static_students_token_weights_are_trimmed_with_its_vectors(tiny_bert):
    """The static student's per-token weights are a second table indexed by token id: trimming
    keeps the same rows of both, so kept text gives the same logits."""
    from kdeploy.modelio.small_models import StaticConfig, StaticEmbeddingForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model = StaticEmbeddingForSequenceClassification(StaticConfig(
        vocab_size=len(tok), embedding_dim=8, hidden_size=4, dropout=0.0, token_weights=True)).eval()
    with torch.no_grad():
        model.token_weight.weight.uniform_(0.0, 3.0)  # unequal weights: a misaligned trim would show
    before = _logits(model, tok, KEPT)
    trimmed_model, trimmed_tok, record = trim_vocabulary(model, tok, KEPT)
    assert trimmed_model.token_weight.weight.shape == (record["vocab_after"], 1)
    np.testing.assert_allclose(_logits(trimmed_model, trimmed_tok, KEPT), before, atol=1e-6)


def test_prune_stage_exports_and_packages(tiny_bert, toy_files, tmp_path):
    from kdeploy.edge import Predictor
    from kdeploy.export.api import export
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    data = data_of(toy_files)
    r = prune(PruneSettings(), model=tiny_bert, out=tmp_path / "pruned", data=data)
    assert r.vocab["vocab_after"] <= r.vocab["vocab_before"]  # the toy text uses every word of the tiny vocabulary
    assert r.agreement == 1.0 and r.accuracy_change_points == 0.0  # toy test text uses only kept tokens
    saved = json.loads((tmp_path / "pruned/kdeploy.json").read_text())
    assert saved["pruning"]["vocab"] == r.vocab
    rep = export(ExportSettings(optimize=None, max_accuracy_drop=100), model=tmp_path / "pruned",
                 out=tmp_path / "onnx", data=data)
    assert rep.parity["model.onnx"].max_abs_diff < 1e-4
    bundle = package(PackageSettings(model_file="model.onnx", archive=None), export_dir=tmp_path / "onnx",
                     out=tmp_path / "bundle")
    texts = ["the film was good", "dull and tedious"]
    got = np.array([list(p["probabilities"].values()) for p in Predictor(bundle.bundle).predict(texts)])
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    want = torch.softmax(torch.tensor(_logits(model, tok, texts)), -1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_prune_errors_and_cli(tiny_bert, toy_files, tmp_path):
    with pytest.raises(KdeployError, match="which text's tokens to keep"):
        prune(PruneSettings(), model=tiny_bert, out=tmp_path / "x")
    with pytest.raises(KdeployError, match="nothing to prune"):
        PruneSettings(vocab=False)
    extra = write_tsv(tmp_path / "extra.tsv", [(" ".join(NEGATIVE), "negative")])
    cmd = [sys.executable, "-m", "kdeploy", "prune", str(tiny_bert), "--train", str(toy_files["train"]),
           "--test", str(toy_files["test"]), "--extra-corpus", str(extra), "--out", str(tmp_path / "p")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "vocabulary" in result.stdout and (tmp_path / "p/model.safetensors").exists()


def test_heads_to_prune_takes_the_least_important_and_keeps_one_per_layer():
    from kdeploy.prune.heads import heads_to_prune

    importance = np.array([[0.9, 0.1, 0.5], [0.05, 0.02, 0.8]])
    assert heads_to_prune(importance, 2 / 6) == {1: [0, 1]}
    assert heads_to_prune(importance, 3 / 6) == {0: [1], 1: [0, 1]}
    assert heads_to_prune(importance, 0.99) == {0: [1, 2], 1: [0, 1]}  # never a whole layer
    assert heads_to_prune(importance, 0.0) == {}
    with pytest.raises(KdeployError, match="in \\[0, 1\\)"):
        heads_to_prune(importance, 1.0)


def test_head_pruning_with_recovery_exports(tiny_bert, toy_files, tmp_path, cache_dir):
    from kdeploy.export.api import export

    data = data_of(toy_files)
    r = prune(PruneSettings(heads=0.5, vocab=False, recover_epochs=1, max_length=32), model=tiny_bert,
              out=tmp_path / "p", data=data)
    assert r.heads["heads_before"] == 8 and r.heads["heads_after"] == 4
    assert all(len(h) <= 1 for h in r.heads["pruned"].values())  # 2 heads per layer, one always kept
    assert r.recovery["epochs"] == 1 and r.parameters < r.parameters_before
    from kdeploy.modelio.loading import load_classifier

    model = load_classifier(str(tmp_path / "p"))  # transformers 5 rebuilds full width: kdeploy slices again
    assert sum(len(h) for h in model.config.pruned_heads.values()) == 4
    assert sum(layer.attention.self.query.out_features for layer in model.bert.encoder.layer) == 4 * 16
    rep = export(ExportSettings(optimize="O2", quantize="int8", max_accuracy_drop=100), model=tmp_path / "p",
                 out=tmp_path / "onnx", data=data)
    # whether model.opt.onnx is kept is export's timed choice (it depends on the CPU's load): every file kept passes
    fp32 = [name for name, f in rep.files.items() if f.dtype == "fp32"]  # int8 files are gated on accuracy instead
    assert "model.onnx" in fp32 and all(rep.parity[name].passed for name in fp32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "onnx", "p"]  # no work or temp folders left


def test_width_pruning_removes_neurons_for_real_and_exports(tiny_bert, toy_files, tmp_path, cache_dir):
    from kdeploy.export.api import export
    from kdeploy.prune.ffn import keep_count

    assert keep_count(1536, 0.5) == 768 and keep_count(1536, 0.3) == 1088 and keep_count(64, 0.9) == 32
    data = data_of(toy_files)
    r = prune(PruneSettings(ffn=0.5, vocab=True, recover_epochs=1, recover_layer_loss="hidden", max_length=32),
              model=tiny_bert, out=tmp_path / "narrow", data=data)
    assert r.ffn["width_before"] == 64 and r.ffn["width_after"] == 32 and r.ffn["layers"] == 4
    assert r.recovery["epochs"] == 1 and r.parameters < r.parameters_before and r.vocab is not None
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "narrow")
    assert model.config.intermediate_size == 32  # reloads as the smaller model
    assert all(layer.intermediate.dense.out_features == 32 for layer in model.bert.encoder.layer)
    recovery = json.loads((tmp_path / "narrow/kdeploy.json").read_text())
    assert recovery["layer_objective"]["losses"] == {"hidden": 1.0}  # recovered with a hidden-state loss
    rep = export(ExportSettings(max_accuracy_drop=100), model=tmp_path / "narrow", out=tmp_path / "onnx", data=data)
    assert rep.parity["model.onnx"].passed and rep.parity["model.opt.onnx"].passed
    assert "model.int8.onnx" in rep.files


def test_width_importance_prefers_the_neurons_that_matter(tiny_bert, toy_files):
    """Zero a layer's neuron: its importance becomes zero, and it is the first to go."""
    import torch

    from kdeploy.prune.ffn import ffn_importance

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight[:, 7] = 0  # neuron 7 of layer 0 feeds nothing
    rows = [line.split("\t") for line in toy_files["train"].read_text().splitlines()[1:]]
    texts, labels = [t for t, _ in rows], [int(l == "positive") for _, l in rows]
    importance = ffn_importance(model, tok, texts, labels, 32)
    assert importance.shape == (4, 64)
    assert importance[0, 7] == 0 and importance[0].argmin() == 7


def _tiny_roberta_bpe(folder: Path) -> Path:
    """A 2-layer RoBERTa classifier with a byte-level BPE tokenizer trained on the toy words."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

    from conftest import FILLER, NEGATIVE, POSITIVE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator([" ".join(POSITIVE + NEGATIVE + FILLER)] * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=fast.pad_token_id,
                           bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, type_vocab_size=1,
                           num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    RobertaForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_bpe_and_unigram_vocabularies_are_trimmed_with_identical_logits(kind, tmp_path):
    """Byte-level BPE (RoBERTa) keeps the merges that build its kept tokens; Unigram (XLM-R) the
    pieces kept text uses: every kept text gives the same logits, and unseen text still encodes."""
    from tiny_families import build_teacher

    folder = build_teacher("roberta" if kind == "bpe" else "xlm-roberta", tmp_path / kind)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    kept = KEPT + ["a quite dull and messy story", "superb acting, very smart plot"]
    before = _logits(model, tok, kept)
    trimmed_model, trimmed_tok, record = trim_vocabulary(model, tok, kept)
    assert record["vocab_after"] < record["vocab_before"] == len(tok)
    assert len(trimmed_tok) == record["vocab_after"] == trimmed_model.get_input_embeddings().weight.shape[0]
    np.testing.assert_array_equal(_logits(trimmed_model, trimmed_tok, kept), before)
    unseen = trimmed_tok("zqxv wordless €")["input_ids"]
    assert len(unseen) > 3 and max(unseen) < len(trimmed_tok)
    if kind == "bpe":  # every byte stays, so nothing becomes unknown
        assert trimmed_tok.unk_token_id not in unseen and len(trimmed_tok.backend_tokenizer.get_vocab()) >= 256


def _word_level(folder: Path) -> Path:
    """The tiny RoBERTa with a word-level tokenizer (a kind trimming does not handle)."""
    _tiny_roberta_bpe(folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["model"] = {"type": "WordLevel", "vocab": spec["model"]["vocab"], "unk_token": "<unk>"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return folder


def test_an_untrimmable_tokenizer_is_said_before_any_work(toy_files, tmp_path, capsys):
    """Trimming reads the tokenizer's kind first: a word-level model asked only to trim is refused
    in one line before anything runs; asked to prune its feed-forward layers too, it is pruned,
    its vocabulary kept, with a note (it used to fail after the importance pass and the recovery)."""
    from conftest import data_of

    model = _word_level(tmp_path / "roberta")
    with pytest.raises(KdeployError, match=r"supports WordPiece, BPE, Unigram .* is WordLevel, and trimming is all .* "
                                           r"--heads or --ffn"):
        prune(PruneSettings(), model=model, out=tmp_path / "only-vocab", data=data_of(toy_files))
    assert not (tmp_path / "only-vocab").exists()
    result = prune(PruneSettings(ffn=0.5, recover_epochs=0), model=model, out=tmp_path / "ffn", data=data_of(toy_files))
    assert "its vocabulary is kept" in capsys.readouterr().err
    assert result.vocab is None and result.ffn["width_after"] < result.ffn["width_before"]
    assert result.config["settings"]["vocab"] is False  # what ran, not what was asked
