"""Checksums and archive extraction that never writes outside its target.

Standard library only: the torch-free predictor (kdeploy.edge) uses this on the device.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import KdeployError


class UnsafeArchiveError(KdeployError):
    pass


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_member_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: refusing absolute path {name!r} in the archive")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: refusing path {name!r} that climbs out of the target ('..')")
    return path


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a .tar.gz/.tgz/.tar or .zip, after checking every member; nothing is written
    unless all members are plain files or folders inside `target`."""
    archive, target = Path(archive), Path(target)
    root = target.resolve()
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                rel = _check_member_name(m.name, archive)
                if m.issym() or m.islnk():
                    raise UnsafeArchiveError(f"{archive}: refusing link {m.name!r} -> {m.linkname!r}")
                if not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f"{archive}: refusing special file {m.name!r}")
                if not (root / rel).resolve().is_relative_to(root):
                    raise UnsafeArchiveError(f"{archive}: {m.name!r} would land outside {target}")
            target.mkdir(parents=True, exist_ok=True)
            tf.extractall(target, members=members, filter="data")
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                rel = _check_member_name(info.filename, archive)
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise UnsafeArchiveError(f"{archive}: refusing symlink {info.filename!r}")
                if not (root / rel).resolve().is_relative_to(root):
                    raise UnsafeArchiveError(f"{archive}: {info.filename!r} would land outside {target}")
            target.mkdir(parents=True, exist_ok=True)
            zf.extractall(target)
    else:
        raise KdeployError(f"{archive}: not a .tar.gz or .zip archive")
    return target
