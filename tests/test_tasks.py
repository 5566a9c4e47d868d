"""The task registry (one entry per task kind, complete, the only place a task is recognised)
and multi-label classification through every stage: data, KD loss, thresholds, finetune,
distill, export, every bundle format, predict."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import (FILLER, NEGATIVE, POSITIVE, assert_one_error_line, build_tiny_bert, cli, distill_settings,
                      finetune_settings)

from kdeploy.data import DataConfig, load_task_data
from kdeploy.errors import KdeployError
from kdeploy.tasks import TASKS, TaskKind, task_kind
from kdeploy.tasks.base import TaskKind as Base

PACKAGE = Path(__file__).resolve().parents[1] / "kdeploy"


# --- the registry ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_entry_names_all_its_parts(name):
    kind = TASKS[name]
    assert isinstance(kind, TaskKind) and kind.name == name
    for part in Base.PARTS:  # each behaviour is the entry's own, not the base's placeholder
        mine = getattr(type(kind), part)
        assert callable(mine), part
        if part not in ("logit_mse_loss", "num_labels"):  # the base's shared versions serve every kind
            assert mine is not getattr(Base, part), f"{name} does not implement {part}"
    assert kind.doc and kind.labels and kind.problem_type and kind.trivial and kind.title and kind.serve_type
    assert kind.metrics and all(m in __import__("kdeploy.metrics", fromlist=["TITLES"]).TITLES for m in kind.metrics)
    assert kind.activation in ("softmax", "sigmoid", "identity")
    assert kind.formats <= {"python", "onnx-e2e", "web"} and "python" in kind.formats
    assert kind.students and kind.students <= {"layers", "bilstm", "cnn", "static", "pretrained"}


def test_no_task_is_recognised_outside_the_registry():
    """No "regression" literal, no task guessed from a shape or a label count, outside kdeploy/tasks."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "tasks" in path.relative_to(PACKAGE).parts:
            continue
        text = path.read_text()
        for pattern in (r'"regression"', r"shape\[-1\]\s*==\s*1", r"num_labels\s*==\s*1", r'task\s*==\s*"'):
            found += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not found, found


def test_an_unknown_task_is_one_line_naming_the_kinds():
    with pytest.raises(KdeployError, match="unknown task 'ner'; choose one of classification, regression, multi-label"):
        DataConfig(train="x.tsv", task="ner")


def test_typed_predictions_say_themselves():
    c = task_kind("classification").prediction(np.array([0.2, 0.8]), ["neg", "pos"])
    assert (c.label, c.score) == ("pos", 0.8) and c.label_scores()[0] == {"label": "pos", "score": 0.8}
    assert c["label"] == "pos" and c.relevance("neg") == 0.2  # read like the dicts of earlier versions
    m = task_kind("multi-label").prediction(np.array([0.9, 0.3, 0.6]), ["a", "b", "c"], {"a": 0.5, "b": 0.2, "c": 0.7})
    assert m.labels == ["a", "b"] and m.to_dict() == {"labels": ["a", "b"], "scores": {"a": 0.9, "b": 0.3, "c": 0.6}}
    assert {s["label"]: s["selected"] for s in m.label_scores()} == {"a": True, "b": True, "c": False}
    assert task_kind("regression").prediction(np.array([3.5]), ["score"]).to_dict() == {"score": 3.5}


# --- multi-label: the loss, the thresholds, the metrics ---------------------------------------

def test_multi_label_kd_loss_golden_values():
    import torch

    kind = task_kind("multi-label")
    s = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, -2.0]])
    t = torch.tensor([[1.0, -2.0, 1.0], [0.0, 2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(s, y)
    assert float(kind.kd_loss(s, t, y, 0.0, 2.0)) == pytest.approx(float(bce), abs=1e-7)
    assert float(kind.kd_loss(s, t, y, 0.5, 2.0)) == pytest.approx(0.1776899, abs=1e-6)  # golden
    assert float(kind.kd_loss(s, t, y, 1.0, 1.0)) == pytest.approx(0.0507508, abs=1e-6)  # golden
    assert float(kind.kd_loss(t, t, None, 1.0, 3.0)) == pytest.approx(0.0, abs=1e-6)  # a perfect match costs 0
    p_t, p_s = torch.sigmoid(t / 2), torch.sigmoid(s / 2)  # the soft part is T²·mean binary KL, by hand
    kl = p_t * torch.log(p_t / p_s) + (1 - p_t) * torch.log((1 - p_t) / (1 - p_s))
    assert float(kind.kd_loss(s, t, None, 1.0, 2.0)) == pytest.approx(4 * float(kl.mean()), rel=1e-5)
    nan = torch.full((2, 3), float("nan"))  # transfer rows: the teacher is their only label
    assert float(kind.kd_loss(s, t, nan, 0.5, 2.0)) == pytest.approx(0.5 * 4 * float(kl.mean()), rel=1e-5)


def test_thresholds_are_tuned_per_label_and_rare_labels_keep_the_default():
    kind = task_kind("multi-label")
    rng = np.random.default_rng(0)
    gold = np.zeros((200, 3))
    gold[:100, 0] = 1
    gold[:3, 2] = 1  # too rare to tune
    probs = np.clip(gold[:, 0] * 0.3 + rng.uniform(0, 0.25, 200), 0.01, 0.99)  # positives sit near 0.3-0.55
    logits = np.log(np.stack([probs, probs, probs], 1) / (1 - np.stack([probs, probs, probs], 1)))
    tuned = kind.tune(logits, gold, ["a", "b", "c"])
    assert 0.2 <= tuned["a"] <= 0.35 and tuned["c"] == 0.5 and tuned["b"] == 0.5
    assert kind.tune(logits, gold, ["a", "b", "c"]) == tuned  # the same data, the same thresholds
    scores = kind.score(logits, gold, thresholds=np.array([tuned["a"], 0.5, 0.5]))
    assert list(scores.metrics) == ["macro_f1", "micro_f1", "subset_accuracy"] and scores.per_label[0] > 0.95


def test_the_trivial_multi_label_answer_is_every_label_always():
    gold = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=float)
    share, answer = task_kind("multi-label").trivial_score(gold, gold, ["a", "b"])
    assert answer == "every label, always" and share == pytest.approx((2 * 3 / 7 + 2 * 1 / 5) / 2)


# --- multi-label data ------------------------------------------------------------------------

LABELS = ["negative", "plot", "positive"]


def labels_of(text: str) -> list[str]:
    words = text.split()
    out = [n for n, cue in (("positive", POSITIVE), ("negative", NEGATIVE)) if any(w in cue for w in words)]
    return out + (["plot"] if "plot" in words else [])


def make_tagged(n: int, seed: int) -> list[tuple[str, list[str]]]:
    """A learnable toy tagging task: each cue word's list is a label, and "plot" is one too."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(2, 7))
        for cue in ([POSITIVE] if i % 3 == 0 else [NEGATIVE] if i % 3 == 1 else [POSITIVE, NEGATIVE]):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        text = " ".join(words)
        rows.append((text, labels_of(text)))
    return rows


def write_tagged(path: Path, rows, fmt: str = "tsv") -> Path:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in rows), encoding="utf-8")
    elif fmt == "columns":
        path.write_text("text\t" + "\t".join(LABELS) + "\n" + "".join(
            t + "\t" + "\t".join("1" if n in ls else "0" for n in LABELS) + "\n" for t, ls in rows), encoding="utf-8")
    else:
        path.write_text("text\tlabels\n" + "".join(f"{t}\t{','.join(ls)}\n" for t, ls in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tagged")
    return {"train": write_tagged(d / "train.tsv", make_tagged(240, 1)),
            "validation": write_tagged(d / "dev.tsv", make_tagged(60, 2)),
            "test": write_tagged(d / "test.tsv", make_tagged(60, 3))}


def tagged_data(files, **kwargs) -> DataConfig:
    return DataConfig(train=str(files["train"]), validation=str(files["validation"]), test=str(files["test"]),
                      task="multi-label", **kwargs)


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "columns"])
def test_multi_label_files_read_as_one_task(tmp_path, fmt):
    rows = make_tagged(30, 5)
    path = write_tagged(tmp_path / f"train.{'jsonl' if fmt == 'jsonl' else 'tsv'}", rows, fmt)
    cfg = DataConfig(train=str(path), task="multi-label", label_column=",".join(LABELS) if fmt == "columns" else None)
    task = load_task_data(cfg)
    assert task.label_names == LABELS and task.num_labels == 3
    by_text = dict(zip(task.texts("train") + task.texts("validation"),
                       list(task.splits["train"]["label"]) + list(task.splits["validation"]["label"])))
    text, names = rows[0]
    assert [LABELS[j] for j, v in enumerate(by_text[text]) if v] == sorted(names)


def test_a_multi_label_file_given_to_classification_says_so(tagged):
    with pytest.raises(KdeployError, match="several labels per text.*use --task multi-label"):
        load_task_data(DataConfig(train=str(tagged["train"])))


def test_a_classification_file_given_to_multi_label_says_so(toy_files):
    with pytest.raises(KdeployError, match="every row has exactly one label.*--task classification"):
        load_task_data(DataConfig(train=str(toy_files["train"]), task="multi-label"))


def test_unknown_empty_and_never_seen_labels(tagged, tmp_path, capfd):
    bad = write_tagged(tmp_path / "test.tsv", [("a good film", ["positive", "sarcasm"])])
    with pytest.raises(KdeployError, match=r"test.tsv: label 'sarcasm' \(row 1\) never occurs in train"):
        load_task_data(DataConfig(train=str(tagged["train"]), test=str(bad), task="multi-label"))
    empty = write_tagged(tmp_path / "dev.tsv", [("the film", []), ("a good film", ["positive"])])
    task = load_task_data(DataConfig(train=str(tagged["train"]), validation=str(empty), task="multi-label",
                                     label_names=LABELS + ["sarcasm"]))
    err = capfd.readouterr().err
    assert "1 row(s) have no label" in err and "'sarcasm' never occurs in train" in err
    assert list(task.splits["validation"]["label"][0]) == [0.0] * 4 and task.label_names[-1] == "sarcasm"


# --- multi-label through every stage ---------------------------------------------------------

@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tagged):
    """A fine-tuned tiny multi-label teacher, a 2-layer student distilled from it, its int8 export."""
    import os

    from kdeploy.distill.api import distill, finetune
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    os.environ.setdefault("KDEPLOY_CACHE", str(tmp_path_factory.mktemp("cache")))
    d = tmp_path_factory.mktemp("tagger")
    base = build_tiny_bert(d / "base", label_names=None, continuation=True)  # every word spells out (e2e's tokenizer)
    teacher = finetune(finetune_settings(train={"epochs": 6}), str(base), tagged_data(tagged), d / "teacher")
    student = distill(distill_settings(student={"kind": "layers", "layers": 2}, train={"epochs": 6}),
                      str(d / "teacher"), tagged_data(tagged), d / "student")
    exported = export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=d / "student",
                      out=d / "onnx")
    return {"teacher": teacher, "student": student, "export": exported, "dir": d}


def test_a_tagger_trains_scores_and_records_its_thresholds(tagger):
    teacher, student = tagger["teacher"], tagger["student"]
    assert teacher.test.metric == "macro_f1" and teacher.test.main > 0.8, teacher.test
    assert set(teacher.thresholds) == set(LABELS) and all(0 < v < 1 for v in teacher.thresholds.values())
    assert student.test.main > 0.6 and student.retention.metric == "macro_f1"
    assert student.retention.trivial_answer == "every label, always"
    record = json.loads((tagger["dir"] / "student" / "kdeploy.json").read_text())
    assert record["thresholds"] == student.thresholds
    assert json.loads((tagger["dir"] / "student" / "config.json").read_text())["problem_type"] == \
        "multi_label_classification"


def test_a_tagger_exports_with_its_thresholds_gated_on_macro_f1(tagger):
    e = tagger["export"]
    int8 = e.accuracy.files["model.int8.onnx"]
    assert int8.metric == "macro_f1" and int8.paired_test["test"] == "paired bootstrap"
    assert e.files["model.int8.onnx"].invariance.flips == 0
    block = json.loads((tagger["dir"] / "onnx" / "config.json").read_text())["kdeploy"]
    assert block["task"] == "multi-label" and block["thresholds"] == tagger["student"].thresholds


def test_every_bundle_format_applies_the_same_thresholds(tagger, tmp_path):
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.tasks import LabelsPrediction

    out = tmp_path / "bundle"
    result = package(PackageSettings(formats=["python", "onnx-e2e", "web"]), tagger["dir"] / "onnx", out)
    folders = [out, out.with_name("bundle-onnx-e2e"), out.with_name("bundle-web")]
    thresholds = tagger["student"].thresholds
    texts = ["a good plot", "the film was awful and dull", "great but boring story"]
    answers = []
    for folder in folders:
        manifest = json.loads((folder / "bundle.json").read_text())
        assert manifest["task"] == "multi-label" and manifest["thresholds"] == thresholds, folder
        p = Predictor(folder)
        preds = p.predict(texts)
        assert all(isinstance(x, LabelsPrediction) for x in preds)
        answers.append([x.labels for x in preds])
        assert p.batch_invariant is True
    assert answers[0] == answers[1] == answers[2]
    web_config = json.loads((out.with_name("bundle-web") / "model" / "config.json").read_text())
    assert web_config["problem_type"] == "multi_label_classification"  # transformers.js then applies a sigmoid
    assert web_config["kdeploy"]["thresholds"] == thresholds
    assert "Multi-label tagger" in (out / "README.md").read_text()
    assert result.manifest.thresholds == thresholds


def test_predict_prints_every_label_above_its_threshold(tagger, tmp_path):
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    bundle = tmp_path / "b"
    package(PackageSettings(), tagger["dir"] / "onnx", bundle)
    code, out, err = cli("predict", str(bundle), "a good plot", "awful and dull")
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert set(lines[0]) == {"text", "labels", "scores"} and set(lines[0]["scores"]) == set(LABELS)
    thresholds = tagger["student"].thresholds
    for line in lines:
        assert line["labels"] == sorted((n for n, s in line["scores"].items() if s >= thresholds[n]),
                                        key=lambda n: -line["scores"][n])


def test_a_score_task_refuses_the_formats_it_has_none_of(tmp_path):
    kind = task_kind("regression")
    with pytest.raises(KdeployError, match="--format 'web' does not support a regression task"):
        kind.refuse("--format", "web", kind.formats)


@pytest.mark.parametrize("name, package", [("tfidf-lr", "sklearn"), ("fasttext", "fasttext")])
def test_bench_scores_a_tagger_beside_its_multi_label_baselines(tagger, tagged, name, package):
    pytest.importorskip(package, reason=f"{package} is not installed (make test installs it)")
    from kdeploy.runtime.bench import benchmark
    from kdeploy.runtime.config import BenchSettings

    settings = BenchSettings(batch_sizes=[1, 4], iterations=5, warmup=0, threads=1, peaks=False, baselines=[name])
    data = DataConfig(train=str(tagged["train"]), validation=str(tagged["validation"]), test=str(tagged["test"]))
    _, report = benchmark(settings, models=[str(tagger["dir"] / "student"),  # no --task: the model says
                                            str(tagger["dir"] / "onnx" / "model.int8.onnx")], data=data)
    student, int8, base = report.models[0], report.models[1], report.model(f"{name} (baseline)")
    assert student.accuracy.metric == "macro_f1" and base.accuracy.metric == "macro_f1"
    # the student is scored with the thresholds it ships with, as every bundle applies them
    assert student.accuracy.main == pytest.approx(tagger["student"].test.main, abs=1e-6)
    assert int8.invariance.flips == 0 and base.invariance is not None
    if name == "tfidf-lr":  # the toy tags are words: one-vs-rest on n-grams finds them
        assert base.accuracy.main >= 0.9


def test_the_cli_says_which_task_the_labels_look_like(tagged, toy_files, tiny_bert, tmp_path):
    code, _, err = cli("distill", "--teacher", str(tiny_bert), "--train", str(tagged["train"]), "--out",
                       str(tmp_path / "s"))
    assert_one_error_line(code, err, "the labels look like several labels per text")
    assert "use --task multi-label" in err and not (tmp_path / "s").exists()
    code, _, err = cli("finetune", "--model", str(tiny_bert), "--task", "multi-label", "--train",
                       str(toy_files["train"]), "--out", str(tmp_path / "t"))
    assert_one_error_line(code, err, "every row has exactly one label")
    code, _, err = cli("finetune", "--model", str(tiny_bert), "--task", "tags", "--train", str(tagged["train"]),
                       "--out", str(tmp_path / "u"))
    assert_one_error_line(code, err, "unknown task 'tags'; choose one of classification, regression, multi-label")


@pytest.mark.parametrize("kind", ["bilstm", "static"])
def test_other_student_families_tag_too(tagger, tagged, tmp_path, kind):
    """A multi-label student need not be a transformer: the task's losses and thresholds are the
    registry's, whatever the student is."""
    from kdeploy.distill.api import distill

    student = distill(distill_settings(student={"kind": kind}, train={"epochs": 8, "learning_rate": 1e-2}),
                      str(tagger["dir"] / "teacher"), tagged_data(tagged), tmp_path / kind)
    assert student.test.metric == "macro_f1" and student.test.main > 0.5, student.test
    assert set(student.thresholds) == set(LABELS)
