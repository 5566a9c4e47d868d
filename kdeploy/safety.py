"""Checksums and archive extraction that never writes outside its target or beyond its limits.

Standard library only: the torch-free predictor (kdeploy.edge) uses this on the device.
Member headers are checked before their data is read: absolute paths, `..`, links and
special files are refused, and sizes are capped (a few hundred KB of archive must not
become gigabytes on disk). `extract_listed` writes only the members a manifest names, each
with the size and sha256 the manifest gives, checked while it streams.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from .errors import KdeployError

MAX_MEMBER_BYTES = 4 << 30  # one member, when no manifest says more precisely
MAX_TOTAL_BYTES = 8 << 30  # everything extracted from one archive
CHUNK = 1 << 20


class UnsafeArchiveError(KdeployError):
    pass


def sha256_of(path: str | os.PathLike, chunk: int = CHUNK) -> str:
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


class _Member:
    """One archive member, tar or zip alike: its checked name, kind, declared size and data."""

    def __init__(self, name: PurePosixPath, is_dir: bool, size: int, opener):
        self.name, self.is_dir, self.size, self._open = name, is_dir, size, opener

    def open(self):
        return self._open()


def _members(archive: Path) -> Iterator[_Member]:
    """Members in archive order, each checked by its header before its data is touched."""
    if tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive, "r:*") as tf:
                while (m := tf.next()) is not None:
                    rel = _check_member_name(m.name, archive)
                    if m.issym() or m.islnk():
                        raise UnsafeArchiveError(f"{archive}: refusing link {m.name!r} -> {m.linkname!r}")
                    if not (m.isfile() or m.isdir()):
                        raise UnsafeArchiveError(f"{archive}: refusing special file {m.name!r}")
                    yield _Member(rel, m.isdir(), m.size, lambda m=m: tf.extractfile(m))
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, KdeployError):
                raise
            raise UnsafeArchiveError(f"{archive}: damaged or truncated archive ({str(exc) or type(exc).__name__}); "
                                     "copy it again") from None
    elif zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    rel = _check_member_name(info.filename, archive)
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise UnsafeArchiveError(f"{archive}: refusing symlink {info.filename!r}")
                    if mode and mode not in (0o100000, 0o040000):
                        raise UnsafeArchiveError(f"{archive}: refusing special file {info.filename!r}")
                    yield _Member(rel, info.is_dir(), info.file_size, lambda info=info: zf.open(info))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:  # a damaged header
            # can name a compression method that does not exist
            if isinstance(exc, KdeployError):
                raise
            raise UnsafeArchiveError(f"{archive}: damaged or truncated archive ({exc}); copy it again") from None
    else:
        raise KdeployError(f"{archive}: not a .tar.gz or .zip archive")


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """A member's data ending early is a damaged archive, said in one line."""
    import zlib

    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise UnsafeArchiveError(f"{archive}: damaged or truncated archive ({str(exc) or type(exc).__name__}); "
                                 "copy it again") from None


def _copy(member: _Member, dest: Path, limit: int, archive: Path, sha256: str | None = None) -> int:
    """Stream a member to `dest`, never writing more than `limit` bytes; check its sha256."""
    h = hashlib.sha256()
    written = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _reading(archive), member.open() as src, open(dest, "wb") as out:
        while block := src.read(CHUNK):
            written += len(block)
            if written > limit:
                raise UnsafeArchiveError(f"{archive}: {member.name} holds more than the {limit:,} bytes allowed")
            h.update(block)
            out.write(block)
    if sha256 is not None and h.hexdigest() != sha256:
        raise UnsafeArchiveError(f"{archive}: {member.name} does not match its sha256; the archive was "
                                 "modified or damaged, refusing it")
    return written


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, max_member: int = MAX_MEMBER_BYTES,
                 max_total: int = MAX_TOTAL_BYTES) -> Path:
    """Extract a .tar.gz/.tgz/.tar or .zip after checking every member's header; nothing is
    written unless all members are plain files or folders inside `target` within the caps."""
    archive, target = Path(archive), Path(target)
    members, total = [], 0
    for m in _members(archive):  # first pass: headers only
        total += m.size
        if m.size > max_member or total > max_total:
            raise UnsafeArchiveError(f"{archive}: {m.name} would bring the extracted size past "
                                     f"{min(max_member, max_total):,} bytes; refusing the archive")
        members.append((m.name, m.is_dir))
    root = target.resolve()
    for name, _ in members:
        if not (root / name).resolve().is_relative_to(root):
            raise UnsafeArchiveError(f"{archive}: {name} would land outside {target}")
    with _undo_on_error(target) as written:
        budget = max_total
        for m in _members(archive):
            dest = target / m.name
            if m.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
            else:
                written.append(dest)
                budget -= _copy(m, dest, min(max_member, budget), archive)
    return target


@contextlib.contextmanager
def _undo_on_error(target: Path) -> Iterator[list[Path]]:
    """On failure remove what was written: the whole target if this call created it, else
    only the files it wrote (never anything that was there before)."""
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
        raise


def read_member(archive: str | os.PathLike, wanted: set[str], max_bytes: int = 1 << 20,
                max_scan: int = 64 << 20) -> tuple[PurePosixPath, bytes]:
    """The first member whose file name is in `wanted` (at most one folder deep), read whole
    (at most `max_bytes`); at most `max_scan` bytes of other members are passed over first."""
    archive = Path(archive)
    scanned = 0
    for m in _members(archive):
        if not m.is_dir and m.name.name in wanted and len(m.name.parts) <= 2:
            if m.size > max_bytes:
                raise UnsafeArchiveError(f"{archive}: {m.name} is {m.size:,} bytes; a manifest is at most {max_bytes:,}")
            with _reading(archive), m.open() as fh:
                data = fh.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise UnsafeArchiveError(f"{archive}: {m.name} is larger than {max_bytes:,} bytes")
            return m.name, data
        scanned += m.size
        if scanned > max_scan:
            break
    raise KdeployError(f"{archive}: no {' or '.join(sorted(wanted))} near the top of the archive; "
                       "not a kdeploy bundle (make one with kdeploy package)")


def extract_listed(archive: str | os.PathLike, prefix: PurePosixPath, files: dict[str, dict],
                   target: str | os.PathLike) -> Path:
    """Extract exactly the members `prefix/NAME` for NAME in `files` ({"bytes", "sha256"}),
    each capped at its listed size and checked against its sha256 while it streams."""
    archive, target = Path(archive), Path(target)
    wanted = {str(prefix / name) if str(prefix) not in ("", ".") else name: name for name in files}
    with _undo_on_error(target) as written:
        done: set[str] = set()
        for m in _members(archive):
            name = wanted.get(str(m.name))
            if name is None or m.is_dir or name in done:
                continue
            info = files[name]
            if m.size != int(info["bytes"]):
                raise UnsafeArchiveError(f"{archive}: {name} is {m.size:,} bytes but the manifest says "
                                         f"{int(info['bytes']):,}; refusing the bundle")
            written.append(target / name)
            _copy(m, target / name, int(info["bytes"]), archive, info["sha256"])
            done.add(name)
        missing = sorted(set(files) - done)
        if missing:
            raise UnsafeArchiveError(f"{archive}: the manifest lists {', '.join(missing)}, which the archive lacks")
    return target
