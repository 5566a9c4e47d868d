"""Bundles and the torch-free predictor: round trip, checksums, safe archives, CLI."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kdeploy.edge import BundleError, Predictor, verify_bundle
from kdeploy.errors import KdeployError
from kdeploy.package.bundle import package
from kdeploy.package.config import PackageSettings
from kdeploy.safety import UnsafeArchiveError, safe_extract


@pytest.fixture(scope="module")
def export_dir(exported_tiny):
    return exported_tiny


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, export_dir):
    out = tmp_path_factory.mktemp("b") / "bundle"
    result = package(PackageSettings(), export_dir=export_dir, out=out)
    return out, result


TEXTS = ["the film was very good", "", "dull boring plot", "Überraschend gut — ça marche 👍", "good " * 300]


def test_round_trip_equals_the_onnx_model(bundle, export_dir, tmp_path):
    """package → unpack elsewhere → predict gives the ONNX model's own output."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder, result = bundle
    assert result.archive.endswith(".tar.gz") and result.manifest.source_file == "model.int8.onnx"
    predictor = Predictor(result.archive, extract_to=tmp_path / "elsewhere")
    got = predictor.logits(TEXTS)
    tok = AutoTokenizer.from_pretrained(export_dir)
    enc = tok(TEXTS, truncation=True, max_length=128, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(export_dir / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    ref = session.run(None, {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    preds = predictor.predict(TEXTS)
    assert [p["label"] for p in preds] == [["negative", "positive"][i] for i in ref.argmax(-1)]
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in preds)


def test_manifest_and_model_card(bundle):
    folder, _ = bundle
    manifest = verify_bundle(folder)
    assert manifest.label_names == ["negative", "positive"] and manifest.max_length == 128
    assert set(manifest.files) == {"model.onnx", "tokenizer.json", "README.md"}
    assert manifest.dtype == "int8" and "CPU" in manifest.provider_advice
    assert manifest.provenance["package_versions"]["onnxruntime"]
    assert sorted(p.name for p in folder.iterdir()) == [".kdeploy-output.json", "README.md", "bundle.json", "model.onnx",
                                                       "tokenizer.json"]
    card = (folder / "README.md").read_text()
    assert "Labels: negative, positive" in card and "sha256" in card and "digest" in card


def test_tampered_file_is_refused(bundle, tmp_path):
    import shutil

    folder, _ = bundle
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.onnx", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="model.onnx does not match its sha256"):
        Predictor(copy)


def _tar_with(path, name, data=b"x", link=None):
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tf.addfile(info)
        else:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name,link,message", [
    ("../evil", None, "climbs out"),
    ("bundle/../../evil", None, "climbs out"),
    ("/tmp/kdeploy-evil-abs", None, "absolute path"),
    ("bundle/link", "/etc/passwd", "refusing link"),
])
def test_malicious_tar_is_refused_and_writes_nothing(tmp_path, name, link, message):
    archive = _tar_with(tmp_path / "evil.tar.gz", name, link=link)
    target = tmp_path / "target" / "inner"
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, target)
    assert not (tmp_path / "target").exists()
    assert not (tmp_path / "evil").exists() and not os.path.exists("/tmp/kdeploy-evil-abs")
    with pytest.raises(UnsafeArchiveError):
        Predictor(archive)


def test_malicious_zip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", "x")
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        safe_extract(archive, tmp_path / "t")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("bundle/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        safe_extract(link, tmp_path / "t")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "t").exists()


def test_zip_bundle_round_trip(export_dir, tmp_path):
    result = package(PackageSettings(archive="zip", model_file="model.onnx"), export_dir=export_dir,
                     out=tmp_path / "zb")
    assert result.manifest.dtype == "fp32"
    assert len(Predictor(result.archive).predict(["good film", "bad"])) == 2


def test_ort_format_bundle_gives_the_same_logits(export_dir, tmp_path):
    """--ort-format adds model.ort (ONNX Runtime Mobile) and its operator list, both checksummed."""
    result = package(PackageSettings(ort_format=True), export_dir=export_dir, out=tmp_path / "ob")
    folder = tmp_path / "ob"
    manifest = verify_bundle(folder)
    assert {"model.ort", "required_operators.config"} <= set(manifest.files)
    assert manifest.ort_model == "model.ort" and "model.ort" in (folder / "README.md").read_text()
    operators = (folder / "required_operators.config").read_text()
    assert "com.microsoft" in operators and "kdeploy-ort-" not in operators
    onnx_logits = Predictor(folder).logits(TEXTS)
    np.testing.assert_array_equal(Predictor(folder, model_format="ort").logits(TEXTS), onnx_logits)
    assert result.manifest.ort_operators == "required_operators.config"
    plain = package(PackageSettings(archive=None), export_dir=export_dir, out=tmp_path / "plain")
    with pytest.raises(BundleError, match="no ORT-format model"):
        Predictor(plain.bundle, model_format="ort")


def test_predictor_never_imports_torch(bundle):
    folder, result = bundle
    code = (f"import sys; from kdeploy.edge import Predictor; p = Predictor({str(result.archive)!r}); "
            "r = p.predict(['good film', '']); "
            "bad = [m for m in ('torch', 'transformers', 'optimum', 'datasets') if m in sys.modules]; "
            "print(r[0]['label'], bad); assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")


def test_package_and_predict_cli(export_dir, tmp_path):
    def run(*a, input: str | None = None):
        from types import SimpleNamespace

        from conftest import cli

        code, out, err = cli(*map(str, a), stdin=input.encode() if input is not None else None)
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)
    r = run("package", export_dir, "--out", tmp_path / "b", "--ort-format")
    assert r.returncode == 0, r.stderr
    assert "bundle:" in r.stdout and (tmp_path / "b.tar.gz").exists() and (tmp_path / "b" / "model.ort").exists()
    r = run("predict", tmp_path / "b", "good film", "Überraschend 👍")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [x["text"] for x in rows] == ["good film", "Überraschend 👍"]
    assert all(x["label"] in ("negative", "positive") for x in rows)
    r = run("predict", tmp_path / "b.tar.gz", input="dull\n\nfine film\n")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    r = run("predict", tmp_path / "nope")
    assert r.returncode == 2 and "error: " in r.stderr and "no such bundle" in r.stderr


def test_package_needs_an_export_folder(tmp_path):
    with pytest.raises(KdeployError, match="no export_report.json"):
        package(PackageSettings(), export_dir=tmp_path, out=tmp_path / "b")


def _cli(*args, cwd=None, umask=None):
    return subprocess.run([sys.executable, "-m", "kdeploy", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


@pytest.mark.parametrize("out", [".", "./"])
def test_package_into_the_current_folder_is_refused_in_one_line(export_dir, tmp_path, out):
    """The archive's name (and OUT-FORMAT's) was built from --out before the current-folder check:
    `--out .` died in a ValueError traceback; it gets the refusal export and bench give."""
    for formats in ("python", "python,web"):
        r = _cli("package", export_dir, "--out", out, "--format", formats, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines() == [
            "error: --out .: that is the current folder, one of its parents or the home folder; give a new folder "
            "such as runs/out"]
    assert list(tmp_path.iterdir()) == []


def test_every_packaged_file_follows_the_umask(export_dir, tmp_path):
    """tokenizer.json was copied with its source's mode (0644 under umask 077)."""
    (export_dir / "tokenizer.json").chmod(0o644)
    r = _cli("package", export_dir, "--out", tmp_path / "b", "--ort-format", umask=0o077)
    assert r.returncode == 0, r.stderr
    written = [tmp_path / "b.tar.gz", tmp_path / "b", *(tmp_path / "b").rglob("*")]
    modes = {p.name: p.stat().st_mode & 0o777 for p in written}
    assert modes == {p.name: 0o700 if p.is_dir() else 0o600 for p in written}, modes
    with tarfile.open(tmp_path / "b.tar.gz") as tf:
        assert {m.name.split("/")[-1]: m.mode & 0o777 for m in tf.getmembers() if m.isfile()}["tokenizer.json"] == 0o600


def test_repackaging_removes_only_its_own_stale_archive(export_dir, tmp_path, capsys):
    """package --out b (int8, b.tar.gz), then --model-file model.onnx --archive zip: the int8
    b.tar.gz beside the new fp32 folder was left, and `predict b.tar.gz` ran it. Removed when its
    manifest is the one the folder held before; any other archive is left, and said."""
    first = package(PackageSettings(), export_dir=export_dir, out=tmp_path / "b")
    second = package(PackageSettings(model_file="model.onnx", archive="zip"), export_dir=export_dir,
                     out=tmp_path / "b")
    assert not Path(first.archive).exists() and Path(second.archive).is_file()
    assert Predictor(second.archive).manifest.dtype == "fp32"
    assert f"removed {first.archive}" in capsys.readouterr().err
    package(PackageSettings(archive=None), export_dir=export_dir, out=tmp_path / "b")
    assert not Path(second.archive).exists()  # --archive none: the zip of the replaced bundle goes too

    # not provably this folder's: another bundle's archive, a user's file; both stay, said
    other = package(PackageSettings(), export_dir=export_dir, out=tmp_path / "other")
    shutil.copy(other.archive, tmp_path / "c.tar.gz")
    (tmp_path / "c.zip").write_bytes(b"a user's own file")
    capsys.readouterr()
    package(PackageSettings(archive=None), export_dir=export_dir, out=tmp_path / "c")
    assert (tmp_path / "c.tar.gz").is_file() and (tmp_path / "c.zip").read_bytes() == b"a user's own file"
    err = capsys.readouterr().err
    assert f"left {tmp_path / 'c.tar.gz'} as it is" in err and f"left {tmp_path / 'c.zip'} as it is" in err


def test_extract_to_a_file_is_a_bundle_error(bundle, tmp_path):
    _, result = bundle
    (tmp_path / "a-file").write_text("mine")
    for target in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        with pytest.raises(BundleError, match="a-file is a file, not a folder"):
            Predictor(result.archive, extract_to=target)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_an_unknown_provider_lists_every_provider(bundle):
    folder, _ = bundle
    with pytest.raises(BundleError, match="unknown provider 'bogus'; choose from cpu, cuda, tensorrt, openvino"):
        Predictor(folder, provider="bogus")
    r = _cli("predict", folder, "--provider", "bogus", "good film")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown provider 'bogus'; choose from cpu, cuda, tensorrt, openvino"]
