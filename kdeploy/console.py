"""One rich console: messages never hard-wrap, tables fit a log line (pipes stay greppable)."""
import sys

from rich.console import Console

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
