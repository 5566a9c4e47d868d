"""Reading the user's files: tables (CSV, TSV, JSON Lines, Parquet) and text lines, in any
encoding, with errors that give the line and column of a bad byte.

The whole file is decoded here, before pandas sees it, so a decoding error names its real
position (pandas' own offset is relative to a read chunk) and `--encoding-errors replace`
can count what it replaced.
"""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
from pathlib import Path

from ..console import note
from ..errors import KdeployError

READERS = {".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"}
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def file_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSED and s.lower() != ".zip"]
    return suffixes[-1] if suffixes else ""


TABLE_HINT = "give a CSV/TSV/JSONL/Parquet file (or --dataset for a save_to_disk folder)"
LINES_HINT = "give a text file with one text per line (or - for standard input)"


def regular_file(path: Path, hint: str = TABLE_HINT) -> None:
    """Refuse what is not a plain file before opening it: a FIFO would block (and a second read
    would see other bytes), a device never ends; kdeploy reads a data file more than once."""
    if not path.exists():
        raise KdeployError(f"{path}: file not found")
    if path.is_dir():
        raise KdeployError(f"{path}: is a folder; {hint}")
    if not path.is_file():
        raise KdeployError(f"{path}: is not a regular file (a pipe, socket or device); save it to a file first"
                           + (" or pipe it in (--file -)" if hint is LINES_HINT else ""))


def _raw_bytes(path: Path, hint: str = TABLE_HINT) -> bytes:
    regular_file(path, hint)
    opener = _COMPRESSED.get(path.suffix.lower(), open)
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise KdeployError(f"{path}: cannot read the file ({exc})") from None


def decode(raw: bytes, path: Path | str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode a whole file; a bad byte is reported by line and column, and replacements counted."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise KdeployError(f"unknown text encoding {encoding!r}; give a Python codec name such as utf-8, latin-1 "
                           "or cp1252") from None
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8") and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if errors == "replace":
        _REPLACED["bytes"] = 0
        text = raw.decode(encoding, errors="kdeploy-count")
        count = _REPLACED["bytes"]
        if count:
            note(f"{path}: {count} undecodable byte(s) ({encoding}) replaced by U+FFFD")
        return text
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
        raise KdeployError(
            f"{path}: line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not valid {name}; re-save the "
            f"file as {name}, give its encoding (--encoding latin-1, cp1252, ...), or pass "
            "--encoding-errors replace to replace such bytes") from None


_REPLACED = {"bytes": 0}


def _count_and_replace(exc: UnicodeDecodeError):
    _REPLACED["bytes"] += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error("kdeploy-count", _count_and_replace)


def read_text(path: Path, encoding: str = "utf-8", errors: str = "strict", hint: str = TABLE_HINT) -> str:
    return decode(_raw_bytes(path, hint), path, encoding, errors)


def read_text_lines(path: Path | str, encoding: str = "utf-8", errors: str = "strict", text: str | None = None) -> list[str]:
    """One item per line, split on "\\n" only (a form feed or U+2028 inside a text is part of
    it); a trailing "\\r" is dropped, and so is the empty string after a final newline."""
    if text is None:
        text = read_text(Path(path), encoding, errors, LINES_HINT)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def csv_quoted(text: str) -> bool:
    """Whether a TSV uses standard CSV quoting (a field holding a quote is wrapped in quotes, its
    quotes doubled: what Python's csv module and pandas write) rather than GLUE's none, where a
    quote is just a character. Quoted only if every field that starts with a quote is wrapped
    and holds a doubled quote, and at least one does: a GLUE sentence that merely starts with a
    quote (`"hi" she said`) or is one quoted word keeps its quotes."""
    wrapped = False
    for line in text.split("\n"):
        for field in line.rstrip("\r").split("\t"):
            if not field.startswith('"'):
                continue
            inner = field[1:-1] if len(field) >= 2 and field.endswith('"') else None
            if inner is None or '""' not in inner or '"' in inner.replace('""', ""):
                return False
            wrapped = True
    return wrapped


def _bad_json_line(text: str) -> str | None:
    """The first line of a JSON Lines text that is not one JSON object, as a reader would say it
    (pandas names only a character offset)."""
    import json

    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            return f"line {number} is not valid JSON ({exc.msg} at column {exc.colno}): {line.strip()[:60]!r}"
        if not isinstance(value, dict):
            return f"line {number} is a JSON {type(value).__name__}, not an object with fields: {line.strip()[:60]!r}"
    return None


def read_table(path: Path, encoding: str = "utf-8", errors: str = "strict") -> tuple[dict[str, list], str]:
    """({column: values}, where) for a table file."""
    import pandas as pd

    path = Path(path)
    kind = file_kind(path)
    if path.exists() and not path.is_dir() and kind not in READERS:
        raise KdeployError(f"{path}: unknown file type {kind or '(none)'!r}; use .csv, .tsv, .jsonl or .parquet")
    if kind == ".parquet":
        regular_file(path)
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own error types
            raise KdeployError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from None
        return {c: df[c].tolist() for c in df.columns}, str(path)
    text = read_text(path, encoding, errors)
    if not text.strip():
        raise KdeployError(f"{path}: the file is empty")
    buffer = io.StringIO(text)
    try:
        if kind in (".tsv", ".txt"):
            # GLUE-style TSV: no quoting, so a stray quote inside a sentence is just a character;
            # unless the file is written with CSV quoting (as Python's csv module writes a TSV).
            quoting = csv.QUOTE_MINIMAL if csv_quoted(text) else csv.QUOTE_NONE
            df = pd.read_csv(buffer, sep="\t", quoting=quoting, dtype=str, keep_default_na=False)
        elif kind == ".csv":
            df = pd.read_csv(buffer, dtype=str, keep_default_na=False)
        else:
            lines = kind == ".jsonl" or not text.lstrip().startswith("[")
            df = pd.read_json(buffer, lines=lines, dtype=False)
    except pd.errors.EmptyDataError:
        raise KdeployError(f"{path}: the file is empty") from None
    except ValueError as exc:  # includes pandas' ParserError
        where = _bad_json_line(text) if kind in (".jsonl", ".json") and not text.lstrip().startswith("[") else None
        raise KdeployError(where and f"{path}: {where}" or
                           f"{path}: cannot parse as {kind[1:]}: {str(exc).strip().splitlines()[0]}") from None
    return {str(c): df[c].tolist() for c in df.columns}, str(path)
