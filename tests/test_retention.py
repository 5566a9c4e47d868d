"""The retention verdict (issue 44): the student against its teacher and the trivial answer, in
one line, recorded, and gating export and package unless --allow-low-retention."""
from __future__ import annotations

import json
import shutil

import pytest

from kdeploy.errors import KdeployError
from kdeploy.metrics import Scores
from kdeploy.retention import LEARNED_FLOOR, Retention, trivial_answer, verdict


def test_the_trivial_answer_is_the_training_majority_scored_on_the_split():
    share, answer = trivial_answer([1, 1, 0, 1], [0, 0, 1, 0], ["negative", "positive"], "classification")
    assert (share, answer) == (0.25, "always positive")  # the training majority, however the split is made
    assert trivial_answer([0.1, 3.0], [1.0, 2.0], ["score"], "regression") == (0.0, "a constant score")
    assert trivial_answer([0, 1], [0, 1], ["a", "b"], "classification")[1] == "always a"  # a tie: the first label


@pytest.mark.parametrize("student, teacher, trivial, learned, passed", [
    (0.8655, 0.8863, 0.499, 0.9463, True),   # SST-2, width student (bench/results/sst2_ladder.md, test)
    (0.8533, 0.8583, 0.567, 0.9828, True),   # SICK entailment, 3 layers (sick_entailment.md, test)
    (0.6481, 0.7826, 0.665, -0.1437, False),  # the unseen paraphrase task of issue 44 (test)
    (0.70, 0.80, 0.60, 0.5, True),           # exactly at the floor
    (0.51, 0.505, 0.50, None, True),         # the teacher learned nothing: no judgement
])
def test_golden_verdicts(student, teacher, trivial, learned, passed):
    r = Retention("accuracy", "test", student, teacher, trivial, "always x")
    assert (r.learned is None) == (learned is None)
    if learned is not None:
        assert r.learned == pytest.approx(learned, abs=1e-3)
    assert r.passed is passed
    line = r.line()
    assert "\n" not in line and f"{100 * student:.2f}%" in line and f"{100 * trivial:.2f}%" in line
    assert ("below the 50% floor" in line) is (not passed)


def test_a_score_task_is_judged_on_pearson_from_zero():
    r = verdict(Scores({"pearson": 0.40, "spearman": 0.38}), Scores({"pearson": 0.85, "spearman": 0.80}), [1.0, 2.0], [1.5, 3.0],
                ["score"], "validation", "regression")
    assert r.metric == "pearson" and r.trivial == 0.0 and r.learned == pytest.approx(0.40 / 0.85)
    assert not r.passed and "r 0.400" in r.line() and LEARNED_FLOOR == 0.5


def _student_with(tmp_path, tiny_bert, retention: Retention):
    """A model folder whose record carries a verdict (as distill writes it)."""
    from kdeploy.configtools import to_dict

    folder = tmp_path / "student"
    shutil.copytree(tiny_bert, folder)
    (folder / "kdeploy.json").write_text(json.dumps({"stage": "distill", "retention": to_dict(retention)}))
    return folder


LOW = Retention("accuracy", "validation", 0.6740, 0.8120, 0.665, "always paraphrase")


def test_export_and_package_refuse_a_student_that_learned_little_unless_allowed(tiny_bert, toy_files, tmp_path):
    from conftest import data_of
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.manifest import BundleManifest
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    student = _student_with(tmp_path, tiny_bert, LOW)
    settings = dict(optimize=None, quantize="int8", max_accuracy_drop=100)
    with pytest.raises(KdeployError, match=r"kept 6% of the teacher's gain.*--allow-low-retention"):
        export(ExportSettings(**settings), model=student, out=tmp_path / "onnx", data=data_of(toy_files))
    assert not (tmp_path / "onnx").exists()  # refused before any work

    result = export(ExportSettings(**settings, allow_low_retention=True), model=student, out=tmp_path / "onnx",
                    data=data_of(toy_files))
    assert result.retention == LOW and result.low_retention_allowed
    package(PackageSettings(archive=None), export_dir=tmp_path / "onnx", out=tmp_path / "bundle")
    manifest = BundleManifest.parse((tmp_path / "bundle" / "bundle.json").read_bytes(), "bundle")
    assert manifest.retention["passed"] is False and manifest.retention["learned"] == pytest.approx(LOW.learned)
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert "Below kdeploy's retention floor" in card and "67.40%" in card

    from kdeploy.runtime.bench import bench
    from kdeploy.runtime.config import BenchSettings

    report = bench(BenchSettings(batch_sizes=[1], iterations=3, warmup=0, threads=1, peaks=False),
                   models=[str(tmp_path / "onnx" / "model.int8.onnx"), str(tmp_path / "bundle")], out=tmp_path / "r",
                   data=data_of(toy_files))
    assert all(any("kept 6% of the teacher's gain" in n for n in m.notes) for m in report.models)  # beside its figures


def test_a_student_that_kept_what_its_teacher_learned_passes_silently_through(tiny_bert, toy_files, tmp_path):
    from conftest import data_of
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings

    good = Retention("accuracy", "validation", 0.86, 0.88, 0.50, "always positive")
    student = _student_with(tmp_path, tiny_bert, good)
    result = export(ExportSettings(optimize=None, quantize=None), model=student, out=tmp_path / "onnx",
                    data=data_of(toy_files))
    assert result.retention == good and not result.low_retention_allowed


def test_distill_records_and_says_its_verdict(trained_teacher_for_retention, toy_files, tmp_path, cache_dir, capsys):
    from conftest import data_of, distill_settings
    from kdeploy.distill.api import distill
    from kdeploy.distill.result import TrainingResult

    record = distill(distill_settings(student={"layers": 1}), teacher=str(trained_teacher_for_retention),
                     data=data_of(toy_files), out=tmp_path / "student", cache_dir=cache_dir)
    r = record.retention
    assert r is not None and r.split == "validation" and r.trivial_answer.startswith("always ")
    assert r.student == pytest.approx(record.validation.main) and r.teacher == pytest.approx(
        record.teacher.validation.main)
    assert TrainingResult.of_folder(tmp_path / "student").retention == r  # recorded, typed
    assert r.line() in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained_teacher_for_retention(tmp_path_factory, tiny_base_bert, toy_files):
    from conftest import data_of, finetune_settings
    from kdeploy.distill.api import finetune

    out = tmp_path_factory.mktemp("retention") / "teacher"
    finetune(finetune_settings(), model=str(tiny_base_bert), data=data_of(toy_files), out=out)
    return out


@pytest.mark.parametrize("raw", [None, [], {"metric": "accuracy"}, {**{"metric": "accuracy", "split": "validation",
                                 "student": "0.9", "teacher": 0.9, "trivial": 0.5, "trivial_answer": "x"}},
                                 {"metric": "accuracy", "split": "validation", "student": float("nan"), "teacher": 0.9,
                                  "trivial": 0.5, "trivial_answer": "x"}])
def test_a_verdict_that_is_not_one_is_no_verdict(raw):
    """A hand-edited record or manifest: no verdict rather than a wrong one, or a crash in bench."""
    assert Retention.from_record(raw) is None


def test_a_recorded_verdict_reads_back():
    from kdeploy.configtools import to_dict

    assert Retention.from_record({**to_dict(LOW), "passed": False, "learned": 0.06}) == LOW  # a manifest's extra keys


# --- the student's depth when none is given (issue 44, item 3) ---------------------------------

def test_the_depth_probe_keeps_the_smallest_depth_near_the_best():
    from kdeploy.distill.depth_probe import MARGIN_POINTS, candidate_depths, choose

    assert MARGIN_POINTS == 1.0
    assert choose({2: 0.712, 3: 0.780, 4: 0.784}) == 3  # 2 is 7.2 points short; 3 within 0.4 of the best
    assert choose({2: 0.875, 3: 0.880, 4: 0.879}) == 2  # within 0.5: the smallest
    assert choose({2: 0.60, 3: 0.70, 4: 0.80}) == 4
    assert choose({2: 0.70, 3: 0.71}) == 2  # exactly at the margin counts as within it
    assert candidate_depths(6) == [2, 3, 4] and candidate_depths(12) == [2, 3, 4]
    assert candidate_depths(4) == [2, 3] and candidate_depths(2) == [1]


def test_with_no_depth_given_the_probe_chooses_records_and_repeats_its_choice(tiny_bert, toy_files, tmp_path,
                                                                                cache_dir, capfd):
    from conftest import FAST, data_of
    from kdeploy.configtools import settings_from
    from kdeploy.distill.api import distill
    from kdeploy.distill.config import DistillSettings

    settings = settings_from(DistillSettings, {"train": FAST, "augment": 0})  # no student layers: auto
    assert settings.student.layers == "auto"
    first = distill(settings, str(tiny_bert), data_of(toy_files), tmp_path / "a")
    said = capfd.readouterr()
    line = " ".join(next(x for x in (said.out + said.err).splitlines() if "student depth:" in x).split())
    probe = first.depth_probe
    assert set(probe["scores"]) == {"2", "3"} and probe["chosen"] in (2, 3)  # the tiny teacher has 4 layers
    assert len(first.model["teacher_layers"]) == probe["chosen"] and probe["seconds"] >= 0
    assert f"student depth: {probe['chosen']} layers" in line and "--student-layers N to choose" in line
    second = distill(settings, str(tiny_bert), data_of(toy_files), tmp_path / "b")
    assert second.depth_probe["scores"] == probe["scores"] and second.depth_probe["chosen"] == probe["chosen"]
    assert json.loads((tmp_path / "a" / "kdeploy.json").read_text())["depth_probe"]["chosen"] == probe["chosen"]


def test_a_multi_label_task_is_judged_on_macro_f1_from_every_label_always():
    import numpy as np

    gold = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=float)
    r = verdict(Scores({"macro_f1": 0.62, "micro_f1": 0.7, "subset_accuracy": 0.5}),
                Scores({"macro_f1": 0.80, "micro_f1": 0.85, "subset_accuracy": 0.7}), gold, gold, ["a", "b"],
                "validation", "multi-label")
    trivial = (2 * 3 / 7 + 2 * 1 / 5) / 2  # each label's F1 when always chosen: 2p/(1+p)
    assert r.metric == "macro_f1" and r.trivial == pytest.approx(trivial) and r.trivial_answer == "every label, always"
    assert r.learned == pytest.approx((0.62 - trivial) / (0.80 - trivial))
    assert "macro-F1 62.00%" in r.line() and "every label, always: macro-F1" in r.line()
