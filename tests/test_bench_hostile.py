"""`kdeploy bench --baselines` against hostile input (issue: hardening, 7-12 and the minor ones):
each refusal comes before any work and in one line, every verdict says the direction of its
figures, a run's summary shows the baselines, and the report's paths and tables can be used."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import data_of, write_tsv
from kdeploy.errors import KdeployError
from kdeploy.runtime.config import BenchSettings


def _settings(**kwargs):
    return BenchSettings(batch_sizes=[1, 4], iterations=3, warmup=0, threads=1, peaks=False, **kwargs)


@pytest.fixture()
def no_work(monkeypatch):
    """Loading data or any model fails the test: a refusal must come before them."""
    import kdeploy.runtime.bench as bench_module

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the refusal")
    monkeypatch.setattr(bench_module, "load_task_data", forbidden)
    monkeypatch.setattr(bench_module, "_load_all", forbidden)


# --- 7: the encoder model2vec distils, for an ONNX reference ----------------------------------

def test_an_onnx_reference_distils_the_model_it_was_exported_from(exported_tiny, tiny_bert, toy_files, tmp_path,
                                                                   no_work):
    from kdeploy.runtime.baseline_setup import encoder_of

    assert encoder_of(exported_tiny / "model.int8.onnx") == str(tiny_bert)  # the export report's source model
    assert encoder_of(exported_tiny) == str(tiny_bert)
    orphan = tmp_path / "onnx"  # an export whose source model is gone: config.json but no weights anywhere
    shutil.copytree(exported_tiny, orphan)
    report = json.loads((orphan / "export_report.json").read_text())
    (orphan / "export_report.json").write_text(json.dumps({**report, "model": str(tmp_path / "deleted")}))
    assert encoder_of(orphan / "model.onnx") is None
    pytest.importorskip("model2vec", reason="model2vec is not installed (make test installs it)")
    pytest.importorskip("torch")
    from kdeploy.runtime.bench import benchmark

    with pytest.raises(KdeployError, match=r"model2vec \(baseline\): the reference .* has no encoder weights to distil"
                                           r".*give --baseline-encoder"):
        benchmark(_settings(baselines=["model2vec"]), models=[str(orphan / "model.onnx")], data=data_of(toy_files))


def test_model2vec_beside_an_onnx_reference_distils_its_source_and_says_its_width(exported_tiny, tiny_bert, toy_files):
    """The hostile tour's crash (an export folder taken as the encoder: OSError), end to end; the
    note gives the real width of the static vectors (the tiny encoder is 32 wide, under PCA's 256)."""
    pytest.importorskip("model2vec", reason="model2vec is not installed (make test installs it)")
    from kdeploy.runtime.bench import benchmark

    _, report = benchmark(_settings(baselines=["model2vec"]), models=[str(exported_tiny / "model.int8.onnx")],
                          data=data_of(toy_files))
    notes = report.model("model2vec (baseline)").notes
    assert any(f"distilled from {tiny_bert.parent.name}/{tiny_bert.name} (32 dimensions, the encoder's own width" in n
               for n in notes), notes
    assert not any("PCA 256" in n for n in notes)


# --- 8: --baseline-encoder that names nothing, and the other flags checked first --------------

@pytest.mark.parametrize("encoder, message", [
    ("/nowhere/encoder", "no such folder"),
    ("nobody-here/no-such-encoder", "not a local folder, and the hub is off"),
    ("EXPORT", "no weights in it (an export folder holds ONNX files only"),
])
def test_a_baseline_encoder_that_names_nothing_is_refused_before_any_work(encoder, message, exported_tiny, tiny_bert,
                                                                         toy_files, no_work, monkeypatch):
    pytest.importorskip("model2vec", reason="model2vec is not installed (make test installs it)")
    pytest.importorskip("torch")
    from kdeploy.runtime.bench import benchmark

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = str(exported_tiny) if encoder == "EXPORT" else encoder
    with pytest.raises(KdeployError, match=rf"^--baseline-encoder .*{re.escape(message)}.*give --baseline-encoder FOLDER"):
        benchmark(_settings(baselines=["model2vec"], baseline_encoder=encoder), models=[str(tiny_bert)],
                  data=data_of(toy_files))


def test_the_baseline_flags_are_checked_before_anything_loads(tiny_bert, toy_files, no_work):
    from kdeploy.cli.runtime import _check_baseline_flags
    from kdeploy.data import DataConfig
    from kdeploy.runtime.bench import benchmark

    test, train = str(toy_files["test"]), str(toy_files["train"])
    with pytest.raises(KdeployError, match="--baselines '' names no baseline; give one or more of tfidf-lr"):
        _check_baseline_flags("", None, train, None, test, {})
    with pytest.raises(KdeployError, match="--baseline-encoder is the encoder model2vec distils; add --baselines"):
        _check_baseline_flags(None, str(tiny_bert), None, None, test, {})
    with pytest.raises(KdeployError, match="--baseline-encoder is the encoder model2vec distils"):
        _check_baseline_flags("tfidf-lr", str(tiny_bert), train, None, test, {})
    with pytest.raises(KdeployError, match="--baselines are trained on the students' own train split: give --train"):
        _check_baseline_flags("tfidf-lr", None, None, None, test, {})
    _check_baseline_flags("tfidf-lr", None, train, None, test, {})  # what goes together passes
    with pytest.raises(KdeployError, match="--baselines are trained on the students' own train split"):
        benchmark(_settings(baselines=["tfidf-lr"]), models=[str(tiny_bert)], data=DataConfig(test=test))
    with pytest.raises(KdeployError, match="--baseline-encoder is the encoder model2vec distils"):  # a recipe too
        benchmark(_settings(baselines=["tfidf-lr"], baseline_encoder=str(tiny_bert)), models=[str(tiny_bert)],
                  data=data_of(toy_files))


def test_the_cli_refuses_a_bad_encoder_in_one_line(tiny_bert, toy_files, tmp_path):
    result = subprocess.run([sys.executable, "-m", "kdeploy", "bench", str(tiny_bert), "--data", str(toy_files["test"]),
                             "--train", str(toy_files["train"]), "--baselines", "model2vec", "--baseline-encoder",
                             str(tmp_path / "nothing"), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --baseline-encoder {tmp_path / 'nothing'}: no such folder; give --baseline-encoder FOLDER (a "
        "transformer encoder with its weights) or a hub model id"]


# --- 9: verdicts in the direction of their figures --------------------------------------------

def _model(name, kind, origin, accuracy, p50, throughput=None):
    from kdeploy.runtime.latency import LatencySummary
    from kdeploy.runtime.result import BenchScores, ModelBench

    def summary(bs, ms):
        return LatencySummary(calls=10, batch_size=bs, mean_ms=ms, stdev_ms=0.0, p50_ms=ms, p90_ms=ms, p95_ms=ms,
                              p99_ms=ms, min_ms=ms, max_ms=ms, throughput_per_s=throughput or bs * 1000 / ms)
    m = ModelBench(name=name, kind=kind, path="", size_mib=1.0, provider="cpu", provider_requested="cpu", threads=1,
                   origin=origin)
    m.latency = {1: summary(1, p50), 32: summary(32, 32 * p50)}
    m.accuracy = BenchScores({"accuracy": accuracy, "macro_f1": accuracy})
    return m


def _report(*models):
    from kdeploy.runtime.bench import _compare
    from kdeploy.runtime.result import BenchReport
    from kdeploy.runtime.verdicts import baseline_verdicts, headline

    report = BenchReport(config={}, models=list(models), reference=models[0].name, latency_inputs="real sentences",
                         environment={}, accuracy_split="test")
    _compare(report.models, report.models[0])
    report.headline, report.verdicts = headline(report), baseline_verdicts(report)
    return report


@pytest.mark.parametrize("b_acc, b_ms, expected", [
    (1.0, 10.0, "tfidf-lr (baseline) is 50.00 points more accurate than student (100.00% vs 50.00%) but 10.0x slower "
                "than it (batch-1 p50 10 ms for the baseline, 1 ms for the student): the student buys its speed with "
                "50.00 points"),
    (1.0, 0.1, "tfidf-lr (baseline) is 50.00 points more accurate than student (100.00% vs 50.00%) and 10.0x faster "
               "than it (batch-1 p50 0.1 ms for the baseline, 1 ms for the student): the student does not earn its "
               "keep here"),
    (0.5, 1.0, "tfidf-lr (baseline) is as accurate as student (50.00% vs 50.00%) and as fast as it (batch-1 p50 1 ms "
               "for the baseline, 1 ms for the student): the student does not earn its keep here"),
    (0.5, 10.0, "tfidf-lr (baseline) is as accurate as student (50.00% vs 50.00%) but 10.0x slower than it (batch-1 "
                "p50 10 ms for the baseline, 1 ms for the student)"),
    (0.25, 10.0, "student beats tfidf-lr (baseline) by 25.00 points (50.00% vs 25.00%) and is 10.0x faster than it "
                 "(batch-1 p50 10 ms for the baseline, 1 ms for the student)"),
    (0.25, 0.1, "student beats tfidf-lr (baseline) by 25.00 points (50.00% vs 25.00%) but is 10.0x slower than it "
                "(batch-1 p50 0.1 ms for the baseline, 1 ms for the student)"),
])
def test_a_verdict_says_the_direction_of_its_figures(b_acc, b_ms, expected):
    report = _report(_model("teacher", "pytorch", "t", 0.9, 5.0), _model("student", "onnx", "s", 0.5, 1.0),
                     _model("tfidf-lr (baseline)", "baseline-tfidf-lr", "b", b_acc, b_ms))
    assert report.verdicts == [expected]
    assert report.headline[-1] == expected


def test_a_slower_model_is_called_slower_not_a_fraction_faster():
    report = _report(_model("teacher", "pytorch", "t", 0.9, 1.0), _model("student", "onnx", "s", 0.9, 10.0),
                     _model("fast", "onnx", "f", 0.9, 0.5))
    assert report.headline[0] == ("student: batch 1 p50 10.0x slower than teacher; batch 32 10.0x less throughput "
                                  "than teacher")
    assert report.headline[1] == "fast: batch 1 p50 2.0x faster than teacher; batch 32 2.0x the throughput of teacher"


# --- 10: a run's summary shows the baselines ----------------------------------------------------

def test_a_runs_summary_shows_the_baselines_and_their_verdicts(capsys):
    from kdeploy.pipeline.runner import RunResult

    report = _report(_model("teacher", "pytorch", "t", 0.9, 5.0), _model("student", "onnx", "s", 0.5, 1.0),
                     _model("tfidf-lr (baseline)", "baseline-tfidf-lr", "b", 1.0, 0.1))
    report.models[2].train_seconds = 3.2
    run = RunResult(recipe="toy", folder="runs/toy", results={"bench": report})
    _, rows = run.table()
    assert rows == [["tfidf-lr (baseline) [test]", "100.00", "100.00", "-", "1.0", "3"]]  # the run's split: validation
    run.render()
    shown = capsys.readouterr().out
    assert "tfidf-lr (baseline)" in shown and "50.00 points more accurate than student" in shown
    assert "the student does not earn its keep here" in shown


# --- 11: baselines trained (or tuned) on the scored file -----------------------------------------

def test_baselines_trained_on_the_scored_file_are_refused(tiny_bert, toy_files, tmp_path, no_work):
    from kdeploy.data import DataConfig
    from kdeploy.runtime.bench import benchmark

    test = str(toy_files["test"])
    copy = tmp_path / "copy.tsv"
    shutil.copyfile(test, copy)
    for data, flag in [(DataConfig(train=test, test=test), "--train"),
                       (DataConfig(train=str(copy), test=test), "--train"),
                       (DataConfig(train=str(toy_files["train"]), validation=str(copy), test=test), "--validation")]:
        with pytest.raises(KdeployError, match=rf"^{flag} .* is the file the models are scored on .*kept apart"):
            benchmark(_settings(baselines=["tfidf-lr"]), models=[str(tiny_bert)], data=data)


def test_baselines_whose_train_split_holds_the_scored_texts_are_refused(tiny_bert, toy_files, tmp_path):
    """The same texts in another file (another header, reordered, one more row) are found too."""
    from conftest import make_sentences
    from kdeploy.data import DataConfig
    from kdeploy.runtime.bench import benchmark

    train = write_tsv(tmp_path / "train.tsv", list(reversed(make_sentences(40, 3))) + [("one more", "positive")],
                      header=("text", "label"))
    with pytest.raises(KdeployError, match=r"^40 of the 40 scored texts \(test split\) are also in the train and "
                                             r"validation splits the baselines learn from"):
        benchmark(_settings(baselines=["tfidf-lr"]), models=[str(tiny_bert)],
                  data=DataConfig(train=str(train), test=str(toy_files["test"])))


# --- 12 and the report's minor ones: paths, the HTML header, --seq-length, RSS ------------------

def test_the_report_keeps_each_baseline_where_it_says(exported_tiny, toy_files, tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (make test installs it)")
    pytest.importorskip("fasttext", reason="fasttext is not installed (make test installs it)")
    from kdeploy.runtime.bench import bench

    out = tmp_path / "report"
    bench(_settings(baselines=["tfidf-lr", "fasttext"], seq_length=16), models=[str(exported_tiny / "model.int8.onnx")],
          out=out, data=data_of(toy_files))
    saved = json.loads((out / "report.json").read_text())
    baselines = [m for m in saved["models"] if m["kind"].startswith("baseline-")]
    assert [m["path"] for m in baselines] == [str(out / "baselines" / "tfidf-lr"), str(out / "baselines" / "fasttext")]
    assert (out / "baselines" / "fasttext" / "model.bin").is_file()  # fastText ships its own file: kept
    assert all(m["train_seconds"] >= 0 for m in baselines)
    page = (out / "report.html").read_text()
    assert "<td>batch-invariant (max |Δp|, flips)</td>" in page  # one cell, not three
    md = (out / "report.md").read_text()
    assert "batch-invariant (max \\|Δp\\|, flips)" in md
    assert "fixed length, 16 tokens (real sentences, sorted batches, for tfidf-lr (baseline), fasttext (baseline)" in md
    assert all(any("timed on real sentences (it takes text), not at --seq-length 16" in n for n in m["notes"])
               for m in baselines)


def test_rss_growth_that_is_negative_is_not_reported(exported_tiny, monkeypatch):
    from pathlib import Path

    import kdeploy.runtime.memory as memory
    from kdeploy.runtime.bench import _compare
    from kdeploy.runtime.candidates import Context, load_candidate
    from kdeploy.runtime.result import BenchReport, ModelBench

    readings = iter([900.0, 527.7])  # before, after: an earlier load's memory freed meanwhile
    monkeypatch.setattr(memory, "settled_rss_mib", lambda: next(readings))
    cand = load_candidate("model.onnx", exported_tiny / "model.onnx", "onnx",
                          Context("cpu", 1, False, None, ["a text"], Path(".")))
    assert cand.memory_mib is None
    assert any("RSS growth on load not shown: the process's RSS fell by 372.3 MiB" in n for n in cand.notes)
    m = ModelBench(name="m", kind="onnx", path="", size_mib=1.0, provider="cpu", provider_requested="cpu", threads=1,
                   memory_mib=None)
    m.latency, m.tokenizer_ms = _model("x", "onnx", "o", 1.0, 1.0).latency, {1: 0.1, 32: 0.1}
    report = BenchReport(config={}, models=[m], reference="m", latency_inputs="", environment={})
    _compare(report.models, m)
    row = next(line for line in report.to_markdown().splitlines() if line.startswith("| m | 1.0"))
    assert row.split(" | ")[3] == "-" and "None" not in row


def test_a_bundle_scores_data_by_its_own_label_names(exported_tiny, toy_files, tmp_path):
    """A bundle has no config.json: bench took the data's label order as the bundle's, and scored
    SST-2 against the demo bundle (fresh, rotten) as 11.37% where `predict --file` gave 88.63%.
    Here the data names the tiny bundle's two labels in the other order: the accuracy bench reports
    is the share of texts whose predicted label name is the gold name."""
    from kdeploy.edge import Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings
    from kdeploy.runtime.bench import bench

    bundle = tmp_path / "bundle"
    package(PackageSettings(archive=None), export_dir=exported_tiny, out=bundle)
    labels = Predictor(bundle).labels
    rows = [line.split("\t") for line in toy_files["test"].read_text().splitlines()[1:]]
    rows = [r for r in rows if r[1] == labels[0]] + [r for r in rows if r[1] == labels[1]][:5]  # unbalanced
    test = write_tsv(tmp_path / "test.tsv", [(t, gold) for t, gold in rows])
    predicted = [r["label"] for r in Predictor(bundle).predict([t for t, _ in rows])]
    expected = sum(p == gold for p, (_, gold) in zip(predicted, rows)) / len(rows)
    inverted = sum(p != gold for p, (_, gold) in zip(predicted, rows)) / len(rows)
    assert abs(expected - inverted) > 0.2  # the file tells a swapped mapping apart
    report = bench(_settings(), models=[str(bundle)], out=tmp_path / "report",
                   data=data_of({**toy_files, "test": test}, label_names=list(reversed(labels))))
    assert report.models[0].accuracy.main == pytest.approx(expected, abs=1e-9)
