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


def looks_like_scores(labels: list) -> bool:
    """Numbers that are not all whole: a score column given to a task of labels."""
    try:
        values = [float(v) for v in labels]
    except (TypeError, ValueError):
        return False
    return bool(values) and any(v != int(v) for v in values if v == v and abs(v) != float("inf"))


def looks_like_labels_lists(labels: list, separator: str) -> str | None:
    """A few examples when labels read as several per row (lists, or names joined by the
    separator in a good share of the rows), else None: a multi-label file given to a one-class task."""
    lists = [v for v in labels if isinstance(v, (list, tuple))]
    if lists:
        return f"e.g. {list(lists[0])!r}"
    joined = [v for v in labels if isinstance(v, str) and separator in v.strip(separator + " ")]
    if joined and len(joined) >= max(2, len(labels) // 50):
        return f"{len(joined)} rows such as {joined[0]!r} hold several names joined by {separator!r}"
    return None


def label_sets(labels: list, separator: str, names: list[str] | None, where: str) -> list[list[str]]:
    """Each row's label names: a list (JSON), names joined by `separator`, or integer ids into
    `names`; an empty cell is a row with no label."""
    out = []
    for i, v in enumerate(labels):
        if isinstance(v, (list, tuple)):
            items = list(v)
        elif is_missing(v):
            items = []
        else:
            items = [part for part in str(v).split(separator)]
        row = []
        for item in items:
            key = label_key(item)
            if not key:
                continue
            if is_int(key) and names and not any(key == n for n in names):
                k = int(key)
                if not 0 <= k < len(names):
                    raise KdeployError(f"{where}: row {i + 1} has label id {k}, but there are {len(names)} label names")
                key = names[k]
            if key not in row:
                row.append(key)
        out.append(row)
    return out
