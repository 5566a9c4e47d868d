"""All of kdeploy's human-readable output goes through here: one rich console for results
(stdout) and one for notes and warnings (stderr). Messages never hard-wrap, tables fit a log
line, and only the main process of a data-parallel launch speaks.

Machine-readable output (`kdeploy predict`'s JSON Lines) is written to stdout directly.
"""
from __future__ import annotations

import os
import sys

from rich.console import Console

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, highlight=False)
errors = Console(soft_wrap=True, stderr=True, width=None if sys.stderr.isatty() else 160, highlight=False)


def main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def say(message: str, **kwargs) -> None:
    """A line of progress or result on stdout (main process only); no rich markup is read."""
    if main_process():
        console.print(message, markup=False, **kwargs)


def note(message: str) -> None:
    """Something the user should know but need not act on, on stderr."""
    if main_process():
        errors.print(f"note: {message}", markup=False)
