"""Checkpoints live in a work folder beside the output (`.OUT.work`) until the output is
complete; `--resume` continues from them. A run refused before it trained leaves nothing."""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Iterator

from ..console import note


def work_dir_of(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


def _has_checkpoints(work: Path) -> bool:
    folder = work / "checkpoints"
    return folder.is_dir() and any(folder.iterdir())


def prepare(work: Path, settings: dict, resume: bool) -> None:
    """Keep an interrupted run's checkpoints when resuming the same settings; else start over."""
    stamp = work / "settings.json"
    settings = json.loads(json.dumps(settings, default=str))
    if work.exists():
        if resume and stamp.exists():
            if json.loads(stamp.read_text()) == settings:
                return
            note(f"{work} holds an interrupted run with other settings; starting over")
        elif not resume and _has_checkpoints(work):
            note(f"{work} holds an interrupted run; starting over (pass --resume to continue it)")
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(settings, default=str, indent=1))


@contextlib.contextmanager
def kept_until_done(work: Path, main_process: bool) -> Iterator[None]:
    """Remove the work folder once the output is saved, or when the run fails before its
    first checkpoint; an interrupted run with checkpoints keeps them for --resume."""
    try:
        yield
    except BaseException:
        if main_process and not _has_checkpoints(work):
            shutil.rmtree(work, ignore_errors=True)
        raise
    if main_process:
        shutil.rmtree(work, ignore_errors=True)
