"""The distill stage end to end on tiny models: outputs, cached teacher logits, resume, students."""
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from transformers import AutoModelForSequenceClassification

from conftest import cli, data_of, distill_settings, finetune_settings
from kdeploy.data import DataConfig
from kdeploy.distill.api import distill, finetune
from kdeploy.distill.config import DistillSettings, StudentConfig
from kdeploy.errors import KdeployError


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, toy_files, tiny_base_bert):
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    record = finetune(finetune_settings(), model=str(tiny_base_bert), data=data_of(toy_files), out=out)
    assert record.test.main > 0.8, record  # the toy task is learnable
    return out


def test_finetune_output_folder(teacher_dir):
    files = {p.name for p in teacher_dir.iterdir()}
    assert {"model.safetensors", "config.json", "kdeploy.json", "tokenizer.json"} <= files
    assert not any(n.endswith(".bin") or n.endswith(".pt") for n in files)
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    record = json.loads((teacher_dir / "kdeploy.json").read_text())
    assert len(record["epochs"]) == 3 and "validation_accuracy" in record["epochs"][0]
    assert record["data"]["label_names"] == ["negative", "positive"]
    assert record["config"]["settings"]["train"]["epochs"] == 3
    assert record.get("learning_rate_probe") is None  # a rate was given: no probe
    assert "torch" in record["versions"] and "cores" in record["machine"]
    assert not (teacher_dir.parent / ".teacher.work").exists()  # checkpoints cleaned after success


def test_distill_records_and_reuses_cached_teacher_logits(teacher_dir, toy_files, tmp_path, cache_dir):
    first = distill(distill_settings(student={"layers": 2}), teacher=str(teacher_dir), data=data_of(toy_files),
                    out=tmp_path / "s1")
    assert first.teacher_logits_cached == {"train": False, "validation": False, "test": False}
    assert first.model["teacher_layers"] == [0, 3]
    assert first.alpha == 0.5 and first.temperature == 2.0
    assert first.teacher.test.main > 0.8
    assert len(list((cache_dir / "teacher-logits").glob("*.npy"))) == 3
    second = distill(distill_settings(alpha=0.9, temperature=4.0), teacher=str(teacher_dir), data=data_of(toy_files),
                     out=tmp_path / "s2")
    assert second.teacher_logits_cached == {"train": True, "validation": True, "test": True}
    assert second.teacher.fingerprint == first.teacher.fingerprint
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s2")
    assert student.config.num_hidden_layers == 2
    assert student.config.id2label == {0: "negative", 1: "positive"}  # inherits the teacher's label names
    assert second.test.main > 0.7
    saved = json.loads((tmp_path / "s2" / "kdeploy.json").read_text())
    assert saved["alpha"] == 0.9 and saved["model"]["teacher_layers"] == [0, 3]


def test_kd_changes_training_and_seeds_reproduce(teacher_dir, toy_files, tmp_path, cache_dir):
    def run(name, alpha, seed):
        return distill(distill_settings(alpha=alpha, train={"epochs": 1, "seed": seed}), teacher=str(teacher_dir),
                       data=data_of(toy_files), out=tmp_path / name)

    a, b, hard = run("a", 0.5, 1), run("b", 0.5, 1), run("h", 0.0, 1)
    assert a.epochs[0]["train_loss"] == pytest.approx(b.epochs[0]["train_loss"], rel=1e-6)
    assert a.epochs[0]["train_loss"] != pytest.approx(hard.epochs[0]["train_loss"], rel=1e-3)


def test_resume_continues_from_checkpoint(teacher_dir, toy_files, tmp_path, cache_dir, monkeypatch):
    from kdeploy.distill import trainer as trainer_module

    out = tmp_path / "r"

    def interrupt_in_third_epoch(self, args, state, control, **kwargs):
        if state.epoch >= 2:
            raise KeyboardInterrupt
        self._start = 0.0

    monkeypatch.setattr(trainer_module._EpochTimer, "on_epoch_begin", interrupt_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        distill(distill_settings(), teacher=str(teacher_dir), data=data_of(toy_files), out=out)
    monkeypatch.undo()
    assert not out.exists()  # nothing that looks complete
    assert (tmp_path / ".r.work" / "checkpoints" / "checkpoint-20").is_dir()
    record = distill(distill_settings(), teacher=str(teacher_dir), data=data_of(toy_files), out=out, resume=True)
    assert record.resumed_from == "checkpoint-20"
    assert len(record.epoch_seconds) == 1  # only the third epoch was trained again
    assert [e["epoch"] for e in record.epochs] == [1.0, 2.0, 3.0]
    assert (out / "model.safetensors").exists()
    assert not (tmp_path / ".r.work").exists() and not (tmp_path / ".r.lock").exists()


def test_bilstm_teacher_into_smaller_bilstm(tiny_bert, toy_files, tmp_path, cache_dir):
    """The seed's own example: an LSTM teacher distilled into a smaller LSTM."""
    teacher = tmp_path / "lstm-teacher"
    finetune(finetune_settings(architecture={"kind": "bilstm", "hidden_size": 32}), model="bilstm",
             tokenizer=str(tiny_bert), data=data_of(toy_files), out=teacher)
    record = distill(distill_settings(student={"kind": "bilstm", "hidden_size": 8, "embedding_dim": 16}),
                     teacher=str(teacher), data=data_of(toy_files), out=tmp_path / "lstm-student")
    assert record.model["builder"] == "kdeploy-bilstm"
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lstm-student")
    assert model.config.hidden_size == 8


def test_pretrained_student_with_its_own_tokenizer(teacher_dir, toy_files, tmp_path, cache_dir):
    """Teacher and student tokenise the raw text separately; only logits cross over."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    other = tmp_path / "other"
    other.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz")
    (other / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab=str(other / "vocab.txt")).save_pretrained(other)
    BertForSequenceClassification(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32)).save_pretrained(other)
    record = distill(distill_settings(student={"kind": str(other)}), teacher=str(teacher_dir),
                     data=data_of(toy_files), out=tmp_path / "s")
    assert record.model["builder"] == "pretrained"
    tok = json.loads((tmp_path / "s" / "tokenizer.json").read_text())
    assert len(tok["model"]["vocab"]) == len(vocab)  # the student's own tokenizer is saved


def test_mismatched_labels_are_refused(teacher_dir, tmp_path, cache_dir):
    from conftest import make_sentences, write_tsv

    rows = [(t, {"positive": "good", "negative": "bad"}[l]) for t, l in make_sentences(40)]
    path = write_tsv(tmp_path / "t.tsv", rows)
    with pytest.raises(KdeployError, match="predicts \\['negative', 'positive'\\] but the data has labels"):
        distill(DistillSettings(), teacher=str(teacher_dir), data=DataConfig(train=str(path)), out=tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.work").exists()  # a refused run leaves nothing


def test_integer_labels_take_the_teachers_names(teacher_dir, tmp_path, cache_dir, capsys):
    """Labels 0/1 are ids (the Hugging Face convention): a named teacher names them."""
    from conftest import make_sentences, write_tsv

    path = write_tsv(tmp_path / "t.tsv", [(t, str(int(l == "positive"))) for t, l in make_sentences(60)])
    record = distill(distill_settings(train={"epochs": 1}), teacher=str(teacher_dir),
                     data=DataConfig(train=str(path)), out=tmp_path / "ids")
    assert record.data["label_names"] == ["negative", "positive"]
    assert "using the teacher" in capsys.readouterr().err
    upper = write_tsv(tmp_path / "u.tsv", [(t, l.upper()) for t, l in make_sentences(60)])
    record = distill(distill_settings(train={"epochs": 1}), teacher=str(teacher_dir),
                     data=DataConfig(train=str(upper)), out=tmp_path / "upper")
    assert record.data["label_names"] == ["negative", "positive"]  # matched case-insensitively


@pytest.mark.parametrize("kwargs,message", [({"alpha": 1.5}, "alpha must be in"), ({"temperature": 0}, "temperature"),
                                            ({"temperature": float("nan")}, "finite"),
                                            ({"temperature": float("inf")}, "finite")])
def test_settings_validate_themselves(kwargs, message):
    with pytest.raises(KdeployError, match=message):
        DistillSettings(**kwargs)


def test_a_student_family_brings_its_own_training_defaults():
    """`--student static` alone trains as a static student should (rate 3e-4, until validation stops
    improving), `--student cnn` at 2e-3; what the user gives still wins, on the CLI and in recipes."""
    from kdeploy.configtools import from_dict, settings_from

    def train(given):
        t = settings_from(DistillSettings, given).train
        return t.learning_rate, t.epochs, t.early_stopping

    assert train({}) == (1e-4, 3, None)
    assert train({"student": {"kind": "static"}}) == (3e-4, 20, 3)
    assert train({"student": {"kind": "static"}, "train": {"learning_rate": 5e-3, "early_stopping": 0}}) == (5e-3, 20, 0)
    assert train({"student": {"kind": "cnn"}, "train": {"epochs": 5}}) == (2e-3, 5, None)
    assert train({"student": {"kind": "bilstm"}})[0] == 2e-3
    recipe = from_dict(DistillSettings, {"student": {"kind": "static"}, "train": {"epochs": 4}}, "distill")
    assert (recipe.train.learning_rate, recipe.train.epochs, recipe.train.early_stopping) == (3e-4, 4, 3)


def test_student_config_reads_layer_lists():
    assert StudentConfig(layers="3").layers == 3 and StudentConfig(layers=[0, 5]).layers == "0,5"


def test_augmentation_is_chosen_by_data_size_and_said(teacher_dir, toy_files, tmp_path, cache_dir, capsys):
    """The default distil command is the good one: a small training set gets augmented copies."""
    from kdeploy.distill.config import AUTO_AUGMENT_MAX, auto_augment

    assert auto_augment(6920, 0.5)[0] == 8 and auto_augment(67_349, 0.5)[0] == 0
    assert auto_augment(25_000, 0.5)[0] == 2 and auto_augment(100, 0.0) == (0, "alpha is 0, so the teacher labels nothing")
    record = distill(distill_settings(augment=None, train={"epochs": 1}), teacher=str(teacher_dir),
                     data=data_of(toy_files), out=tmp_path / "auto")
    assert record.training_examples["copies"] == AUTO_AUGMENT_MAX and record.training_examples["augmented"] == 160 * 8
    assert "augment: 8 copies per example (160 training examples is small" in capsys.readouterr().out


def test_early_stopping_stops_and_a_rising_run_says_so(tiny_base_bert, toy_files, tmp_path, capsys):
    """--early-stopping N ends training after N epochs without a better validation score (the
    best epoch is kept); a run whose last epoch was its best says it may be undertrained."""
    from kdeploy.distill.trainer import _still_improving, _stopping
    from kdeploy.distill.config import TrainConfig

    record = finetune(finetune_settings(train={"epochs": 8, "early_stopping": 1}), model=str(tiny_base_bert),
                      data=data_of(toy_files), out=tmp_path / "t")
    scores = [e["validation_accuracy"] for e in record.epochs]
    assert len(scores) < 8 and scores[-1] <= max(scores[:-1])  # stopped on a plateau, before the budget
    assert record.still_improving is False
    assert _still_improving([{"validation_accuracy": a} for a in (0.706, 0.728, 0.758)], TrainConfig())
    assert "validation accuracy was still rising at the last epoch (70.60 → 72.80 → 75.80)" in " ".join(capsys.readouterr().err.split())
    assert not _still_improving([{"validation_accuracy": a} for a in (0.70, 0.75, 0.74)], TrainConfig())
    with pytest.raises(KdeployError, match="early_stopping is a patience"):
        TrainConfig(early_stopping=-1)
    assert _stopping(TrainConfig(early_stopping=0)) == []  # 0: off


def test_finetune_given_no_rate_probes_for_one_and_says_so(tiny_base_bert, toy_files, tmp_path, capsys):
    """No --lr: 2e-5, 5e-5 and 1e-4 each get one pass over a slice from the same weights, the lowest
    validation loss wins, and the record keeps what was measured; a given rate is used as it is."""
    from kdeploy.configtools import settings_from
    from kdeploy.distill.config import FinetuneSettings
    from kdeploy.distill.lr_probe import CANDIDATES

    from conftest import FAST

    settings = settings_from(FinetuneSettings, {"train": {k: v for k, v in FAST.items() if k != "learning_rate"}
                                                | {"epochs": 1}})
    assert settings.learning_rate_probe
    record = finetune(settings, model=str(tiny_base_bert), data=data_of(toy_files), out=tmp_path / "t")
    probe = record.learning_rate_probe
    losses = {float(k): v for k, v in probe.items() if k not in ("examples", "seconds")}
    assert set(losses) == set(CANDIDATES) and probe["examples"] == 160
    chosen = record.config["settings"]["train"]["learning_rate"]
    assert losses[chosen] == min(losses.values())  # (a tiny random model barely moves: ties are possible)
    assert f"learning rate: {chosen:g}, the lowest validation loss" in " ".join(capsys.readouterr().out.split())
    # a rate given is used as it is (every other finetune test gives one and records no probe)
    assert not settings_from(FinetuneSettings, {"train": {"learning_rate": 1e-4}}).learning_rate_probe
    assert not settings_from(FinetuneSettings, {"learning_rate_probe": False}).learning_rate_probe


def test_the_loss_is_chosen_by_name(teacher_dir, toy_files, tmp_path, cache_dir):
    record = distill(distill_settings(student={"kind": "layers", "layers": 1}, loss="logit-mse", train={"epochs": 1}),
                     teacher=str(teacher_dir), data=data_of(toy_files), out=tmp_path / "s")
    assert record.config["settings"]["loss"] == "logit-mse" and record.test.examples == 40


# --- training gone wrong: divergence, interrupted saves and runs, fp16 on a CPU, odd students

def test_training_that_diverges_stops_and_saves_nothing(tiny_bert, toy_files, tmp_path, cache_dir, monkeypatch):
    from conftest import data_of, distill_settings
    from kdeploy.distill import losses
    from kdeploy.distill.api import distill
    from kdeploy.distill.trainer import DivergedError

    from kdeploy.distill import methods

    real = losses.kd_loss
    nan_loss = lambda *a, **k: real(*a, **k) * float("nan")  # noqa: E731
    monkeypatch.setitem(methods.LOSSES, "kd", nan_loss)  # first: undone to the real loss, however it resolves
    monkeypatch.setattr(losses, "kd_loss", nan_loss)
    with pytest.raises(DivergedError, match="the loss became nan"):
        distill(distill_settings(), teacher=str(tiny_bert), data=data_of(toy_files), out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_resume_skips_a_checkpoint_interrupted_while_it_was_saved(tmp_path):
    """Ctrl-C during a save leaves checkpoint-N without trainer_state.json (written last);
    resuming from it crashed. The newest complete one is taken."""
    from kdeploy.distill.trainer import last_checkpoint

    folder = tmp_path / "checkpoints"
    for step, complete in ((9, True), (10, True), (20, False)):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(folder / "checkpoint-10")
    (folder / "checkpoint-9" / "trainer_state.json").unlink()
    (folder / "checkpoint-10" / "trainer_state.json").unlink()
    assert last_checkpoint(tmp_path) is None


def test_ctrl_c_during_run_says_so(tiny_base_bert, toy_files, tmp_path):
    recipe = tmp_path / "r.yaml"
    fast = {"epochs": 50, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32, "early_stopping": 0}  # a long run
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {k: str(v) for k, v in toy_files.items()},
                                      "finetune": {"model": str(tiny_base_bert), "train": fast}}))
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "run", str(recipe), "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "KDEPLOY_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"},
                            # as from a terminal: a suite started in the background (`nohup … &`) ignores
                            # SIGINT, and a child that inherits that never sees the Ctrl-C
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until the first epoch's checkpoint is saved and the second epoch has run (unbuffered: through a
    # block-buffered pipe the line could arrive only when the run had ended)
    for line in iter(proc.stdout.readline, b""):
        if b"epoch 2/" in line:
            break
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "error: interrupted" in err.decode() and b"Traceback" not in err
    assert not (tmp_path / "run" / "teacher").exists()  # nothing that looks complete
    assert (tmp_path / "run" / ".teacher.work" / "checkpoints").is_dir()  # but resumable
    assert "--resume" not in err.decode() and "run the same command again to continue" in err.decode()
    # issue 22 #10: the same command again resumes (the folder holds only kdeploy's own work)
    code, out, err = cli("run", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    assert "not written by kdeploy" not in err and (tmp_path / "run" / "teacher" / "kdeploy.json").is_file()


def test_fp16_on_a_cpu_is_recorded_as_what_ran(tiny_bert, toy_files, tmp_path, cache_dir):  # issue 22 #7
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU fp16 does run")
    code, out, err = cli("distill", "--teacher", tiny_bert, "--train", toy_files["train"], "--epochs", "1",
                         "--mixed-precision", "fp16", "--out", tmp_path / "s")
    assert code == 0, err
    assert "--mixed-precision fp16 needs a CUDA GPU; training in fp32" in out + err
    assert json.loads((tmp_path / "s" / "kdeploy.json").read_text())["precision"] == "fp32"


def test_a_static_student_wider_than_its_teacher_is_capped(tiny_bert, toy_files, tmp_path, cache_dir):  # issue 22 #12
    code, out, err = cli("distill", "--teacher", tiny_bert, "--train", toy_files["train"], "--epochs", "1",
                         "--student", "static", "--out", tmp_path / "s")
    assert code == 0, err
    assert "embedding width 256 is wider than the teacher's static vectors can fill (32" in out + err
    assert json.loads((tmp_path / "s" / "config.json").read_text())["embedding_dim"] == 32


def test_score_task_tables_say_pearson(tmp_path):  # issue 22 #20: Pearson r was shown under "val acc"
    from kdeploy.distill.result import TrainingResult
    from kdeploy.metrics import Scores

    r = TrainingResult(stage="distill", model={"builder": "static"}, parameters=10, config={},
                       validation=Scores({"pearson": 0.81, "spearman": 0.79}),
                       test=Scores({"pearson": 0.8, "spearman": 0.78}))
    headers, rows = r.table()
    assert headers[1:4] == ["val Pearson r", "test Pearson r", "test Spearman ρ"]
    assert rows[-1][1:4] == ["0.810", "0.800", "0.780"]
