"""The Typer application every command module registers on."""
from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="kdeploy",
    help="Distil a large text classifier into a small student, export it to ONNX and run it on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    """(--debug is read by main() before Typer runs.)"""
