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
from . import serve  # noqa: F401
from .app import app

# What the slim install lacks; a command that needs it says how to get it.
_TRAIN_EXTRA = {"torch", "transformers", "datasets", "accelerate", "onnx", "onnxscript", "optuna",
                "matplotlib", "pandas", "pyarrow", "safetensors"}


def main() -> None:
    from typer.exceptions import Abort, TyperException

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    debug = "--debug" in sys.argv[1:]
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # transformers 5 draws a bar for every weights load and save (a fraction of a second each, a dozen
        # per run); kdeploy's own bars cover the long work
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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
        _error(_interrupted_hint(next((a for a in sys.argv[1:] if not a.startswith("-")), "")))
        code = 130
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        _usage_error(exc)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code)


def _interrupted_hint(command: str) -> str:
    """What the same command does when run again: only training takes --resume; a recipe or a
    search keeps its finished stages or trials and continues by itself."""
    if command in ("distill", "finetune"):
        return "interrupted; run the same command again with --resume to continue from the last checkpoint"
    if command in ("run", "search"):
        return ("interrupted; run the same command again to continue (finished " +
                ("stages are kept, training resumes from its checkpoint)" if command == "run" else "trials are kept)"))
    return "interrupted; nothing was finished or left half-written: run the same command again"


def _usage_error(exc) -> None:
    """One `error:` line (as every other refusal), and where to read the usage."""
    message = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    where = f"; see {ctx.command_path} --help" if ctx is not None else "; see kdeploy --help"
    _error(message.rstrip(".") + where)


def _error(message: str) -> None:
    from ..console import errors

    errors.print(f"error: {message}", markup=False, highlight=False)
