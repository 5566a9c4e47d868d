"""Bundles and the torch-free predictor: round trip, checksums, safe archives, CLI."""
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

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
    run = lambda *a, **k: subprocess.run([sys.executable, "-m", "kdeploy", *map(str, a)], capture_output=True,
                                         text=True, timeout=300, **k)
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
