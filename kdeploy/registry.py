"""Name → implementation tables behind every pluggable method (students, losses, layer
losses, augmentations): a new method is one decorated function, and an unknown name is
one clear error listing what is registered.

Built-in entries whose code needs torch are *declared* by name ("module:attribute" plus a
one-line doc) and imported on first lookup, so that validating a recipe or listing what is
registered never imports torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import KdeployError

F = TypeVar("F", bound=Callable)


def named(spec: str):
    """What "package.module:attribute" (or "module:Class.method") names, imported only now: how
    the tables of stages, formats and methods name code without importing it (torch stays out)."""
    module, _, attr = spec.partition(":")
    target = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class _Lazy:
    target: str  # "package.module:attribute"
    doc: str

    def load(self):
        return named(self.target)


class Registry(dict):
    def __init__(self, what: str):
        super().__init__()
        self.what = what
        self._docs: dict[str, str] = {}

    def register(self, name: str, value=None, doc: str | None = None):
        """`@REG.register("name")` on a function, or `REG.register("name", value)`."""
        def add(item):
            if name in self:
                raise ValueError(f"{self.what} {name!r} registered twice")
            self[name] = item if value is None else value
            self._docs[name] = doc or _first_line(getattr(self[name], "doc", None) or self[name].__doc__)
            return item

        return add if value is None else add(value)

    def declare(self, name: str, target: str, doc: str) -> None:
        """A built-in whose module is imported only when it is looked up."""
        if name in self:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self[name] = _Lazy(target, doc)
        self._docs[name] = doc

    def __getitem__(self, name: str):
        value = super().__getitem__(name)
        if isinstance(value, _Lazy):
            value = value.load()
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def values(self):
        return [self[name] for name in self]

    def items(self):
        return [(name, self[name]) for name in self]

    def lookup(self, name: str):
        if name not in self:
            raise KdeployError(f"unknown {self.what} {name!r}; registered: {', '.join(sorted(self))}")
        return self[name]

    def check(self, name: str) -> str:
        """Validate a name without importing anything; returns it."""
        if name not in self:
            raise KdeployError(f"unknown {self.what} {name!r}; registered: {', '.join(sorted(self))}")
        return name

    def doc(self, name: str) -> str:
        return self._docs.get(name, "")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
