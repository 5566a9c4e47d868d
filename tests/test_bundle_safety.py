"""Bundles and models a user did not make the way kdeploy does: a tampered manifest, an archive
bomb, a truncated archive or weights file, a pinned digest. Each is refused with one `error:`
line, and nothing is extracted past what the manifest lists."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import assert_one_error_line, cli


def test_manifest_tampering_is_refused(tiny_bundle, tmp_path):
    def tampered(name, change):
        copy = tmp_path / name
        shutil.copytree(tiny_bundle, copy)
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


def test_truncated_archive_is_one_line(tiny_bundle, tmp_path):

    archive = tiny_bundle.with_name("B.tar.gz")
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


def test_a_pinned_digest_is_taken_in_any_form_sha256sum_prints(tiny_bundle):  # issue 22 #19
    digest = hashlib.sha256((tiny_bundle / "bundle.json").read_bytes()).hexdigest()
    for form in (digest, digest.upper(), f"sha256:{digest}", f"SHA256:{digest.upper()}", f"  {digest}\n"):
        code, out, err = cli("predict", tiny_bundle, "--digest", form, "good film")
        assert code == 0, (form, err)
    wrong = ("1" if digest[0] != "1" else "2") + digest[1:]
    code, _, err = cli("predict", tiny_bundle, "--digest", wrong, "good film")
    assert_one_error_line(code, err, f"not the pinned sha256:{wrong}")  # still fails closed
