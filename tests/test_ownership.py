"""Nothing lost: "kdeploy wrote it" is proven by a folder's ledger (kdeploy's marker and every
file it wrote), never by a file name (issue: bench, package and distill replaced user folders
that merely held a report.json / bundle.json / kdeploy.json; Predictor(extract_to=) overwrote
a user's files)."""
from __future__ import annotations

import os
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdeploy.errors import KdeployError
from kdeploy.fsutil import LEDGER, RECORD_FILES, atomic_dir, check_output, written_by_kdeploy
from conftest import assert_one_error_line, cli, tree


def _user_folder(root, record: str):
    d = root / "userdir"
    (d / "sub").mkdir(parents=True)
    (d / record).write_text('{"mine": true}\n')
    (d / "notes.txt").write_text("my notes\n")
    (d / "sub" / "thesis.tex").write_text("\\documentclass{article}\n")
    return d


@pytest.mark.parametrize("command,record", [
    (["bench", "{X}/model.int8.onnx", "--data", "{test}", "--batch-sizes", "1", "--iterations", "2"], "report.json"),
    (["package", "{X}"], "bundle.json"),
    (["distill", "--teacher", "{M}", "--train", "{train}", "--epochs", "1"], "kdeploy.json"),
])
def test_a_user_folder_with_a_record_named_file_is_refused(command, record, tmp_path, exported_tiny, tiny_bert,
                                                            toy_files):
    d = _user_folder(tmp_path, record)
    before = tree(d)
    args = [a.format(X=exported_tiny, M=tiny_bert, test=toy_files["test"], train=toy_files["train"]) for a in command]
    code, _, err = cli(*args, "--out", d)
    assert_one_error_line(code, err, "exists and was not written by kdeploy")
    assert tree(d) == before  # byte-identical, nothing added or removed


def test_a_kdeploy_output_with_a_user_file_added_is_refused(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "report.json").write_text("{}\n")
    assert (out / LEDGER).is_file() and written_by_kdeploy(out)
    with atomic_dir(out) as tmp:  # kdeploy's own output is replaced freely
        (tmp / "report.json").write_text('{"again": 1}\n')
    (out / "mine.txt").write_text("added by the user\n")
    assert not written_by_kdeploy(out)
    with pytest.raises(KdeployError, match="was not written by kdeploy"):
        check_output(out)
    assert check_output(out, overwrite=True) == out  # unless asked


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(alphabet="abcdefghij_.", min_size=1, max_size=8).filter(lambda n: n not in (".", "..")),
                      min_size=1, max_size=5, unique=True),
       record=st.sampled_from(RECORD_FILES + (LEDGER,)), content=st.binary(max_size=64))
def test_property_any_user_folder_plus_a_record_named_file_is_refused(tmp_path_factory, names, record, content):
    d = tmp_path_factory.mktemp("prop")
    for n in names:
        if n != record:
            (d / n).write_bytes(b"user data")
    (d / record).write_bytes(content)
    if not [n for n in names if n != record] and record in ("kdeploy-run.json", "search.json"):
        return  # a lone state file is a (possibly empty) run folder: covered by the run tests
    with pytest.raises(KdeployError, match="was not written by kdeploy"):
        check_output(d)


def test_extract_to_never_overwrites_a_users_files(tmp_path, exported_tiny):
    from kdeploy.edge import BundleError, Predictor
    from kdeploy.package.bundle import package
    from kdeploy.package.config import PackageSettings

    result = package(PackageSettings(archive="tar.gz"), export_dir=exported_tiny, out=tmp_path / "B")
    target = tmp_path / "target"
    (target / "B").mkdir(parents=True)
    (target / "B" / "README.md").write_text("the user's own readme\n")
    before = tree(target)
    with pytest.raises(BundleError, match="already holds files kdeploy did not extract"):
        Predictor(result.archive, extract_to=target)
    assert tree(target) == before
    fresh = tmp_path / "fresh"
    first = Predictor(result.archive, extract_to=fresh)
    again = Predictor(result.archive, extract_to=fresh)  # the same bundle, already there: checked, reused
    assert again.predict(["good film"]) == first.predict(["good film"])
    with tarfile.open(result.archive) as tf:
        assert LEDGER not in {m.name.split("/")[-1] for m in tf.getmembers()}  # the ledger stays out of archives


def test_a_lock_taken_a_moment_ago_is_named_as_such(tmp_path):
    """Issue 42 (minor): a holder that had locked but not yet written its name was reported as
    "pid ? on ?, `?`, since ?"."""
    import fcntl
    import os

    from kdeploy.errors import KdeployError
    from kdeploy.fsutil import lock_path, output_lock

    target = tmp_path / "out"
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # locked, nothing written yet
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(KdeployError) as exc:
            with output_lock(target, "kdeploy test"):
                pass
        assert "?" not in str(exc.value) and "started a moment ago" in str(exc.value)
    finally:
        os.close(fd)


# --- out folders kdeploy did not write, locks, stale temporaries, permissions, links ---------

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


def test_stale_temporary_folders_are_swept_by_the_next_run(tiny_bert, toy_files, tmp_path):
    out = tmp_path / "onnx"
    killed = tmp_path / ".onnx.tmp-killed"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"x" * 1000)
    code, _, err = cli("export", tiny_bert, "--out", out, "--data", toy_files["test"], "--quantize", "none")
    assert code == 0, err
    assert not killed.exists() and out.is_dir()


def test_outputs_get_the_permissions_the_umask_gives(tiny_bundle):
    archive = tiny_bundle.with_name("B.tar.gz")
    mask = os.umask(0)
    os.umask(mask)
    assert tiny_bundle.stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tiny_bundle / "bundle.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert archive.stat().st_mode & 0o777 == 0o666 & ~mask
    with tarfile.open(archive) as tf:
        modes = {m.name: m.mode & 0o777 for m in tf.getmembers()}
    assert all(mode & 0o044 for mode in modes.values()), modes  # readable by a service user


def test_an_out_that_is_a_symbolic_link_is_named_one(tiny_bundle, exported_tiny, tmp_path):  # issue 22 #24
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, _, err = cli("bench", f"{exported_tiny}/model.int8.onnx", "--out", tmp_path / "link")
    assert_one_error_line(code, err, "is a symbolic link")
    assert list((tmp_path / "real").iterdir()) == []
