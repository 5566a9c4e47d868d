"""Rich progress bars for long work; silent when output is not a terminal or on non-main ranks."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator


def _quiet() -> bool:
    return os.environ.get("RANK", "0") != "0" or not sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    if _quiet():
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .console import errors

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=errors) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
