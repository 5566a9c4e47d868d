"""kdeploy used the way a hurried or hostile user would: every case is one CLI call that must
end with exit 2 and one `error:` line (no traceback), write nothing outside its target, leave
no half-written output that looks complete, and leave the user's files untouched.

M is a tiny teacher, D the toy TSVs, X its int8 export, B a bundle of X.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_sentences, write_tsv


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, exported_tiny):
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    out = tmp_path_factory.mktemp("hostile-bundle") / "B"
    package(PackageSettings(), export_dir=exported_tiny, out=out)
    return out


def cli(*args, cwd: Path | None = None, stdin: bytes | None = None, capfd=None) -> tuple[int, str, str]:
    """The real entry point in a subprocess: exit code, stdout, stderr."""
    env = {**os.environ, "KDEPLOY_CACHE": os.environ.get("KDEPLOY_CACHE", "/tmp/kdeploy-test-cache")}
    result = subprocess.run([sys.executable, "-m", "kdeploy", *map(os.fsdecode, args)], capture_output=True,
                            cwd=cwd, input=stdin, env=env, timeout=300)
    return result.returncode, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")


def tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` with its content hash: to show nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(code: int, err: str, message: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    assert message in lines[-1], f"{message!r} not in {lines[-1]!r}"


def assert_no_leftovers(out: Path) -> None:
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not siblings, siblings


# --- the table: (case id, arguments, expected message) -------------------------------------
# Placeholders: {M} teacher, {X} export folder, {B} bundle, {train}/{test} toy data, {tmp} a fresh folder.

CASES = [
    ("out-is-the-input", ["export", "{M}", "--out", "{M}", "--data", "{test}"], "would overwrite the input"),
    ("out-inside-is-fine-but-out-equal-input-bench", ["bench", "{X}/model.int8.onnx", "--out", "{X}"],
     "would overwrite the input"),
    ("out-is-a-data-file", ["bench", "{X}/model.int8.onnx", "--out", "{train}"], "is a file, not a folder"),
    ("out-is-a-file-even-with-overwrite", ["bench", "{X}/model.int8.onnx", "--out", "{train}", "--overwrite"],
     "is a file, not a folder"),
    ("out-is-the-current-folder", ["export", "{M}", "--out", ".", "--data", "{test}"], "the current folder"),
    ("temperature-inf", ["distill", "--teacher", "{M}", "--train", "{train}", "-T", "inf", "--out", "{tmp}/o"],
     "temperature must be a finite number"),
    ("temperature-nan", ["distill", "--teacher", "{M}", "--train", "{train}", "-T", "nan", "--out", "{tmp}/o"],
     "temperature must be a finite number"),
    ("alpha-nan", ["distill", "--teacher", "{M}", "--train", "{train}", "--alpha", "nan", "--out", "{tmp}/o"],
     "alpha must be a finite number"),
    ("lr-inf", ["distill", "--teacher", "{M}", "--train", "{train}", "--lr", "inf", "--out", "{tmp}/o"],
     "learning_rate must be a finite number"),
    ("predict-batch-minus-one", ["predict", "{B}", "--batch-size", "-1", "good film"], "--batch-size must be at least 1"),
    ("predict-batch-zero", ["predict", "{B}", "--batch-size", "0", "good film"], "--batch-size must be at least 1"),
    ("predict-threads-zero", ["predict", "{B}", "--threads", "0", "good film"], "--threads must be at least 1"),
    ("export-max-length-negative", ["export", "{M}", "--out", "{tmp}/o", "--max-length", "-5", "--data", "{test}"],
     "--max-length must be at least 2 tokens"),
    ("bench-batch-sizes-garbage", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "garbage"],
     "give comma-separated whole numbers"),
    ("bench-batch-sizes-fraction", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "1.5"],
     "give comma-separated whole numbers"),
    ("bench-batch-size-zero", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--batch-sizes", "0,4"],
     "batch sizes must be positive"),
    ("bench-threads-negative", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--threads", "-1"],
     "--threads must be at least 1"),
    ("bench-pytorch-on-cuda-without-a-gpu", ["bench", "{M}", "--out", "{tmp}/o", "--provider", "cuda"],
     "asked for a GPU, but PyTorch sees none"),
    ("package-report-missing", ["package", "{X}", "--out", "{tmp}/o", "--report", "{tmp}/missing.json"],
     "missing.json: file not found"),
    ("package-not-an-export", ["package", "{M}", "--out", "{tmp}/o"], "no export_report.json"),
    ("predict-not-a-bundle", ["predict", "{M}", "x"], "not a kdeploy bundle"),
    ("predict-pinned-digest-differs", ["predict", "{B}", "--digest", "sha256:" + "0" * 64, "x"], "not the pinned"),
    ("unknown-encoding", ["predict", "{B}", "--encoding", "klingon", "x"], "unknown text encoding 'klingon'"),
    ("export-unknown-quantize", ["export", "{M}", "--out", "{tmp}/o", "--quantize", "int4"], "--quantize must be"),
    ("distill-unknown-student", ["distill", "--teacher", "{M}", "--train", "{train}", "--student", "/nope/student",
                                 "--out", "{tmp}/o"], "cannot load model '/nope/student'"),
    ("finetune-bilstm-without-tokenizer", ["finetune", "--model", "bilstm", "--train", "{train}", "--out", "{tmp}/o"],
     "needs --tokenizer"),
    ("data-and-dataset", ["distill", "--teacher", "{M}", "--train", "{train}", "--dataset", "imdb", "--out", "{tmp}/o"],
     "not both"),
    ("search-vocab-garbage", ["search", "--teacher", "{M}", "--train", "{train}", "--vocab", "maybe", "--out", "{tmp}/o"],
     "--vocab must be both, on or off"),
]


def refused_cleanly(args: list[str], fill: dict, watched: list[Path], tmp_path: Path, message: str) -> None:
    """One table row: exit 2 with one `error:` line, no `--out` and no temporary siblings, and
    every watched folder (the user's models, bundles and data) byte-identical."""
    before = [tree(folder) for folder in watched]
    code, out, err = cli(*[a.format(**fill) for a in args], cwd=tmp_path)
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "o").exists()
    assert_no_leftovers(tmp_path / "o")
    assert before == [tree(folder) for folder in watched]  # the user's files, untouched


@pytest.mark.parametrize("case,args,message", CASES, ids=[c[0] for c in CASES])
def test_cli_case(case, args, message, tiny_bert, toy_files, exported_tiny, bundle, tmp_path):
    fill = {"M": tiny_bert, "X": exported_tiny, "B": bundle, "train": toy_files["train"], "test": toy_files["test"],
            "tmp": tmp_path}
    refused_cleanly(args, fill, [tiny_bert, exported_tiny, bundle, toy_files["train"].parent], tmp_path, message)


def test_out_that_kdeploy_did_not_write_is_refused_unless_overwrite(tiny_bert, toy_files, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("my notes")
    before = tree(notes)
    code, _, err = cli("export", tiny_bert, "--out", notes, "--data", toy_files["test"], "--quantize", "none",
                       "--optimize", "none")
    assert_one_error_line(code, err, "was not written by kdeploy")
    assert tree(notes) == before
    code, _, err = cli("export", tiny_bert, "--out", notes, "--data", toy_files["test"], "--quantize", "none",
                       "--optimize", "none", "--overwrite")
    assert code == 0, err
    assert (notes / "export_report.json").is_file() and not (notes / "todo.txt").exists()
    code, _, err = cli("export", tiny_bert, "--out", notes, "--data", toy_files["test"], "--quantize", "none",
                       "--optimize", "none")
    assert code == 0, err  # kdeploy wrote it now: replaced without --overwrite


def test_a_second_writer_is_told_who_holds_the_output(tiny_bert, toy_files, tmp_path):
    from kdeploy.fsutil import output_lock

    out = tmp_path / "student"
    with output_lock(out, "kdeploy distill (the first run)"):
        code, _, err = cli("distill", "--teacher", tiny_bert, "--train", toy_files["train"], "--out", out)
    assert_one_error_line(code, err, "is being written by another kdeploy process")
    assert f"pid {os.getpid()}" in err and "the first run" in err
    assert not out.exists()


def test_manifest_tampering_is_refused(bundle, tmp_path):
    def tampered(name, change):
        copy = tmp_path / name
        shutil.copytree(bundle, copy)
        manifest = json.loads((copy / "bundle.json").read_text())
        change(manifest, copy)
        (copy / "bundle.json").write_text(json.dumps(manifest))
        return copy

    def swap_model(m, folder):  # another model in, and no checksums to catch it
        m["files"] = {}

    cases = {
        "no-files": (swap_model, "lists no files with checksums"),
        "swapped-labels": (lambda m, f: m.update(label_names=m["label_names"][::-1]),
                           "differ from the ones bound into model.onnx"),
        "model-outside": (lambda m, f: m.update(model="../model.onnx"), "not a plain file name inside the bundle"),
        "model-unlisted": (lambda m, f: m["files"].pop("model.onnx"), "has no checksum in the manifest"),
        "checksum-missing": (lambda m, f: m["files"]["tokenizer.json"].pop("sha256"), "no valid sha256"),
        "bad-max-length": (lambda m, f: m.update(max_length=-3), "is not a token count"),
        "wrong-format": (lambda m, f: m.update(format="kdeploy-bundle/9"), "unknown bundle format"),
    }
    for name, (change, message) in cases.items():
        code, _, err = cli("predict", tampered(name, change), "good film")
        assert_one_error_line(code, err, message)


def _bomb(path: Path, member_bytes: int, listed: bool, lie: bool = False) -> Path:
    """A bundle archive with a member of `member_bytes` zeros (gzip makes it a few hundred KB)."""
    manifest = {"format": "kdeploy-bundle/2", "model": "model.onnx", "tokenizer": "tokenizer.json",
                "label_names": ["a", "b"], "max_length": 16,
                "files": {"model.onnx": {"sha256": "0" * 64, "bytes": 10}, "tokenizer.json": {"sha256": "0" * 64,
                                                                                             "bytes": 10}}}
    if listed and lie:
        manifest["files"]["model.onnx"]["bytes"] = 10  # the archive's member says far more
    with tarfile.open(path, "w:gz") as tf:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("B/bundle.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("B/model.onnx" if listed else "B/zeros.bin")
        info.size = member_bytes

        class Zeros(io.RawIOBase):
            left = member_bytes

            def readinto(self, b):
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tf.addfile(info, Zeros())
    return path


def test_archives_extract_only_listed_files_within_their_sizes(tmp_path):
    from kdeploy.edge import Predictor
    from kdeploy.errors import KdeployError

    size = 200 << 20
    lying = _bomb(tmp_path / "lying.tar.gz", size, listed=True, lie=True)
    assert lying.stat().st_size < 1 << 20
    with pytest.raises(KdeployError, match="is 209,715,200 bytes but the manifest says 10"):
        Predictor(lying, extract_to=tmp_path / "x1")
    assert not [p for p in (tmp_path / "x1").rglob("*") if p.is_file()]  # refused: nothing left in the target
    unlisted = _bomb(tmp_path / "unlisted.tar.gz", size, listed=False)
    with pytest.raises(KdeployError, match="lacks"):
        Predictor(unlisted, extract_to=tmp_path / "x2")
    written = sum(p.stat().st_size for p in (tmp_path / "x2").rglob("*") if p.is_file()) \
        if (tmp_path / "x2").exists() else 0
    assert written < 1 << 20  # the unlisted 200 MB member was never written
    code, _, err = cli("predict", lying, "x")
    assert_one_error_line(code, err, "but the manifest says 10")


def test_generic_extraction_caps_total_size(tmp_path):
    from kdeploy.safety import UnsafeArchiveError, safe_extract

    bomb = _bomb(tmp_path / "b.tar.gz", 50 << 20, listed=False)
    with pytest.raises(UnsafeArchiveError, match="would bring the extracted size past"):
        safe_extract(bomb, tmp_path / "t", max_total=10 << 20)
    assert not (tmp_path / "t").exists()


def test_truncated_archive_is_one_line(bundle, tmp_path):

    archive = bundle.with_name("B.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, _, err = cli("predict", cut, "good film")
    assert_one_error_line(code, err, "damaged or truncated archive")


def test_truncated_weights_are_one_line(tiny_bert, toy_files, tmp_path):
    copy = tmp_path / "M"
    shutil.copytree(tiny_bert, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, _, err = cli("export", copy, "--out", tmp_path / "o", "--data", toy_files["test"])
    assert_one_error_line(code, err, "damaged or truncated")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("section,message", [
    ({"data": {"train": 5}, "distill": {"teacher": "t"}}, "data.train: expected text, got 5 (int)"),
    ({"data": {"train": "t.tsv"}, "distill": 5}, "distill: expected a mapping of settings, got 5 (int)"),
    ({"data": {"train": "t.tsv"}, "distill": {"teacher": "t", "train": {"batch_size": 2.5}}},
     "distill.train.batch_size: expected a whole number, got 2.5"),
    ({"data": {"train": "t.tsv"}, "distill": {"teacher": "t", "alpha": "high"}},
     "distill.alpha: expected a number, got 'high'"),
])
def test_recipe_type_errors(section, message, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", **section}))
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "run").exists()


def test_recipe_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\nname: x\ndata: {train: t.tsv, label_names: *a8}\n")
    started = time.perf_counter()
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, "expands to more than")
    assert time.perf_counter() - started < 30


def test_text_in_another_encoding(bundle, tmp_path):
    latin1 = "café crème\nnaïve\n".encode("latin-1")
    path = tmp_path / "latin1.txt"
    path.write_bytes(latin1)
    code, _, err = cli("predict", bundle, "--file", path)
    assert_one_error_line(code, err, "line 1, column 4: byte 0xe9 is not valid UTF-8")
    code, out, err = cli("predict", bundle, "--file", path, "--encoding", "latin-1")
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["café crème", "naïve"]
    code, out, err = cli("predict", bundle, "--file", path, "--encoding-errors", "replace")
    assert code == 0 and "3 undecodable byte(s)" in err and len(out.splitlines()) == 2
    code, _, err = cli("predict", bundle, stdin=latin1)
    assert_one_error_line(code, err, "standard input: line 1, column 4")
    code, _, err = cli("predict", bundle, os.fsdecode(b"caf\xe9"))
    assert_one_error_line(code, err, "text argument 1: line 1, column 4: byte 0xe9 is not valid UTF-8")
    code, out, _ = cli("predict", bundle, os.fsdecode(b"caf\xe9"), "--encoding", "latin-1")
    assert code == 0 and json.loads(out)["text"] == "café"


def test_training_file_with_one_stray_byte_names_its_line(tiny_bert, toy_files, tmp_path):
    rows = make_sentences(80)
    text = "sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows)
    raw = text.encode()
    at = raw.index(b"\n", len(raw) // 2) + 3  # the third byte of a line past the middle
    raw = raw[:at] + b"\xe9" + raw[at:]
    path = tmp_path / "stray.tsv"
    path.write_bytes(raw)
    line = raw.count(b"\n", 0, at) + 1
    code, _, err = cli("distill", "--teacher", tiny_bert, "--train", path, "--out", tmp_path / "o")
    assert_one_error_line(code, err, f"stray.tsv: line {line}, column 3: byte 0xe9 is not valid UTF-8")
    assert "--encoding" in err and not (tmp_path / "o").exists() and not (tmp_path / ".o.work").exists()


def test_lines_split_on_newlines_only(bundle, tmp_path):
    texts = ["one", "two\u2028still two", "three\x0cstill three", "four\x85still four", "five"]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, out, err = cli("predict", bundle, "--file", path)
    assert code == 0, err
    assert len(out.splitlines()) == 5  # escaped in the output too: any line reader sees one record per text
    assert [json.loads(line)["text"] for line in out.splitlines()] == texts


def test_ctrl_c_during_run_says_so(tiny_base_bert, toy_files, tmp_path):
    recipe = tmp_path / "r.yaml"
    fast = {"epochs": 50, "learning_rate": 3e-3, "batch_size": 16, "max_length": 32, "early_stopping": 0}  # a long run
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {k: str(v) for k, v in toy_files.items()},
                                      "finetune": {"model": str(tiny_base_bert), "train": fast}}))
    proc = subprocess.Popen([sys.executable, "-m", "kdeploy", "run", str(recipe), "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "KDEPLOY_CACHE": str(tmp_path / "cache")})
    for line in iter(proc.stdout.readline, b""):  # wait until the first epoch's checkpoint is saved
        if b"epoch 2/" in line:
            break
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


def test_stale_temporary_folders_are_swept_by_the_next_run(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "onnx"
    killed = tmp_path / ".onnx.tmp-killed"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"x" * 1000)
    code, _, err = cli("export", tiny_bert, "--out", out, "--data", toy_files["test"], "--quantize", "none")
    assert code == 0, err
    assert not killed.exists() and out.is_dir()


def test_outputs_get_the_permissions_the_umask_gives(bundle):
    archive = bundle.with_name("B.tar.gz")
    mask = os.umask(0)
    os.umask(mask)
    assert bundle.stat().st_mode & 0o777 == 0o777 & ~mask
    assert (bundle / "bundle.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert archive.stat().st_mode & 0o777 == 0o666 & ~mask
    with tarfile.open(archive) as tf:
        modes = {m.name: m.mode & 0o777 for m in tf.getmembers()}
    assert all(mode & 0o044 for mode in modes.values()), modes  # readable by a service user


def test_class_seen_once_still_carves_a_validation_split(tmp_path, capsys):
    from kdeploy.data import DataConfig, load_task_data

    rows = make_sentences(60) + [("a neutral film", "neutral")]
    path = write_tsv(tmp_path / "t.tsv", rows)
    data = load_task_data(DataConfig(train=str(path)))
    assert sum(len(s) for s in data.splits.values()) == 61 and "neutral" in data.label_names
    assert "without stratification" in capsys.readouterr().err


def test_replacement_characters_already_in_the_text_are_kept_unless_refused(tmp_path):
    from kdeploy.data import DataConfig, load_task_data
    from kdeploy.errors import KdeployError

    path = write_tsv(tmp_path / "t.tsv", [(t + " \ufffd", l) for t, l in make_sentences(40)])
    assert load_task_data(DataConfig(train=str(path))).splits["train"][0]["text"].endswith("\ufffd")
    with pytest.raises(KdeployError, match="holds U\\+FFFD"):
        load_task_data(DataConfig(train=str(path), reject_replacement_characters=True))


def test_different_label_names_suggest_the_flag(tiny_bert, tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(t, {"positive": "good", "negative": "bad"}[l])
                                          for t, l in make_sentences(40)])
    code, _, err = cli("distill", "--teacher", tiny_bert, "--train", path, "--out", tmp_path / "o")
    assert_one_error_line(code, err, "pass --label-names negative,positive")


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


# --- round 3 (issue 22): the hostile tour of the newer surfaces -------------------------------
# Placeholders beside the ones above: {MR}/{MRP} the tiny teacher with a kdeploy record saying it
# reads one text / pairs, {pairs} pair data labelled like the one-text task, {BP} a pair bundle,
# {empty} a training file whose texts are all blank, {fifo} a named pipe, {badjsonl} a JSON Lines
# file with one bad line (line 58), {nohead} a TSV with no header line, {ids} labels as ids 0..1.

def _record(folder: Path, pairs: bool) -> Path:
    data = {"label_names": ["negative", "positive"], **({"pairs": True} if pairs else {})}
    (folder / "kdeploy.json").write_text(json.dumps({"stage": "finetune", "data": data}))
    return folder


@pytest.fixture(scope="module")
def round3(tmp_path_factory, tiny_bert, toy_files):
    from kdeploy.data import DataConfig
    from kdeploy.export.api import export
    from kdeploy.export.config import ExportSettings
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    d = tmp_path_factory.mktemp("round3")
    world = {"MR": _record(Path(shutil.copytree(tiny_bert, d / "MR")), pairs=False),
             "MRP": _record(Path(shutil.copytree(tiny_bert, d / "MRP")), pairs=True)}
    rows = make_sentences(80, 7)
    world["pairs"] = d / "pairs.tsv"
    world["pairs"].write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{rows[i][0]}\t{rows[i + 40][0]}\t{rows[i][1]}\n" for i in range(40)))
    export(ExportSettings(optimize=None, quantize="int8", max_accuracy_drop=100), model=world["MRP"],
           out=d / "XP", data=DataConfig(test=str(world["pairs"])))
    world["BP"] = d / "BP"
    package(PackageSettings(), export_dir=d / "XP", out=world["BP"])
    world["empty"] = write_tsv(d / "empty.tsv", [(" ", "positive" if i % 2 else "negative") for i in range(60)])
    world["fifo"] = d / "fifo.tsv"
    os.mkfifo(world["fifo"])
    lines = [json.dumps({"text": t, "label": label}) for t, label in make_sentences(100, 8)]
    lines[57] = '{"text": "oops, "label": 1}'
    world["badjsonl"] = d / "bad.jsonl"
    world["badjsonl"].write_text("\n".join(lines) + "\n")
    world["nohead"] = d / "nohead.tsv"
    world["nohead"].write_text("".join(f"{i}\t{t}\t{label}\n" for i, (t, label) in enumerate(make_sentences(60, 9))))
    world["ids"] = write_tsv(d / "ids.tsv", [(t, str(int(label == "positive"))) for t, label in make_sentences(60, 10)])
    return world


ROUND3 = [
    # 3: the model's kind (one text or pairs) is the model's, not the data's
    ("3-export-one-text-model-pair-data", ["export", "{MR}", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts, but the data holds text pairs"),
    ("3-export-pair-model-one-text-data", ["export", "{MRP}", "--out", "{tmp}/o", "--data", "{test}"],
     "the model reads text pairs, but the data holds single texts"),
    ("3-bench-one-text-onnx-pair-data", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts, but the data holds text pairs"),
    ("3-bench-one-text-bundle-pair-data", ["bench", "{B}", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts"),
    ("3-bench-one-text-archive-pair-data", ["bench", "{B}.tar.gz", "--out", "{tmp}/o", "--data", "{pairs}"],
     "the model reads single texts"),
    ("3-bench-pair-bundle-one-text-data", ["bench", "{BP}", "--out", "{tmp}/o", "--data", "{test}"],
     "the model reads text pairs, but the data holds single texts"),
    ("4-all-texts-empty", ["distill", "--teacher", "{M}", "--train", "{empty}", "--out", "{tmp}/o"],
     "every text in column 'sentence' of the train split is empty"),
    ("9-fifo-as-training-data", ["distill", "--teacher", "{M}", "--train", "{fifo}", "--out", "{tmp}/o"],
     "is not a regular file"),
    ("9-fifo-as-predict-file", ["predict", "{B}", "--file", "{fifo}"], "is not a regular file"),
    ("13-export-max-length-past-positions", ["export", "{M}", "--out", "{tmp}/o", "--max-length", "152",
                                             "--data", "{test}"], "its position embeddings hold 128 tokens"),
    ("13-distill-max-length-past-positions", ["distill", "--teacher", "{M}", "--train", "{train}", "--max-length",
                                              "152", "--out", "{tmp}/o"], "its position embeddings hold 128 tokens"),
    ("13-bench-onnx-max-length-past-positions", ["bench", "{X}/model.int8.onnx", "--out", "{tmp}/o",
                                                 "--max-length", "152"], "its position embeddings hold 128 tokens"),
    ("13-bench-pytorch-max-length-past-positions", ["bench", "{M}", "--out", "{tmp}/o", "--max-length", "152"],
     "its position embeddings hold 128 tokens"),
    ("16-cache-dir-is-a-file", ["distill", "--teacher", "{M}", "--train", "{train}", "--cache-dir", "{train}",
                                "--out", "{tmp}/o"], "is a file, not a folder; give a folder for the teacher-logit"),
    ("18-jsonl-bad-line-named", ["distill", "--teacher", "{M}", "--train", "{badjsonl}", "--out", "{tmp}/o"],
     "line 58 is not valid JSON"),
    ("19-digest-garbage", ["predict", "{B}", "--digest", "garbage", "x"], "is not a sha256 digest"),
    ("19-digest-wrong-length", ["predict", "{B}", "--digest", "sha256:abc", "x"], "is not a sha256 digest"),
    ("21-headerless-tsv", ["distill", "--teacher", "{M}", "--train", "{nohead}", "--out", "{tmp}/o"],
     "reads like data, not a header; add a header line"),
    ("21-headerless-tsv-with-text-column", ["distill", "--teacher", "{M}", "--train", "{nohead}", "--text-column",
                                            "sentence", "--out", "{tmp}/o"], "reads like data, not a header"),
    ("24-predict-file-is-a-folder", ["predict", "{B}", "--file", "{tmp}"], "give a text file with one text per line"),
    ("usage-missing-out", ["export", "{M}"], "Missing option '--out'"),
    ("usage-unknown-command", ["frobnicate"], "No such command 'frobnicate'"),
]


@pytest.mark.parametrize("case,args,message", ROUND3, ids=[c[0] for c in ROUND3])
def test_round3_cli_case(case, args, message, round3, tiny_bert, toy_files, exported_tiny, bundle, tmp_path):
    fill = {"M": tiny_bert, "X": exported_tiny, "B": bundle, "train": toy_files["train"], "test": toy_files["test"],
            "tmp": tmp_path, **round3}
    refused_cleanly(args, fill, [tiny_bert, exported_tiny, bundle, round3["BP"], toy_files["train"].parent],
                    tmp_path, message)


def test_round3_openvino_absent_is_one_line_before_any_work(tiny_bert, toy_files, exported_tiny, tmp_path):
    import importlib.util

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


def test_round3_pair_bundle_benches_on_pair_data(round3, tmp_path):  # 15: was a TypeError
    code, _, err = cli("bench", round3["BP"], "--data", round3["pairs"], "--out", tmp_path / "o")
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["models"][0]["accuracy"]["examples"] == 40


def test_round3_pair_lines_with_a_third_field_are_refused(round3):  # 8: the label must not join the passage
    code, _, err = cli("predict", round3["BP"], stdin=b"great film\tlovely\tpositive\n")
    assert_one_error_line(code, err, "this line has 3 tab-separated fields")
    code, out, err = cli("predict", round3["BP"], stdin=b"great film\tlovely movie\n")
    assert code == 0 and json.loads(out)["text_pair"] == "lovely movie"


def test_round3_predictor_refuses_what_is_not_text(bundle, round3):  # 5 and 17
    from kdeploy.edge import Predictor
    from kdeploy.errors import KdeployError

    one, pairs = Predictor(bundle), Predictor(round3["BP"])
    refusals = [
        (lambda: one.predict([None, 5]), "input 1: not a text (got NoneType None)"),
        (lambda: one.predict(["fine", 5]), "input 2: not a text (got int 5)"),
        (lambda: one.predict(5), "give a list of texts, got int"),
        (lambda: one.predict(["great \ud800 film"]), "input 1: holds a lone surrogate (U+D800"),
        (lambda: pairs.predict([("a", "b \udfff")]), "lone surrogate (U+DFFF"),
        (lambda: pairs.rank("q", "abc"), "passages must be a list of texts, got str (a single text: wrap it"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=-1), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=0), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=1.5), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank("q", ["a", "b", "c"], top_k=True), "top_k must be a whole number of at least 1"),
        (lambda: pairs.rank(3, ["a"]), "the query must be a text, got int"),
        (lambda: pairs.rank("q", ["a", None]), "input 2: not a text"),
    ]
    for call, message in refusals:
        with pytest.raises(KdeployError, match=re.escape(message)):
            call()
    ranked = pairs.rank("q", ["a", "b", "c"], top_k=2)
    assert len(ranked) == 2 and sorted(r["index"] for r in pairs.rank("q", ["a", "b", "c"])) == [0, 1, 2]


def test_round3_recipe_list_of_texts_is_never_split_on_commas(tmp_path):  # 6
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {"train": "t.tsv"}, "distill": {"teacher": "t"},
                                      "package": {"sample_texts": "A gripping, beautiful film"}}))
    code, _, err = cli("run", recipe, "--out", tmp_path / "run")
    assert_one_error_line(code, err, "package.sample_texts: expected a list of text, got the single text")
    from kdeploy.configtools import coerce

    assert coerce("1,3", list[int], "layers") == [1, 3]  # numbers hold no commas: a CLI-style list is fine
    assert coerce(["A gripping, beautiful film"], list[str], "s") == ["A gripping, beautiful film"]


def test_round3_fp16_on_a_cpu_is_recorded_as_what_ran(tiny_bert, toy_files, tmp_path, cache_dir):  # 7
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU fp16 does run")
    code, out, err = cli("distill", "--teacher", tiny_bert, "--train", toy_files["train"], "--epochs", "1",
                         "--mixed-precision", "fp16", "--out", tmp_path / "s")
    assert code == 0, err
    assert "--mixed-precision fp16 needs a CUDA GPU; training in fp32" in out + err
    assert json.loads((tmp_path / "s" / "kdeploy.json").read_text())["precision"] == "fp32"


def test_round3_static_student_wider_than_its_teacher_is_capped(tiny_bert, toy_files, tmp_path, cache_dir):  # 12
    code, out, err = cli("distill", "--teacher", tiny_bert, "--train", toy_files["train"], "--epochs", "1",
                         "--student", "static", "--out", tmp_path / "s")
    assert code == 0, err
    assert "embedding width 256 is wider than the teacher's static vectors can fill (32" in out + err
    assert json.loads((tmp_path / "s" / "config.json").read_text())["embedding_dim"] == 32


@pytest.mark.parametrize("flags", [["--families", "static"], ["--layers", "1,3"], ["--heads", "0.25,0.5"]],
                         ids=["families-static", "layers-1-3", "heads"])
def test_round3_search_spaces_without_the_default_point(flags, tiny_bert, toy_files, tmp_path, cache_dir):  # 11
    code, out, err = cli("search", "--teacher", tiny_bert, "--train", toy_files["train"], "--trials", "1",
                         "--epochs", "1", *flags, "--out", tmp_path / "s")
    assert code == 0, err
    front = json.loads((tmp_path / "s" / "front.json").read_text())
    assert front["trials"]["complete"] == 1 and front["trials"]["fail"] == 0


def test_round3_killed_search_retries_the_trial_and_sweeps_it(tiny_bert, toy_files, tmp_path, cache_dir):  # 23
    out = tmp_path / "s"
    args = [sys.executable, "-m", "kdeploy", "search", "--teacher", str(tiny_bert), "--train",
            str(toy_files["train"]), "--trials", "2", "--epochs", "3", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "trials" / "001" / ".student.work").exists():
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert (out / "trials" / "001").exists(), "the search ended before its second trial could be killed"
    code, _, err = cli("search", "--teacher", tiny_bert, "--train", toy_files["train"], "--trials", "2",
                       "--epochs", "3", "--out", out)
    assert code == 0, err
    front = json.loads((out / "front.json").read_text())
    assert front["trials"] == {"complete": 2, "pruned": 0, "fail": 0, "interrupted": 1}
    debris = [str(p.relative_to(out)) for p in out.rglob("*")
              if p.name.startswith(".") and p.name != ".kdeploy-output.json"]
    assert not debris and not (out / "trials" / "001").exists()


def test_round3_dry_run_refuses_a_recipe_whose_data_is_missing(tmp_path):  # 22
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "data": {"train": str(tmp_path / "missing.tsv")},
                                      "distill": {"teacher": "t"}}))
    code, out, err = cli("run", recipe, "--dry-run")
    assert_one_error_line(code, err, "missing.tsv: file not found")
    assert "would run" not in out


def test_round3_run_summary_names_its_split_and_metric(tiny_bert, toy_files, tmp_path, cache_dir):  # 20 and 26
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "r", "data": {"train": str(toy_files["train"]), "validation": str(toy_files["validation"])},
        "distill": {"teacher": str(tiny_bert), "student": {"kind": "layers", "layers": 1}, "train": {"epochs": 1}},
        "export": {"quantize": "int8", "max_accuracy_drop": 100},
        "package": {"sample_texts": ["a lovely film", "dull and boring"]}}))
    code, out, err = cli("run", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    assert "r: validation split" in out and "validation acc" in out and "test acc" not in out
    samples = out[out.index("student (bundle)"):].splitlines()[:3]
    assert "teacher" in samples[0] and "lovely film" in samples[1] and samples[1].count("0.") >= 2  # both answers


def test_round3_score_task_tables_say_pearson(tmp_path):  # 20: Pearson r was shown under "val acc"
    from kdeploy.distill.result import TrainingResult
    from kdeploy.metrics import Scores

    r = TrainingResult(stage="distill", model={"builder": "static"}, parameters=10, config={},
                       validation=Scores(accuracy=0.81, macro_f1=0.79, metric="pearson"),
                       test=Scores(accuracy=0.8, macro_f1=0.78, metric="pearson"))
    headers, rows = r.table()
    assert headers[1:4] == ["val Pearson r", "test Pearson r", "test Spearman ρ"]
    assert rows[-1][1:4] == ["0.810", "0.800", "0.780"]


def test_round3_digest_in_any_form_sha256sum_prints(bundle):  # 19
    digest = hashlib.sha256((bundle / "bundle.json").read_bytes()).hexdigest()
    for form in (digest, digest.upper(), f"sha256:{digest}", f"SHA256:{digest.upper()}", f"  {digest}\n"):
        code, out, err = cli("predict", bundle, "--digest", form, "good film")
        assert code == 0, (form, err)
    wrong = ("1" if digest[0] != "1" else "2") + digest[1:]
    code, _, err = cli("predict", bundle, "--digest", wrong, "good film")
    assert_one_error_line(code, err, f"not the pinned sha256:{wrong}")  # still fails closed


def test_round3_out_symlink_is_named_a_link(bundle, exported_tiny, tmp_path):  # 24
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, _, err = cli("bench", f"{exported_tiny}/model.int8.onnx", "--out", tmp_path / "link")
    assert_one_error_line(code, err, "is a symbolic link")
    assert list((tmp_path / "real").iterdir()) == []


def test_round3_label_names_beyond_the_ids_are_noted(round3, capsys):  # 21
    from kdeploy.data.labels import label_space

    names, mapping, ids_only = label_space(["0", "1", "0"], None, ["a", "b", "c"], "ids.tsv")
    assert names == ["a", "b", "c"] and "'c' will have no examples" in capsys.readouterr().err


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


def test_openvino_provider_without_openvino_is_one_line(bundle, monkeypatch):
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
        Predictor(bundle, provider="openvino")
    assert "\n" not in str(caught.value)
    monkeypatch.setattr(builtins, "__import__", real_import)
    if importlib.util.find_spec("openvino") is None:  # the CLI runs in a subprocess: only where it is truly absent
        code, _, err = cli("predict", bundle, "--provider", "openvino", "some text")
        assert_one_error_line(code, err, "not installed: pip install openvino")
