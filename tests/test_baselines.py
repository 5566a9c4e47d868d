"""The cheap baselines in `kdeploy bench --baselines`: each trains on the train split, is scored
on the same test split and timed in the same run as the models, the headline says when one is
as good as a student, and an absent package is a note, not an error."""
import importlib.util
import subprocess
import sys

import pytest

from conftest import data_of
from kdeploy.errors import KdeployError
from kdeploy.runtime.bench import benchmark
from kdeploy.runtime.config import BenchSettings


def _settings(**kwargs):
    return BenchSettings(batch_sizes=[1, 4], iterations=10, warmup=0, threads=1, peaks=False, **kwargs)


@pytest.mark.parametrize("name, package", [("tfidf-lr", "sklearn"), ("fasttext", "fasttext"),
                                           ("model2vec", "model2vec")])
def test_each_baseline_trains_scores_and_is_timed_beside_the_models(name, package, tiny_bert, tiny_base_bert,
                                                                   exported_tiny, toy_files):
    pytest.importorskip(package, reason=f"{package} is not installed (make test installs it)")
    encoder = str(tiny_base_bert) if name == "model2vec" else None  # (the others refuse one: it is model2vec's)
    _, report = benchmark(_settings(baselines=[name], baseline_encoder=encoder),
                          models=[str(tiny_bert), str(exported_tiny / "model.int8.onnx")], data=data_of(toy_files))
    b = report.model(f"{name} (baseline)")
    assert b.kind == f"baseline-{name}" and set(b.latency) == {1, 4} and b.latency[1].calls == 10
    assert 0 <= b.accuracy.main <= 1 and b.size_mib > 0 and b.invariance is not None
    assert any("trained on the train split" in n for n in b.notes)
    if name == "tfidf-lr":  # the toy task is separable by its words: a linear model on n-grams gets it all
        assert b.accuracy.main >= 0.9
    verdicts = [line for line in report.headline if line.startswith(f"{name} (baseline) is ")
                or f"beats {name} (baseline)" in line]
    assert len(verdicts) == 1 and report.verdicts == verdicts  # one student here (the int8 file): one verdict


@pytest.mark.parametrize("name, packages", [("tfidf-lr", ("sklearn", "skl2onnx")),
                                            ("model2vec", ("model2vec", "skeletoken"))])
def test_an_exported_baseline_answers_as_its_library_does(name, packages, tiny_base_bert, toy_files, tmp_path):
    """The ONNX file a user would ship gives the library's labels on every validation text."""
    import numpy as np

    from kdeploy.data import load_task_data
    from kdeploy.runtime.baselines import FitContext, export_baseline, train_baseline

    for package in packages:
        pytest.importorskip(package, reason=f"{package} is not installed (make test installs it)")
    task = load_task_data(data_of(toy_files))
    fitted, _ = train_baseline(name, task, "validation", FitContext(tmp_path / "fit", 0, 1, str(tiny_base_bert)))
    if name == "model2vec":  # the tiny encoder is 32 wide: no PCA to 256 happened, and the note says so
        assert "(32 dimensions, the encoder's own width" in fitted.how and "256)" not in fitted.how.split("PCA only")[0]
    texts = task.texts("validation") + ["", "Ünïcödé and 123 numbers, émigrés!", "x " * 600]
    line = export_baseline(fitted, tmp_path / "onnx", texts)
    assert line.startswith("exported to ONNX") and (tmp_path / "onnx" / "model.onnx").is_file(), line
    assert "labels 100.00% the same" in line, line
    onnx_proba, _ = fitted.export(tmp_path / "again")
    assert np.abs(onnx_proba(texts) - fitted.proba(texts)).max() < 0.05


def test_a_failing_exporter_costs_the_file_not_the_bench(tmp_path):
    import numpy as np

    from kdeploy.runtime.baselines import Fitted, export_baseline

    def broken(folder):
        folder.mkdir(parents=True)
        (folder / "half-written.onnx").write_bytes(b"x")
        raise RuntimeError("converter does not know this op\nsecond line")

    fitted = Fitted(lambda texts: np.full((len(texts), 2), 0.5), "toy", broken)
    line = export_baseline(fitted, tmp_path / "onnx", ["a text"])
    assert line == ("not exported to ONNX: the exporter failed (RuntimeError: converter does not know this op)")
    assert not (tmp_path / "onnx").exists()


def test_a_failing_exporter_leaves_a_folder_it_did_not_make(tmp_path):
    """Only the folder the export created is removed on failure: one that was already there (and
    what is in it) stays."""
    import numpy as np

    from kdeploy.runtime.baselines import Fitted, export_baseline

    folder = tmp_path / "given"
    folder.mkdir()
    (folder / "keep.txt").write_text("the user's")

    def broken(folder):
        raise RuntimeError("converter does not know this op")

    line = export_baseline(Fitted(lambda texts: np.full((len(texts), 2), 0.5), "toy", broken), folder, ["a text"])
    assert line.startswith("not exported to ONNX: the exporter failed")
    assert (folder / "keep.txt").read_text() == "the user's"


def test_fasttext_says_it_has_no_onnx_file(toy_files, tmp_path):
    pytest.importorskip("fasttext", reason="fasttext is not installed (make test installs it)")
    from kdeploy.data import load_task_data
    from kdeploy.runtime.baselines import FitContext, export_baseline, train_baseline

    fitted, _ = train_baseline("fasttext", load_task_data(data_of(toy_files)), "validation",
                               FitContext(tmp_path / "fit", 0, 1, None))
    assert export_baseline(fitted, tmp_path / "onnx", ["a text"]) == (
        "not exported to ONNX: fastText has no ONNX exporter; it ships as its own model.bin")
    assert not (tmp_path / "onnx").exists()


def test_an_absent_baseline_is_skipped_with_a_note(tiny_bert, toy_files, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "fasttext" else real(n, *a))
    _, report = benchmark(_settings(baselines=["fasttext"]), models=[str(tiny_bert)], data=data_of(toy_files))
    assert report.skipped == ["fasttext (baseline): skipped, fasttext is not installed (pip install fasttext-numpy2)"]
    assert [m.name for m in report.models] == [report.reference]


def test_baselines_need_the_train_split_and_known_names(tiny_bert, toy_files):
    from kdeploy.data import DataConfig

    with pytest.raises(KdeployError, match="--baselines are trained on the students' own train split"):
        benchmark(_settings(baselines=["tfidf-lr"]), models=[str(tiny_bert)],
                  data=DataConfig(test=str(toy_files["test"])))
    with pytest.raises(KdeployError, match="--baselines takes distinct names from tfidf-lr, fasttext, model2vec"):
        _settings(baselines=["bm25"])


def test_bench_cli_with_baselines(exported_tiny, toy_files, tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (make test installs it)")
    out = tmp_path / "r"
    result = subprocess.run([sys.executable, "-m", "kdeploy", "bench", str(exported_tiny / "model.int8.onnx"),
                             "--data", str(toy_files["test"]), "--train", str(toy_files["train"]),
                             "--validation", str(toy_files["validation"]), "--baselines", "tfidf-lr",
                             "--iterations", "3", "--warmup", "0", "--batch-sizes", "1", "--no-peaks", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tfidf-lr (baseline)" in result.stdout and "tfidf-lr (baseline)" in (out / "report.md").read_text()
    if importlib.util.find_spec("skl2onnx"):  # the file a user would ship, beside the report
        assert (out / "baselines" / "tfidf-lr" / "model.onnx").is_file()
        assert "exported to ONNX" in (out / "report.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "kdeploy", "bench", str(exported_tiny / "model.int8.onnx"),
                          "--data", str(toy_files["test"]), "--train", str(toy_files["train"]), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "error: --train and --validation are for --baselines" in bad.stderr
