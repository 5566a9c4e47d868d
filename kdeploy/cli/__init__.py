"""kdeploy's command line: a thin layer that maps flags to each stage's config and calls the
stage's Python API. One module per command group; errors become one line (`error: ...`,
exit 2), the traceback only with --debug.
"""
from __future__ import annotations

import os
import sys

from ..errors import KdeployError
from . import stages  # noqa: F401, I001  (each module registers its commands, in this order, on the app)
from . import runtime  # noqa: F401
from . import pipeline  # noqa: F401
from .app import app

# What the slim install lacks; a command that needs it says how to get it.
_TRAIN_EXTRA = {"torch", "transformers", "datasets", "accelerate", "optimum", "onnx", "onnxscript", "optuna",
                "matplotlib", "pandas", "pyarrow", "safetensors"}


def main() -> None:
    from typer.exceptions import Abort, TyperException

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    debug = "--debug" in sys.argv[1:]
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    code = 0
    try:
        returned = app(standalone_mode=False)  # Typer would swallow KeyboardInterrupt into a silent exit 130
        if returned == 130:
            raise KeyboardInterrupt
        code = returned if isinstance(returned, int) else 0
    except KdeployError as exc:
        if debug:
            raise
        _error(str(exc))
        code = 2
    except ModuleNotFoundError as exc:
        if debug or (exc.name or "").split(".")[0] not in _TRAIN_EXTRA:
            raise
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "this command")
        _error(f"kdeploy {command} needs the training extra, which is not installed (no module {exc.name!r}): "
               "pip install 'kdeploy[train]'")
        code = 2
    except Abort as exc:  # Typer's name for an EOFError inside a command
        if debug:
            raise
        _error("input ended unexpectedly (a truncated file or stream?)"
               + (f": {exc.__cause__}" if exc.__cause__ and str(exc.__cause__) else ""))
        code = 2
    except KeyboardInterrupt:
        _error("interrupted; run the same command again (with --resume for training) to continue")
        code = 130
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        _usage_error(exc)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code)


def _usage_error(exc) -> None:
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
    except Exception:  # pragma: no cover - plain output when rich formatting is unavailable
        _error(exc.format_message())


def _error(message: str) -> None:
    from ..console import errors

    errors.print(f"error: {message}", markup=False, highlight=False)
