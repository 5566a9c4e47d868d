"""What `kdeploy predict` classifies: its text arguments, the lines of a text file or of standard
input, or the text column(s) of a table (.tsv, .csv, .jsonl, .parquet).

Why a table is read as a table: read as lines, a labelled file is classified header and all,
with its CSV quotes kept and its gold label inside each text (`text<TAB>label`), which moves
answers and flatters accuracy without a word (SST-2 test, demo bundle: 56 of 1,821 labels moved,
89.0% → 92.0%). A table goes through the data layer, so its text column is the one every other
stage reads, and what else it holds (the label) is ignored, said in one note. For the same
reason a line with a tab, sent to a one-text bundle, is refused rather than classified whole.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import KdeployError

TABLES = (".tsv", ".csv", ".jsonl", ".json", ".parquet")


@dataclass
class Source:
    """The input as read, before the bundle is loaded (a bad file is refused before any model
    work); `examples` makes it what the bundle reads once that is known."""

    where: str
    lines: list[str] | None = None  # text arguments, or the lines of a text file / standard input
    columns: dict | None = None  # a table: {column: values}
    arguments: bool = False


def read_source(texts: list[str] | None, file: Path | None, encoding: str, errors: str) -> Source:
    from ..data.files import decode, file_kind, read_table, read_text_lines

    if texts:
        return Source("arguments", lines=_argument_texts(list(texts), encoding, errors), arguments=True)
    if file is None or str(file) == "-":
        text = decode(sys.stdin.buffer.read(), "standard input", encoding, errors)
        return Source("standard input", lines=read_text_lines("-", text=text))
    kind = file_kind(Path(file))
    if kind not in TABLES:
        return Source(str(file), lines=read_text_lines(file, encoding, errors))
    try:
        columns, where = read_table(Path(file), encoding, errors)
    except ModuleNotFoundError as exc:  # the slim install (a device) has no pandas
        raise KdeployError(f"{file}: reading a {kind[1:]} table needs {exc.name} (pip install 'kdeploy[train]'); or "
                           "give a .txt file with one text per line") from None
    return Source(where, columns=columns)


def _argument_texts(args: list[str], encoding: str, errors: str) -> list[str]:
    """Arguments are bytes on POSIX; Python decoded them as UTF-8 with surrogate escapes."""
    from ..data.files import decode

    out = []
    for i, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
            out.append(arg)
        except UnicodeEncodeError:
            out.append(decode(os.fsencode(arg), f"text argument {i}", encoding, errors))
    return out


def examples(source: Source, pairs: bool, text_column: str | None = None,
             text_pair_column: str | None = None) -> list:
    """Texts for a one-text bundle, (first, second) tuples for a pair bundle."""
    if source.columns is not None:
        return _table_examples(source, pairs, text_column, text_pair_column)
    if text_column or text_pair_column:
        raise KdeployError(f"--text-column and --text-pair-column name a table's columns; {source.where} is read one "
                           "text per line (give a .tsv/.csv/.jsonl/.parquet file with a header)")
    if pairs:
        return _pairs(source.lines, source.arguments, source.where)
    if not source.arguments:
        for i, line in enumerate(source.lines, 1):
            if "\t" in line:
                raise KdeployError(
                    f"{source.where}: line {i} holds a tab; this bundle reads one text per line, and a tab means more "
                    "columns (a label?) that would be classified as part of the text: give the file as .tsv with a "
                    "header (sentence<TAB>label) to read its text column, or cut it to the texts (cut -f1)")
    return source.lines


def _table_examples(source: Source, pairs: bool, text_column: str | None, text_pair_column: str | None) -> list:
    """The text column(s) found as every stage finds them (kdeploy.data.task.text_columns); the
    other columns (the label) ignored, in one note."""
    from ..console import note
    from ..data import DataConfig
    from ..data.task import text_columns

    where, columns = source.where, source.columns
    cfg = DataConfig(test=where, text_column=text_column, text_pair_column=text_pair_column)
    first, second = text_columns(columns, cfg, where)
    if pairs and second is None:
        raise KdeployError(f"{where}: this bundle reads sentence pairs, and the table has one text column ({first!r}); "
                           "name the second with --text-pair-column (found by itself: sentence1/sentence2, "
                           "premise/hypothesis, ...)")
    if not pairs and second is not None:
        raise KdeployError(f"{where}: the table holds sentence pairs ({first!r}, {second!r}) but this bundle reads one "
                           "text; name the text with --text-column")
    used = [first] + ([second] if second else [])
    firsts = _column_texts(columns[first], first, where, second=False)
    ignored = [str(c) for c in columns if c not in used]
    note(f"{where}: classifying column {' and '.join(map(repr, used))}"
         + (f"; ignoring {', '.join(map(repr, ignored))}" if ignored else ""))
    if second is None:
        return firsts
    return list(zip(firsts, _column_texts(columns[second], second, where, second=True)))


def _column_texts(values: list, column: str, where: str, second: bool) -> list[str]:
    for i, value in enumerate(values, 1):
        if not isinstance(value, str):
            raise KdeployError(f"{where}: row {i} has no text in column {column!r} (got {value!r:.40})")
        if second and not value.strip():
            raise KdeployError(f"{where}: row {i} has an empty second text in column {column!r}; a pair model "
                               "needs both texts")
    return list(values)


def _pairs(items: list[str], from_arguments: bool, where: str) -> list[tuple[str, str]]:
    """Arguments two by two; lines as FIRST<TAB>SECOND."""
    if from_arguments:
        if len(items) % 2:
            raise KdeployError(f"a pair model takes texts two by two (first, second); got {len(items)} texts")
        return list(zip(items[0::2], items[1::2]))
    out = []
    for i, line in enumerate(items, 1):
        fields = line.split("\t")
        if len(fields) > 2:  # a third column (a label?) must not join the second text
            raise KdeployError(f"{where}: line {i}: a pair model reads FIRST<TAB>SECOND per line; this line has "
                               f"{len(fields)} tab-separated fields (give the file as .tsv with a header to read its "
                               "two text columns, or cut it to them: cut -f1,2)")
        if len(fields) < 2 or not fields[1].strip():
            raise KdeployError(f"{where}: line {i}: a pair model reads FIRST<TAB>SECOND per line; this line has no "
                               "second text")
        out.append((fields[0], fields[1]))
    return out
