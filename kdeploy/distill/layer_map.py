"""Which student layer learns from which teacher layer.

Layers are numbered from 0, as in `--student-layers 0,5`. The default is TinyBERT's
uniform map: student layer i learns teacher layer (i+1)·N/M − 1, so the last student
layer always learns the teacher's last.
"""
from __future__ import annotations

from ..errors import KdeployError


def uniform_map(student_depth: int, teacher_depth: int) -> list[tuple[int, int]]:
    if student_depth > teacher_depth:
        raise KdeployError(f"the student has {student_depth} layers and the teacher {teacher_depth}: "
                           "a uniform layer map needs a student no deeper than its teacher; give --layer-map")
    return [(i, round((i + 1) * teacher_depth / student_depth) - 1) for i in range(student_depth)]


def parse_layer_map(spec: str | None, student_depth: int, teacher_depth: int) -> list[tuple[int, int]]:
    """`None`/"uniform" -> uniform map; "0:2,1:5" -> exactly those pairs, checked against both depths."""
    if spec is None or str(spec).strip() in ("", "uniform"):
        return uniform_map(student_depth, teacher_depth)
    pairs = []
    for item in str(spec).split(","):
        parts = item.strip().split(":")
        try:
            s, t = (int(p) for p in parts)
        except ValueError:
            raise KdeployError(f"layer map {spec!r}: write student:teacher pairs, e.g. 0:2,1:5 "
                               "(layers numbered from 0)") from None
        if not 0 <= s < student_depth:
            raise KdeployError(f"layer map {spec!r}: the student has layers 0..{student_depth - 1}, not {s}")
        if not 0 <= t < teacher_depth:
            raise KdeployError(f"layer map {spec!r}: the teacher has layers 0..{teacher_depth - 1}, not {t}")
        pairs.append((s, t))
    students = [s for s, _ in pairs]
    if len(set(students)) != len(students):
        raise KdeployError(f"layer map {spec!r}: each student layer may appear once")
    return sorted(pairs)


def model_depth(model) -> int | None:
    config = model.config
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
