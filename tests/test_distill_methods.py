"""Beyond logits, end to end on tiny models: layer losses with cached teacher features,
two teachers, unlabelled and augmented transfer text, and the refusals."""
import json
import subprocess
import sys

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from conftest import build_tiny_bert, build_tokenizer, data_of, distill_settings, finetune_settings
from kdeploy.distill.api import distill, finetune
from kdeploy.distill.config import DistillSettings
from kdeploy.errors import KdeployError


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, toy_files, tiny_base_bert):
    """Two tiny teachers fine-tuned on the toy task with different seeds."""
    root = tmp_path_factory.mktemp("teachers")
    out = []
    for seed in (1, 2):
        target = root / f"teacher{seed}"
        finetune(finetune_settings(train={"seed": seed}), model=str(tiny_base_bert), data=data_of(toy_files),
                 out=target)
        out.append(target)
    return out


def _run(teacher, files, out, unlabeled=None, **kw):
    """distill() with two epochs of FAST training unless `train=` says otherwise."""
    kw["train"] = {"epochs": 2, **kw.get("train", {})}
    return distill(distill_settings(**kw), teacher=teacher, data=data_of(files), out=out, unlabeled=unlabeled)


def test_layer_losses_train_with_cached_teacher_features(teachers, toy_files, tmp_path, cache_dir):
    losses = {"hidden": 1.0, "attention": 1.0, "embedding": 0.5}
    first = _run(str(teachers[0]), toy_files, tmp_path / "a", layer_losses=losses)
    layer = first.layer_objective
    assert layer["layer_map"] == [[0, 1], [1, 3]]  # uniform: 2 student layers over a 4-layer teacher
    assert layer["features_cached"] is False and layer["projection"] is False
    assert set(first.layer_loss_means) == set(losses)
    assert all(v > 0 for v in first.layer_loss_means.values())
    assert len(list((cache_dir / "teacher-features").iterdir())) == 1
    second = _run(str(teachers[0]), toy_files, tmp_path / "b", layer_losses=losses)
    assert second.layer_objective["features_cached"] is True
    assert second.epochs[-1]["train_loss"] == pytest.approx(first.epochs[-1]["train_loss"], rel=1e-5)
    plain = _run(str(teachers[0]), toy_files, tmp_path / "c")
    assert plain.layer_objective is None
    assert plain.epochs[0]["train_loss"] != pytest.approx(first.epochs[0]["train_loss"], rel=1e-3)
    # the saved student is exactly a 2-layer model: no projection weights leak into it
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a")
    assert student.config.num_hidden_layers == 2 and second.test.main > 0.7


def test_explicit_layer_map_and_its_error(teachers, toy_files, tmp_path, cache_dir):
    r = _run(str(teachers[0]), toy_files, tmp_path / "m", layer_losses={"hidden": 1.0}, layer_map="0:0,1:2",
             train={"epochs": 1})
    assert r.layer_objective["layer_map"] == [[0, 0], [1, 2]]
    with pytest.raises(KdeployError, match="the teacher has layers 0..3, not 7"):
        _run(str(teachers[0]), toy_files, tmp_path / "e", layer_losses={"hidden": 1.0}, layer_map="0:7")


def test_layer_losses_refuse_what_cannot_be_aligned(teachers, toy_files, tmp_path, cache_dir):
    with pytest.raises(KdeployError, match="need a transformer student"):
        _run(str(teachers[0]), toy_files, tmp_path / "l", student={"kind": "bilstm"}, layer_losses={"hidden": 1.0})
    other_vocab = tmp_path / "other"
    build_tiny_bert(other_vocab)
    (other_vocab / "vocab.txt").write_text((other_vocab / "vocab.txt").read_text() + "extra\n")
    from transformers import BertTokenizerFast

    BertTokenizerFast(vocab=str(other_vocab / "vocab.txt")).save_pretrained(other_vocab)
    with pytest.raises(KdeployError, match="tokenise differently"):
        _run(str(teachers[0]), toy_files, tmp_path / "t", student={"kind": str(other_vocab)},
             layer_losses={"hidden": 1.0})
    four_heads = tmp_path / "heads"
    tok = build_tokenizer(four_heads)
    BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=4, intermediate_size=64,
                                             max_position_embeddings=128)).save_pretrained(four_heads)
    with pytest.raises(KdeployError, match="student has 4 heads and the teacher 2"):
        _run(str(teachers[0]), toy_files, tmp_path / "h", student={"kind": str(four_heads)},
             layer_losses={"attention": 1.0})
    with pytest.raises(KdeployError, match="unknown layer loss 'hiden'"):
        DistillSettings(layer_losses="hiden=1")


def test_two_teachers(teachers, toy_files, tmp_path, cache_dir):
    r = _run([str(t) for t in teachers], toy_files, tmp_path / "ens", teacher_weights=[3, 1])
    assert [t.weight for t in r.teachers] == [0.75, 0.25]
    assert r.teachers[0].fingerprint != r.teachers[1].fingerprint
    assert r.teacher.test.main > 0.8  # the ensemble itself is scored
    assert sorted(r.teacher_logits_cached) == ["0:test", "0:train", "0:validation",
                                               "1:test", "1:train", "1:validation"]
    assert len(list((cache_dir / "teacher-logits").glob("*.npy"))) == 6  # each teacher cached like one alone
    assert r.test.main > 0.7
    with pytest.raises(KdeployError, match="one weight per --teacher"):
        _run([str(t) for t in teachers], toy_files, tmp_path / "w", teacher_weights=[1.0])


def test_teachers_with_different_tokenizers(teachers, toy_files, tmp_path, cache_dir):
    from transformers import BertTokenizerFast

    other = tmp_path / "other-tokenizer"
    build_tiny_bert(other, seed=3)
    lines = (other / "vocab.txt").read_text().splitlines()
    (other / "vocab.txt").write_text("\n".join(lines[:5] + lines[5:][::-1]) + "\n")  # same words, other ids
    BertTokenizerFast(vocab=str(other / "vocab.txt")).save_pretrained(other)
    assert AutoTokenizer.from_pretrained(other)("good")["input_ids"] != \
        AutoTokenizer.from_pretrained(teachers[0])("good")["input_ids"]
    r = _run([str(teachers[0]), str(other)], toy_files, tmp_path / "mixed", train={"epochs": 1})
    assert len(r.teachers) == 2 and r.teachers[1].fingerprint != r.teachers[0].fingerprint


def test_unlabeled_and_augmented_transfer_text(teachers, toy_files, tmp_path, cache_dir):
    extra = tmp_path / "more.txt"
    extra.write_text("the plot was superb\nboring and flat\nquite a lovely film\n", encoding="utf-8")
    r = _run(str(teachers[0]), toy_files, tmp_path / "u", unlabeled=str(extra), augment=2, alpha=1.0,
             layer_losses={"hidden": 1.0})
    assert r.training_examples == {"labelled": 160, "unlabeled": 3, "augmented": 2 * 163, "copies": 2}
    assert r.data_parallel["examples_seen_per_rank"] == [160 + 3 + 326]
    assert r.test.main > 0.7
    again = _run(str(teachers[0]), toy_files, tmp_path / "u2", unlabeled=str(extra), augment=2, alpha=1.0,
                 train={"epochs": 1})
    assert again.teacher_logits_cached["transfer"] is True  # seeded augmentation: the same text again
    with pytest.raises(KdeployError, match="needs alpha > 0"):
        DistillSettings(augment=1, alpha=0.0)
    with pytest.raises(KdeployError, match="needs alpha > 0"):
        _run(str(teachers[0]), toy_files, tmp_path / "z", unlabeled=str(extra), alpha=0.0)


def test_cli_distill_with_methods_and_list(teachers, toy_files, tmp_path):
    env_cache = {"KDEPLOY_CACHE": str(tmp_path / "cache")}
    import os

    cmd = [sys.executable, "-m", "kdeploy", "distill", "--teacher", teachers[0], "--teacher", teachers[1],
           "--teacher-weights", "1,1", "--layer-loss", "hidden", "--layer-loss", "attention=0.5",
           "--layer-map", "0:1,1:3", "--augment", "1", "--train", toy_files["train"],
           "--validation", toy_files["validation"], "--test", toy_files["test"], "--epochs", "1", "--lr", "3e-3",
           "--batch-size", "16", "--max-length", "32", "--out", tmp_path / "s"]
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env={**os.environ, **env_cache},
                            timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "s" / "kdeploy.json").read_text())
    assert record["layer_objective"]["losses"] == {"hidden": 1.0, "attention": 0.5}
    assert len(record["teachers"]) == 2 and record["training_examples"]["augmented"] == 160
    listed = subprocess.run([sys.executable, "-m", "kdeploy", "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0
    for name in ("layers", "bilstm", "kd", "hidden", "attention", "embedding", "mask", "delete", "swap"):
        assert name in listed.stdout
    bad = subprocess.run([sys.executable, "-m", "kdeploy", "distill", "--teacher", str(teachers[0]), "--train",
                          str(toy_files["train"]), "--layer-loss", "hiden", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown layer loss 'hiden'" in bad.stderr and "Traceback" not in bad.stderr
