"""Name → implementation tables behind every pluggable method (students, losses, layer
losses, augmentations): a new method is one decorated function, and an unknown name is
one clear error listing what is registered."""
from __future__ import annotations

from typing import Callable, TypeVar

from .errors import KdeployError

F = TypeVar("F", bound=Callable)


class Registry(dict):
    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str, value=None):
        """`@REG.register("name")` on a function, or `REG.register("name", value)`."""
        def add(item):
            if name in self:
                raise ValueError(f"{self.what} {name!r} registered twice")
            self[name] = item if value is None else value
            return item

        return add if value is None else add(value)

    def lookup(self, name: str):
        if name not in self:
            raise KdeployError(f"unknown {self.what} {name!r}; registered: {', '.join(sorted(self))}")
        return self[name]
