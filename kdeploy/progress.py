"""Progress on long work: a rich bar on a terminal; to a file or a pipe (CI, nohup, a log) a line
every `HEARTBEAT_S` seconds, so a 20-minute step is never silent; nothing on non-main ranks."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterator

HEARTBEAT_S = float(os.environ.get("KDEPLOY_PROGRESS_S", "30"))


def _quiet() -> bool:
    return os.environ.get("RANK", "0") != "0"


class Heartbeat:
    """`description: done/total (p%), about T left`, at most every `every` seconds, on stderr."""

    def __init__(self, description: str, total: int, every: float | None = None):
        self.description, self.total = description, max(int(total), 1)
        self.every = HEARTBEAT_S if every is None else every
        self.done, self.started = 0, time.monotonic()
        self.last = self.started

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        share = min(self.done / self.total, 1.0)
        elapsed = now - self.started
        left = f", about {_duration(elapsed / share - elapsed)} left" if 0 < share < 1 else ""
        return f"{self.description}: {self.done:,}/{self.total:,} ({100 * share:.0f}%), {_duration(elapsed)}{left}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    if _quiet():
        yield lambda n=1: None
        return
    if not sys.stderr.isatty():
        yield Heartbeat(description, total)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .console import errors

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=errors) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
