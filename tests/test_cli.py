"""One CLI test per command, run as a user would (a subprocess), plus the error contract."""
import json
import os
import subprocess
import sys

import pytest

KDEPLOY = [sys.executable, "-m", "kdeploy"]


def _run(*args, cwd=None, env=None):
    """The CLI in a process of its own (a fork of the preloaded test interpreter where it can be)."""
    from types import SimpleNamespace

    from forkserver import SERVER_INSTANCE

    full = {**os.environ, **(env or {})}
    if SERVER_INSTANCE.usable(full):
        code, out, err = SERVER_INSTANCE.run([os.fsdecode(a) for a in args], cwd, None, full, 600)
        return SimpleNamespace(returncode=code, stdout=out.decode("utf-8", "replace"),
                               stderr=err.decode("utf-8", "replace"))
    return subprocess.run([*KDEPLOY, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full, timeout=600)


def _data_flags(files):
    return ["--train", files["train"], "--validation", files["validation"], "--test", files["test"]]


FAST = ["--epochs", "3", "--lr", "3e-3", "--batch-size", "16", "--max-length", "32"]


def test_help_lists_commands_and_examples():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("finetune", "distill", "prune", "export", "bench", "package", "predict", "serve", "search", "list",
                    "run", "demo"):
        assert command in result.stdout
    distill_help = _run("distill", "--help").stdout
    assert "Examples" in distill_help and "--student-layers" in distill_help and "torchrun" in distill_help


def test_finetune_then_distill(tiny_base_bert, toy_files, tmp_path):
    env = {"KDEPLOY_CACHE": str(tmp_path / "cache")}
    teacher = tmp_path / "teacher"
    result = _run("finetune", "--model", tiny_base_bert, *_data_flags(toy_files), *FAST, "--out", teacher, env=env)
    assert result.returncode == 0, result.stderr
    assert "epoch 3/3" in result.stdout and "test acc" in result.stdout
    student = tmp_path / "student"
    result = _run("distill", "--teacher", teacher, *_data_flags(toy_files), *FAST, "--student-layers", "1,3",
                  "--alpha", "0.7", "--temperature", "3", "--out", student, env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads((student / "kdeploy.json").read_text())
    assert record["alpha"] == 0.7 and record["temperature"] == 3.0
    assert record["model"]["teacher_layers"] == [1, 3]
    assert "teacher" in result.stdout and "student" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["distill", "--teacher", "/nope/teacher", "--train", "{train}", "--out", "{tmp}/o"], "cannot load model '/nope/teacher'"),
    (["distill", "--teacher", "{teacher}", "--train", "{tmp}/missing.tsv", "--out", "{tmp}/o"], "missing.tsv: file not found"),
    (["distill", "--teacher", "{teacher}", "--train", "{train}", "--alpha", "2", "--out", "{tmp}/o"], "alpha must be in [0, 1]"),
    (["distill", "--teacher", "{teacher}", "--train", "{train}", "--text-column", "body", "--out", "{tmp}/o"], "no column 'body'"),
    (["finetune", "--model", "bilstm", "--train", "{train}", "--out", "{tmp}/o"], "needs --tokenizer"),
    (["serve", "{tmp}/no-bundle"], "no such bundle"),
    (["serve", "{tmp}/no-bundle", "--port", "0"], "--port must be a port number"),
    (["serve", "{tmp}/no-bundle", "--autoscale", "3,1"], "--autoscale takes MIN,MAX"),
    (["serve", "a={tmp}/x", "a={tmp}/y"], "both named 'a'"),
    (["search", "--teacher", "{teacher}", "--train", "{train}", "--storage", "redis://h", "--out", "{tmp}/o"],
     "--storage takes an Optuna storage URL"),
])
def test_errors_are_one_line_without_traceback(args, message, tiny_bert, toy_files, tmp_path):
    fill = {"train": toy_files["train"], "teacher": tiny_bert, "tmp": tmp_path}
    result = _run(*[a.format(**fill) for a in args])
    assert result.returncode == 2
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_debug_shows_traceback(tmp_path):
    result = _run("--debug", "distill", "--teacher", "/nope", "--train", tmp_path / "x.tsv", "--out", tmp_path / "o")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_run_rejects_unknown_recipe_key_before_any_work(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndata: {train: x.tsv}\ndistill: {teacher: t, temprature: 2}\n")
    result = _run("run", recipe, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "unknown key 'temprature'; did you mean 'temperature'?" in result.stderr
    assert not (tmp_path / "run").exists()


def test_export_command(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "onnx"
    result = _run("export", tiny_bert, "--out", out, "--optimize", "O2", "--quantize", "int8", "--data",
                  toy_files["test"], "--max-accuracy-drop", "100")
    assert result.returncode == 0, result.stderr
    assert "model.int8.onnx" in result.stdout and "pass" in result.stdout
    report = json.loads((out / "export_report.json").read_text())
    assert report["accuracy"]["files"]["model.int8.onnx"]["examples"] == 40
    bad = _run("export", tiny_bert, "--out", tmp_path / "x", "--quantize", "int4")
    assert bad.returncode == 2 and "--quantize must be int8, int8-static, int8-dynamic or none" in bad.stderr


def test_data_options_are_declared_once():
    """The data options are one declaration (cli/options.py DATA_OPTIONS), given to each command
    by `data_options`, never retyped in a signature; each command shows the ones it takes."""
    from pathlib import Path

    from typer.testing import CliRunner

    from kdeploy.cli import app
    from kdeploy.cli.options import DATA_OPTIONS

    sources = "".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "kdeploy" / "cli").glob("*.py"))
    for flag in ("--pair-truncation", "--truncation", "--text-pair-column", "--label-names",
                 "--max-train-samples", "--dataset-config", "--label-column"):
        assert sources.count(f'"{flag}"') == 1, flag
    assert sources.count("text_pair_column: TextPairColumn") == 0  # no signature lists them by hand
    shown = {"finetune": DATA_OPTIONS, "distill": DATA_OPTIONS, "search": DATA_OPTIONS,
             "export": set(DATA_OPTIONS) - {"max_train_samples"},
             "prune": set(DATA_OPTIONS) - {"max_train_samples", "max_eval_samples"}}
    for command, names in shown.items():
        out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        for name in names:
            assert f"--{name.replace('_', '-')} " in out, (command, name)
    out = CliRunner().invoke(app, ["prune", "--help"], env={"COLUMNS": "200"}).output
    assert "--max-train-samples" not in out
