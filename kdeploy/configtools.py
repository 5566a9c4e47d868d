"""Build typed, self-validating dataclass configs from plain dicts (recipes, CLI).

Unknown keys are errors that name the key and the closest valid ones: a typo in a
recipe must never be silently ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from .errors import KdeployError

T = TypeVar("T")


def check_keys(data: dict, allowed: list[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"valid keys: {', '.join(allowed)}"
            raise KdeployError(f"{where}: unknown key {key!r}; {hint}")


def from_dict(cls: type[T], data: dict | None, where: str) -> T:
    """Instantiate dataclass `cls` from `data`, recursing into nested dataclass fields."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise KdeployError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(data, list(fields), where)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _dataclass_in(hints.get(name))
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value, f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except KdeployError as exc:
        raise KdeployError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise KdeployError(f"{where}: {exc}") from None


def _dataclass_in(hint: Any) -> type | None:
    if hint is None:
        return None
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def to_dict(obj: Any) -> Any:
    """JSON-ready view of a (nested) config."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj
