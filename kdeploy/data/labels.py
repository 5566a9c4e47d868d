"""Label spaces: which names the classes have, in which id order.

Labels compare as text so that 1, "1" and 1.0 from different file types agree. Integers
0..n-1 are ids (the Hugging Face convention): they take names from `--label-names`, the
dataset's ClassLabel, or later the teacher's config.
"""
from __future__ import annotations

from ..errors import KdeployError


def is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    if isinstance(value, str) and value.strip() == "":
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value < 0  # GLUE marks unlabelled test rows -1


def label_key(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def is_int(key: str) -> bool:
    try:
        int(key)
        return True
    except ValueError:
        return False


def label_space(labels: list, class_names: list[str] | None, given: list[str] | None,
                where: str) -> tuple[list[str], dict[str, int], bool]:
    """(names in id order, label key -> id, whether the names are bare ids)."""
    keys = sorted({label_key(v) for v in labels}, key=lambda k: (not is_int(k), int(k) if is_int(k) else 0, k))
    if not keys:
        raise KdeployError(f"{where}: no labels")
    if all(is_int(k) for k in keys):
        ints = [int(k) for k in keys]
        names = given or class_names
        if ints == list(range(len(ints))) or (names and max(ints) < len(names)):
            n = max(len(names), max(ints) + 1) if names else max(ints) + 1
            if names and len(names) < n:
                raise KdeployError(f"{where}: {n} label ids but only {len(names)} label names given")
            label_names = list(names) if names else [str(i) for i in range(n)]
            if given and len(given) > max(ints) + 1:
                from ..console import note

                note(f"{where}: --label-names gives {len(given)} names but the labels are ids 0..{max(ints)}; "
                     f"{', '.join(map(repr, given[max(ints) + 1:]))} will have no examples")
            return label_names, {str(i): i for i in range(n)}, not names
        return [str(i) for i in ints], {k: i for i, k in enumerate(keys)}, False
    if given:
        missing = [k for k in keys if k not in given]
        if missing:
            raise KdeployError(f"{where}: labels {missing} are not among --label-names {given}")
        return list(given), {k: i for i, k in enumerate(given)}, False
    return keys, {k: i for i, k in enumerate(keys)}, False


def alignment(data_names: list[str], model_names: list[str], ids_only: bool, what: str) -> tuple[list[int] | None, str | None]:
    """How to renumber the data's labels to the model's: (old id -> new id, or None when they
    already agree; a note for the user, or None). Raises when the classes differ."""
    if data_names == model_names:
        return None, None
    if ids_only and len(data_names) == len(model_names):
        return None, (f"the data's labels are ids 0..{len(data_names) - 1}; using the {what}'s names for them: "
                      f"{', '.join(model_names)}")
    folded = {n.casefold(): i for i, n in enumerate(model_names)}
    if len(folded) == len(model_names) and sorted(n.casefold() for n in data_names) == sorted(folded):
        mapping = [folded[n.casefold()] for n in data_names]
        return mapping, (None if [n.casefold() for n in data_names] == [n.casefold() for n in model_names]
                         and mapping == list(range(len(mapping))) else
                         f"matched the data's labels to the {what}'s order: {', '.join(model_names)}")
    hint = (f"; if they are the same classes in this order, pass --label-names {','.join(model_names)}"
            if len(data_names) == len(model_names) else "")
    raise KdeployError(f"the {what} predicts {model_names} but the data has labels {data_names}{hint}")
