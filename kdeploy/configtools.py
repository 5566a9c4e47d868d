"""Build typed, self-validating dataclass configs from plain dicts (recipes, CLI, searches).

Every value is checked against its field's type before the config's own `__post_init__`
runs, so `batch_size: 2.5`, `alpha: high` or `distill: 5` is one error naming the key and
the type it wants; unknown keys name the closest valid ones; floats must be finite. A
typo or a NaN in a recipe is never silently accepted.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import KdeployError

T = TypeVar("T")

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of settings, not a data file
MAX_YAML_NODES = 100_000  # after alias expansion: refuses "billion laughs" recipes before building anything


def check_keys(data: dict, allowed: list[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"valid keys: {', '.join(allowed)}"
            raise KdeployError(f"{where + ': ' if where else ''}unknown key {key!r}; {hint}")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Instantiate dataclass `cls` from `data`, checking each value's type, recursing into
    nested dataclass fields."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KdeployError(f"{where or cls.__name__}: expected a mapping of settings, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(data, list(fields), where)
    if hasattr(cls, "fill_defaults"):  # defaults that depend on another given value (distill: the student kind)
        data = cls.fill_defaults(data)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = coerce(_onto_default(fields[name], value), hints.get(name, Any),
                              f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except KdeployError as exc:
        message = str(exc)
        raise KdeployError(message if not where or message.startswith(where) else f"{where}: {message}") from None
    except (TypeError, ValueError) as exc:
        raise KdeployError(f"{where}: {exc}" if where else str(exc)) from None


def _onto_default(f: dataclasses.Field, value: Any) -> Any:
    """A partial mapping for a nested config fills in from that field's own default: a recipe's
    `distill: {train: {epochs: 5}}` keeps the distill stage's learning rate, not TrainConfig's."""
    if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
        if dataclasses.is_dataclass(default):
            base = to_dict(default)
            return {**base, **{k: _merge(base.get(k), v) for k, v in value.items()}}
    return value


def _merge(base: Any, value: Any) -> Any:
    if isinstance(base, dict) and isinstance(value, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in value.items()}}
    return value


def settings_from(cls: type[T], given: dict, where: str = "") -> T:
    """A config from the values a user gave (None = not given: the config's default holds)."""
    def prune(d: dict) -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                v = prune(v)
                if not v:
                    continue
            if v is not None:
                out[k] = v
        return out

    return from_dict(cls, prune(given), where)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint`, or a KdeployError saying what was expected."""
    if hint is Any or hint is object:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _to_union(value, hint, args, where)
    if origin is typing.Literal:
        if value not in args:
            raise KdeployError(f"{where}: expected one of {', '.join(map(repr, args))}, got {_show(value)}")
        return value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    if origin in (list, tuple):
        return _to_list(value, args[0] if args else Any, where)
    if origin is dict:
        key_t, value_t = args if args else (Any, Any)
        if not isinstance(value, dict):
            raise KdeployError(f"{where}: expected a mapping, got {_show(value)}")
        return {coerce(k, key_t, where): coerce(v, value_t, f"{where}.{k}") for k, v in value.items()}
    scalar = _SCALARS.get(hint)
    return scalar(value, where) if scalar else value


def _to_union(value: Any, hint: Any, args: tuple, where: str) -> Any:
    """The first option `value` fits, options of its own type first (1 stays an int in int | str)."""
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    exact = [a for a in options if _is_exactly(value, a)]
    for option in exact + [a for a in options if a not in exact]:
        try:
            return coerce(value, option, where)
        except KdeployError:
            continue
    raise KdeployError(f"{where}: expected {_name(hint)}, got {_show(value)}")


def _to_list(value: Any, item: Any, where: str) -> list:
    if isinstance(value, str) and item in (int, float):  # "1,3": numbers hold no commas
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, str):  # a text may hold commas: splitting one would make two
        raise KdeployError(f"{where}: expected a list of {_name(item)}, got the single text {_show(value)}; "
                           f"write a list (- item per line, or [\"...\"]), even for one item")
    if not isinstance(value, (list, tuple)):
        raise KdeployError(f"{where}: expected a list of {_name(item)}, got {_show(value)}")
    return [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise KdeployError(f"{where}: expected true or false, got {_show(value)}")


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise KdeployError(f"{where}: expected a whole number, got {_show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise KdeployError(f"{where}: expected a whole number, got {_show(value)}")


def _to_float(value: Any, where: str) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise KdeployError(f"{where}: expected a number, got {_show(value)}")
    if not math.isfinite(number):
        raise KdeployError(f"{where} must be a finite number, got {value!r}")
    return number


def _to_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise KdeployError(f"{where}: expected text, got {_show(value)}")


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _is_exactly(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict) or (dataclasses.is_dataclass(hint) and isinstance(value, hint))
    return isinstance(hint, type) and type(value) is hint


def _name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in args if a is not type(None))
    if origin in (list, tuple):
        return f"a list of {_name(args[0]) if args else 'values'}"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        hint, "a mapping" if dataclasses.is_dataclass(hint) else getattr(hint, "__name__", str(hint)))


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def to_dict(obj: Any) -> Any:
    """JSON-ready view of a (nested) config or result."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {(str(k) if not isinstance(k, str) else k): to_dict(v) for k, v in obj.items()}
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def default_of(cls: type, dotted: str) -> Any:
    """The default a config class gives a (nested) field: what the CLI shows in --help. Read from
    the field's declaration, so a config that refuses to be built empty (DataConfig wants data)
    still shows its defaults."""
    first, _, rest = dotted.partition(".")
    field = next((f for f in dataclasses.fields(cls) if f.name == first), None)
    if field is None:
        raise AttributeError(f"{cls.__name__} has no field {first!r}")
    obj: Any = field.default_factory() if field.default is dataclasses.MISSING else field.default
    for part in rest.split(".") if rest else []:
        obj = getattr(obj, part)
    return obj


def load_yaml(path: str | Path, what: str = "recipe") -> Any:
    """Safe YAML with a size cap and a cap on the document's size after alias expansion."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KdeployError(f"{path}: {what} not found")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise KdeployError(f"{path}: {path.stat().st_size:,} bytes is too large for a {what} "
                           f"(limit {MAX_RECIPE_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KdeployError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expanded_size(node, path)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise KdeployError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()


def _check_expanded_size(root, path: Path) -> None:
    """Count nodes as if every alias were copied out; memoised, so a bomb is measured cheaply."""
    import yaml

    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            size = 1 + sum(sizes.get(id(c), 0) for c in children)
            if size > MAX_YAML_NODES:
                raise KdeployError(f"{path}: the document expands to more than {MAX_YAML_NODES:,} values "
                                   "(nested YAML aliases?); refusing it")
            sizes[id(node)] = size
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)


def check_finite(obj: Any) -> None:
    """Every float field of a config is a finite number (NaN or inf would train to NaN)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        values = value if isinstance(value, (list, tuple)) else value.values() if isinstance(value, dict) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise KdeployError(f"{f.name} must be a finite number, got {v}")
