"""Sizes on disk, in MiB, the way every report counts them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

MIB = 2 ** 20


def mib(paths: Path | Iterable[Path]) -> float:
    """Total size of files (a folder counts every file in it)."""
    if isinstance(paths, (str, Path)):
        paths = [Path(paths)]
    total = 0
    for p in paths:
        p = Path(p)
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return round(total / MIB, 3)


def onnx_mib(path: Path) -> float:
    """An ONNX file with its external data file, if it has one."""
    path = Path(path)
    return mib([path, path.with_name(path.name + "_data")])


def weights_mib(folder: Path) -> float:
    """A model folder's weights (safetensors)."""
    return mib(sorted(Path(folder).glob("*.safetensors")))
