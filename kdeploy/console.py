"""One rich console: messages never hard-wrap (logs and pipes stay greppable)."""
from rich.console import Console

console = Console(soft_wrap=True)
