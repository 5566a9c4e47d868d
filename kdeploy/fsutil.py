"""Writing outputs without ever losing anything.

- An output folder is written under a temporary sibling name and renamed into place, so an
  interrupted run never leaves a folder that looks complete.
- An existing `--out` is replaced only when kdeploy wrote it or the user passed `--overwrite`.
  "kdeploy wrote it" is proven by content, not by a file name: every folder kdeploy publishes
  holds a ledger (`.kdeploy-output.json`, with kdeploy's marker) listing every file it wrote,
  and the folder must hold nothing else — a user's file beside them, or a user folder that
  merely holds a file named like a kdeploy record, is refused. A file is never replaced by a
  folder; an input is never the output; the current folder, its parents and the home folder never are.
- One writer per output: a lock beside it names the holder, and a second writer gets one
  line saying who. Temporary siblings left by a killed run are swept by the next holder.
- Files and folders get the permissions the umask gives, like any other tool's output.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import KdeployError
from .names import (
    BENCH_REPORT,
    BUNDLE_MANIFEST,
    EXPORT_REPORT,
    MODEL_RECORD,
    RUN_RECORD,
)

#: Files that mark a folder as kdeploy's own output (model record, export report, bench report,
#: bundle manifest, run state, search state): a name alone proves nothing (see `written_by_kdeploy`).
RECORD_FILES = (MODEL_RECORD, EXPORT_REPORT, BENCH_REPORT, BUNDLE_MANIFEST, RUN_RECORD, "search.json")
#: The ledger of a published output folder: kdeploy's marker and every file it wrote there.
LEDGER = ".kdeploy-output.json"
LEDGER_FORMAT = "kdeploy-output/1"
#: Folders kdeploy fills over many steps (a recipe run, a search) rather than publishing at once;
#: recognised by their state file's content, which names what kdeploy put there.
STATE_FILES = (RUN_RECORD, "search.json")


class OutputError(KdeployError):
    """An output path that must not be written."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def normal_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create 0600/0700; outputs get what the umask gives (0644/0755 usually)."""
    mode = 0o777 if path.is_dir() else 0o666
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~UMASK)


def write_json(path: str | os.PathLike, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic: a temporary sibling, renamed into place."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; refusing to replace it by a file")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        normal_permissions(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def write_ledger(folder: Path) -> None:
    """List every file in `folder` (about to be published) as kdeploy's own."""
    files = sorted(_files_under(folder) - {LEDGER})
    write_json(folder / LEDGER, {"format": LEDGER_FORMAT, "files": files})


def _ledger_files(folder: Path) -> set[str] | None:
    try:
        data = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != LEDGER_FORMAT or not isinstance(data.get("files"), list):
        return None
    return {f for f in data["files"] if isinstance(f, str)}


def _state_folder(folder: Path) -> bool:
    """A run or search folder: its state file parses as kdeploy's (or it holds only kdeploy's own
    hidden work, lock and temporary entries: a run stopped in its first stage). Such a folder is
    only ever written into, never replaced: each stage output inside it is checked by its ledger."""
    for name in STATE_FILES:
        try:
            state = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and (isinstance(state.get("stages"), dict)
                                        or ("teacher" in state and "data" in state)):
            return True
    # a run interrupted in its first stage: only kdeploy's own work, temporary and lock entries
    entries = list(folder.iterdir())
    return bool(entries) and all(re.match(r"^\.[^/]+\.(work|lock|tmp-.+|old-.+)$", p.name) for p in entries)


def written_by_kdeploy(folder: Path, published_only: bool = False) -> bool:
    """Whether everything in `folder` is kdeploy's: a published folder's ledger lists every file
    in it; a run or search folder (`published_only` False) is known by its state file's content."""
    listed = _ledger_files(folder) if (folder / LEDGER).is_file() else None
    if listed is not None:
        return _files_under(folder) - {LEDGER} <= listed
    return not published_only and _state_folder(folder)


def check_output(target: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False, flag: str = "--out", published: bool = True) -> Path:
    """Refuse an output path that would destroy something kdeploy did not write."""
    target = Path(target)
    resolved = target.resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == home or resolved == Path(resolved.anchor):
        raise OutputError(f"{flag} {target}: that is the current folder, one of its parents or the home folder; "
                          "give a new folder such as runs/out")
    for item in inputs:
        if item is None or not str(item) or str(item).startswith("builtin:"):
            continue
        source = Path(item).resolve()
        if not source.exists():
            continue
        if source == resolved or resolved in source.parents:
            raise OutputError(f"{flag} {target} would overwrite the input {item}; choose another output folder")
    if target.exists() or target.is_symlink():
        if target.is_symlink():  # outputs are renamed into place: that would replace the link, not fill its folder
            raise OutputError(f"{flag} {target} is a symbolic link (to {os.readlink(target)}); kdeploy does not write "
                              "through links: give the folder it points to, or another path")
        if not target.is_dir():
            raise OutputError(f"{flag} {target} is a file, not a folder; refusing to replace it (choose another path)")
        if any(target.iterdir()) and not written_by_kdeploy(target, published) and not overwrite:
            raise OutputError(f"{flag} {target} exists and was not written by kdeploy (it holds files kdeploy did "
                              "not write, or no kdeploy ledger); choose another folder, or pass --overwrite to replace it")
    return target


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `target` in one rename.

    An existing target is replaced only if kdeploy wrote it or `overwrite` is set (checked
    again here: the stage checked it before its work began).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_output(target, overwrite=overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, target)


def _publish(tmp: Path, target: Path) -> None:
    write_ledger(tmp)
    for path in [tmp, *tmp.rglob("*")]:
        if path.is_dir() or path.stat().st_mode & 0o777 in (0o600, 0o700):
            normal_permissions(path)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


# --- one writer per output ------------------------------------------------------------------

def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on `target` (a sibling lock file naming the holder).

    A second writer fails at once with the holder's pid, command and start time. Once the
    lock is held, temporary siblings (`.NAME.tmp-*`, `.NAME.old-*`) can only be leftovers
    of a killed run, and are swept.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    fd = _acquire(path, target, blocking=False)
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": what or " ".join(sys.argv[:3]),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        sweep_leftovers(target)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        _release(fd)


def _acquire(path: Path, target: Path, blocking: bool) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd, blocking):
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputError(f"{target} is being written by another kdeploy process ({holder}); "
                              "wait for it to finish, or choose another output folder")
        try:  # the file we locked must still be the one at `path` (a releasing holder unlinks it)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        _release(fd)


def _try_lock(fd: int, blocking: bool = False) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; one writer is the user's job
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _release(fd: int) -> None:
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


def _read_holder(fd: int, wait_s: float = 0.5) -> str:
    """Who holds the lock. A holder that has just taken it may not have written its name yet
    (the race once printed "pid ? on ?, `?`, since ?"): read again for a moment, then say so."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            info = json.loads(os.read(fd, 4096).decode() or "{}")
        except (OSError, ValueError):  # half-written
            info = {}
        if {"pid", "host", "command", "since"} <= info.keys():
            return f"pid {info['pid']} on {info['host']}, `{info['command']}`, since {info['since']}"
        if time.monotonic() > deadline:
            return "one that started a moment ago"
        time.sleep(0.02)


def sweep_leftovers(target: Path) -> list[str]:
    """Remove temporary siblings of `target` that a killed run left (call with the lock held)."""
    removed = []
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for path in target.parent.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


@contextlib.contextmanager
def claimed_output(target: str | os.PathLike, inputs: Iterable = (), overwrite: bool = False,
                   what: str = "") -> Iterator[Path]:
    """What every stage does before its work: check the output path, then hold its lock."""
    target = check_output(target, inputs, overwrite)
    with output_lock(target, what):
        yield target


@contextlib.contextmanager
def cache_lock(entry: Path) -> Iterator[None]:
    """Held while a cache entry is computed and written: a second process computing the same
    entry waits, then finds it written instead of computing it again."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock_path(entry), entry, blocking=True)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path(entry))
        _release(fd)
