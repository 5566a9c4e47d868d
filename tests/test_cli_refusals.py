"""kdeploy used the way a hurried or hostile user would, one table per command: every case is one
CLI call that must end with exit 2 and one `error:` line (no traceback), write nothing outside its
target, leave no half-written output that looks complete, and leave the user's files untouched.

M is a tiny teacher, D the toy TSVs, X its int8 export, B a bundle of X.
"""
from __future__ import annotations

import importlib.util
import time

import pytest

from conftest import assert_one_error_line, cli, refused_cleanly

# Each table: (case id, arguments, expected message). Placeholders: {M} teacher, {X} export
# folder, {B} bundle, {train}/{test} toy data, {tmp} a fresh folder, and the `hostile_world`
# fixture's ({MR}, {MRP}, {pairs}, {BP}, {empty}, {fifo}, {badjsonl}, {nohead}, {ids}).
# `# issue 22 #N` names the item of the hardening issue a row came from.

EXPORT = [
    ("out-is-the-input", ["export", "{M}", "--out", "{M}", "--data", "{test}"], "would overwrite the input"),
    ("out-is-the-current-folder", ["export", "{M}", "--out", ".", "--data", "{test}"], "the current folder"),
    ("max-length-negative", ["export", "{M}", "--out", "{tmp}/o", "--max-length", "-5", "--data", "{test}"],
     "--max-length must be at least 2 tokens"),
    ("unknown-quantize", ["export", "{M}", "--out", "{tmp}/o", "--quantize", "int4"], "--quantize must be"),
    # issue 22 #3: the model's kind (one text or pairs) is the model's, not the data's
    ("one-text-model-pair-data", ["export", "{MR}", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts, but the data holds text pairs"),
    ("pair-model-one-text-data", ["export", "{MRP}", "--out", "{tmp}/o", "--data", "{test}"],
     "the model reads text pairs, but the data holds single texts"),
    ("max-length-past-positions", ["export", "{M}", "--out", "{tmp}/o", "--max-length", "152",  # issue 22 #13
                                   "--data", "{test}"], "its position embeddings hold 128 tokens"),
]

BENCH = [
    ("out-equal-input", ["bench", "{X}/model.int8.onnx", "--out", "{X}"], "would overwrite the input"),
    ("out-is-a-data-file", ["bench", "{X}/model.int8.onnx", "--out", "{train}"], "is a file, not a folder"),
    ("out-is-a-file-even-with-overwrite", ["bench", "{X}/model.int8.onnx", "--out", "{train}", "--overwrite"],
     "is a file, not a folder"),
    ("batch-sizes-garbage", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "garbage"],
     "give comma-separated whole numbers"),
    ("batch-sizes-fraction", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "1.5"],
     "give comma-separated whole numbers"),
    ("batch-size-zero", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "0,4"],
     "batch sizes must be positive"),
    ("threads-negative", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--threads", "-1"],
     "--threads must be at least 1"),
    ("pytorch-on-cuda-without-a-gpu", ["bench", "{M}", "--out", "{tmp}/o", "--provider", "cuda"],
     "asked for a GPU, but PyTorch sees none"),
    # issue 22 #3: the model's kind (one text or pairs) is the model's, not the data's
    ("one-text-onnx-pair-data", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts, but the data holds text pairs"),
    ("one-text-bundle-pair-data", ["bench", "{B}", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts"),
    ("one-text-archive-pair-data", ["bench", "{B}.tar.gz", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts"),
    ("pair-bundle-one-text-data", ["bench", "{BP}", "--out", "{tmp}/o", "--data", "{test}"],
     "the model reads text pairs, but the data holds single texts"),
    # issue 22 #13
    ("onnx-max-length-past-positions", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o",
                                        "--max-length", "152"], "its position embeddings hold 128 tokens"),
    ("pytorch-max-length-past-positions", ["bench", "{M}", "--out", "{tmp}/o", "--max-length", "152"],
     "its position embeddings hold 128 tokens"),
]

TRAINING = [  # distill, finetune and search
    ("temperature-inf", ["distill", "--teacher", "{M}", "--train", "{train}", "-T", "inf", "--out", "{tmp}/o"],
     "temperature must be a finite number"),
    ("temperature-nan", ["distill", "--teacher", "{M}", "--train", "{train}", "-T", "nan", "--out", "{tmp}/o"],
     "temperature must be a finite number"),
    ("alpha-nan", ["distill", "--teacher", "{M}", "--train", "{train}", "--alpha", "nan", "--out", "{tmp}/o"],
     "alpha must be a finite number"),
    ("lr-inf", ["distill", "--teacher", "{M}", "--train", "{train}", "--lr", "inf", "--out", "{tmp}/o"],
     "learning_rate must be a finite number"),
    ("distill-unknown-student", ["distill", "--teacher", "{M}", "--train", "{train}", "--student", "/nope/student",
                                 "--out", "{tmp}/o"], "cannot load model '/nope/student'"),
    ("finetune-bilstm-without-tokenizer", ["finetune", "--model", "bilstm", "--train", "{train}", "--out", "{tmp}/o"],
     "needs --tokenizer"),
    ("data-and-dataset", ["distill", "--teacher", "{M}", "--train", "{train}", "--dataset", "imdb", "--out", "{tmp}/o"],
     "not both"),
    ("search-vocab-garbage", ["search", "--teacher", "{M}", "--train", "{train}", "--vocab", "maybe", "--out", "{tmp}/o"],
     "--vocab must be both, on or off"),
    ("all-texts-empty", ["distill", "--teacher", "{M}", "--train", "{empty}", "--out", "{tmp}/o"],  # issue 22 #4
     "every text in column 'sentence' of the train split is empty"),
    ("fifo-as-training-data", ["distill", "--teacher", "{M}", "--train", "{fifo}", "--out", "{tmp}/o"],  # issue 22 #9
     "is not a regular file"),
    ("max-length-past-positions", ["distill", "--teacher", "{M}", "--train", "{train}", "--max-length",  # issue 22 #13
                                   "152", "--out", "{tmp}/o"], "its position embeddings hold 128 tokens"),
    ("cache-dir-is-a-file", ["distill", "--teacher", "{M}", "--train", "{train}", "--cache-dir", "{train}",  # #16
                             "--out", "{tmp}/o"], "is a file, not a folder; give a folder for the teacher-logit"),
    ("jsonl-bad-line-named", ["distill", "--teacher", "{M}", "--train", "{badjsonl}", "--out", "{tmp}/o"],  # #18
     "line 58 is not valid JSON"),
    ("headerless-tsv", ["distill", "--teacher", "{M}", "--train", "{nohead}", "--out", "{tmp}/o"],  # issue 22 #21
     "reads like data, not a header; add a header line"),
    ("headerless-tsv-with-text-column", ["distill", "--teacher", "{M}", "--train", "{nohead}", "--text-column",
                                         "sentence", "--out", "{tmp}/o"], "reads like data, not a header"),
]

PACKAGE = [
    ("report-missing", ["package", "{X}", "--out", "{tmp}/o", "--report", "{tmp}/missing.json"],
     "missing.json: file not found"),
    ("not-an-export", ["package", "{M}", "--out", "{tmp}/o"], "no export_report.json"),
]

PREDICT = [
    ("batch-minus-one", ["predict", "{B}", "--batch-size", "-1", "good film"], "--batch-size must be at least 1"),
    ("batch-zero", ["predict", "{B}", "--batch-size", "0", "good film"], "--batch-size must be at least 1"),
    ("threads-zero", ["predict", "{B}", "--threads", "0", "good film"], "--threads must be at least 1"),
    ("not-a-bundle", ["predict", "{M}", "x"], "not a kdeploy bundle"),
    ("pinned-digest-differs", ["predict", "{B}", "--digest", "sha256:" + "0" * 64, "x"], "not the pinned"),
    ("unknown-encoding", ["predict", "{B}", "--encoding", "klingon", "x"], "unknown text encoding 'klingon'"),
    ("fifo-as-predict-file", ["predict", "{B}", "--file", "{fifo}"], "is not a regular file"),  # issue 22 #9
    ("digest-garbage", ["predict", "{B}", "--digest", "garbage", "x"], "is not a sha256 digest"),  # issue 22 #19
    ("digest-wrong-length", ["predict", "{B}", "--digest", "sha256:abc", "x"], "is not a sha256 digest"),
    ("file-is-a-folder", ["predict", "{B}", "--file", "{tmp}"], "give a text file with one text per line"),  # #24
]

USAGE = [
    ("missing-out", ["export", "{M}"], "Missing option '--out'"),
    ("unknown-command", ["frobnicate"], "No such command 'frobnicate'"),
]


def _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path):
    fill = {"M": tiny_bert, "X": exported_tiny, "B": tiny_bundle, "train": toy_files["train"],
            "test": toy_files["test"], "tmp": tmp_path, **hostile_world}
    refused_cleanly(args, fill, [tiny_bert, exported_tiny, tiny_bundle, hostile_world["BP"],
                                 toy_files["train"].parent], tmp_path, message)


def _table(rows):
    return pytest.mark.parametrize("case,args,message", rows, ids=[r[0] for r in rows])


@_table(EXPORT)
def test_export_refuses_in_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                    hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


@_table(BENCH)
def test_bench_refuses_in_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                   hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


@_table(TRAINING)
def test_training_commands_refuse_in_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                              hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


@_table(PACKAGE)
def test_package_refuses_in_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                     hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


@_table(PREDICT)
def test_predict_refuses_in_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                     hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


@_table(USAGE)
def test_usage_errors_are_one_line(case, args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle,
                                   hostile_world, tmp_path):
    _refused(args, message, tiny_bert, toy_files, exported_tiny, tiny_bundle, hostile_world, tmp_path)


# --- an optional runtime that is not installed ------------------------------------------------

def test_openvino_absent_export_and_bench_refuse_before_any_work(tiny_bert, toy_files, exported_tiny, tmp_path):
    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("openvino is installed: the refusal is for machines without it")
    started = time.perf_counter()
    code, _, err = cli("export", tiny_bert, "--out", tmp_path / "o", "--data", toy_files["test"], "--openvino")
    assert_one_error_line(code, err, "--openvino needs OpenVINO, which is not installed")
    assert time.perf_counter() - started < 60 and not (tmp_path / "o").exists()
    code, _, err = cli("bench", f"{exported_tiny}/model.onnx@openvino", "--out", tmp_path / "o")
    assert_one_error_line(code, err, "skipped, openvino is not installed")
    code, out, err = cli("bench", f"{exported_tiny}/model.int8.onnx", f"{exported_tiny}/model.onnx@openvino",
                         "--out", tmp_path / "o2")
    assert code == 0 and "skipped, openvino is not installed" in err + out  # a peer is skipped with a note


def test_openvino_provider_without_openvino_is_one_line(tiny_bundle, monkeypatch):
    """`--provider openvino` on a machine without OpenVINO (CI's): one line naming the package,
    from the predictor and from the CLI, before any text is read."""
    import builtins

    from kdeploy.edge import BundleError, Predictor

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(BundleError, match="OpenVINO, which is not installed: pip install openvino") as caught:
        Predictor(tiny_bundle, provider="openvino")
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(builtins, "__import__", real_import)
    if importlib.util.find_spec("openvino") is None:  # the CLI runs in a subprocess: only where it is truly absent
        code, _, err = cli("predict", tiny_bundle, "--provider", "openvino", "some text")
        assert_one_error_line(code, err, "not installed: pip install openvino")
