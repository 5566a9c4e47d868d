"""Stage results as typed objects that render themselves.

A result is a dataclass: `to_dict()` is what its JSON file holds, `load()` reads that file
back into the same type (so report writers and later stages use attributes, not string
keys), `to_markdown()` and `render()` present it. Mappings keyed by batch size keep int keys
in Python and become strings only in JSON.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .configtools import to_dict
from .errors import KdeployError

R = TypeVar("R", bound="Result")


class Result:
    def to_dict(self) -> dict:
        return _drop_none(to_dict(self))

    @classmethod
    def from_dict(cls: type[R], data: dict) -> R:
        return build(cls, data)

    def save(self, path: str | Path) -> None:
        from .fsutil import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KdeployError(f"{path}: not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KdeployError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise KdeployError(f"{path}: not a kdeploy {cls.__name__} record")
        return cls.from_dict(data)

    title = "result"

    def table(self) -> tuple[list[str], list[list[str]]]:  # pragma: no cover - each result says itself
        """(column names, rows of cells): what to_markdown and render show."""
        raise NotImplementedError

    def to_markdown(self) -> str:
        headers, rows = self.table()
        return markdown_table(headers, rows)

    def render(self, title: str | None = None) -> None:
        """Print to the terminal as a rich table."""
        headers, rows = self.table()
        print_table(title or self.title, headers, rows)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def build(hint: Any, data: Any) -> Any:
    """`data` (from JSON) as type `hint`; unknown keys of a dataclass are ignored (newer files)."""
    if data is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        for option in options:
            if dataclasses.is_dataclass(option) and isinstance(data, dict):
                return build(option, data)
        return data
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            return data
        hints = typing.get_type_hints(hint)
        if hasattr(hint, "upgrade"):  # a record written in an older shape
            data = hint.upgrade(data)
        kwargs = {f.name: build(hints.get(f.name, Any), data[f.name])
                  for f in dataclasses.fields(hint) if f.init and f.name in data}
        return hint(**kwargs)
    if origin in (list, tuple) and isinstance(data, list):
        return [build(args[0] if args else Any, v) for v in data]
    if origin is dict and isinstance(data, dict):
        key_t, value_t = args if args else (Any, Any)
        return {(int(k) if key_t is int else k): build(value_t, v) for k, v in data.items()}
    return data


def pct(x: float | None) -> str:
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "-"


def metric_cells(scores, n: int = 2) -> list[str]:
    """A Scores' first figures as a table shows them: percentages for shares, three decimals
    for correlations, "-" when absent."""
    return scores.cells(n) if scores is not None else ["-"] * n


def metric_names(task: str | None, n: int = 2) -> list[str]:
    """The column titles of a task's first metrics."""
    from .metrics import SHORT
    from .tasks import task_kind

    return [SHORT[m] for m in task_kind(task).metrics[:n]]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    from .console import console, main_process

    if not main_process():
        return
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)
