"""Labelled files for `predict --labelled`: a TSV / CSV or JSON-lines file read into texts, raw
labels and line numbers, and raw labels matched against a bundle's label names.

Standard library only (no torch, datasets or transformers), so the runtime-only install reads
them.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from distilrnn.errors import DataError, MissingFileError


def decoded_lines(raw_lines: Iterable[bytes], source: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of UTF-8 bytes; a byte-order mark at the start is
    dropped, and bytes that are not UTF-8 raise `DataError` naming `source` and the line."""
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{source}:{number}: not valid UTF-8 ({error.reason})") from None
        yield number, line.rstrip("\r\n")


LABELLED_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def read_labelled(
    path: str | Path,
    text_column: str = "sentence",
    label_column: str = "label",
    *,
    header: bool = True,
) -> tuple[list[str], list[Any], list[int]]:
    """Texts, raw labels and their line numbers of a TSV / CSV file or of a JSON-lines file,
    with the column settings of `data`: with `header` the first line names the columns; without,
    `text_column` / `label_column` are 0-based positions (SentEval's `label<TAB>sentence`: "1",
    "0"). Format errors raise `DataError` naming the file and line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"labelled file not found: {path}")
    fmt = LABELLED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format; name it .tsv, .csv or .jsonl")
    with path.open("rb") as handle:
        lines = [(n, line) for n, line in decoded_lines(handle, str(path)) if line.strip()]
    if not lines:
        raise DataError(f"{path}: the file holds no rows")
    columns = (text_column, label_column)
    if fmt == "jsonl":
        if not header:
            raise DataError(f"{path}: --no-header applies to TSV / CSV files, not JSON lines")
        rows = jsonl_rows(path, lines, columns)
    else:
        rows = _delimited_rows(path, lines, "\t" if fmt == "tsv" else ",", columns, header)
    texts, labels, numbers = [], [], []
    for number, text, label in rows:
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{number}: empty or non-string text in column {text_column!r}")
        texts.append(text)
        labels.append(label)
        numbers.append(number)
    if not texts:
        raise DataError(f"{path}: the file holds a header but no rows")
    return texts, labels, numbers


def _delimited_rows(
    path: Path,
    lines: list[tuple[int, str]],
    delimiter: str,
    columns: tuple[str, str],
    header: bool,
) -> Iterator[tuple[int, str, str]]:
    csv.field_size_limit(sys.maxsize)
    mode = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    rows = [(n, next(csv.reader([line], delimiter=delimiter, quoting=mode))) for n, line in lines]
    first_number, first = rows[0]
    if header:
        missing = [c for c in columns if c not in first]
        if missing:
            raise DataError(
                f"{path}:{first_number}: missing column(s) {', '.join(missing)}; it has "
                f"{', '.join(first)} (set --text-column / --label-column)"
            )
        text_index, label_index = (first.index(c) for c in columns)
        rows = rows[1:]
    else:
        if not all(c.isdigit() for c in columns):
            raise DataError(
                f"{path}: without a header, --text-column / --label-column are 0-based "
                f"positions, got {columns[0]!r} / {columns[1]!r}"
            )
        text_index, label_index = (int(c) for c in columns)
        if max(text_index, label_index) >= len(first):
            raise DataError(
                f"{path}:{first_number}: column position {max(text_index, label_index)} but the "
                f"row has {len(first)} field(s) (positions count from 0)"
            )
    for number, row in rows:
        if len(row) != len(first):
            raise DataError(
                f"{path}:{number}: ragged row: {len(row)} fields where line {first_number} has "
                f"{len(first)}"
            )
        yield number, row[text_index], row[label_index]


def jsonl_rows(
    path: Path, lines: Iterable[tuple[int, str]], columns: tuple[str, str]
) -> Iterator[tuple[int, Any, Any]]:
    """`(line number, text, label)` of JSON-lines records, each checked to be an object with
    both `columns`; the data readers use it too."""
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object")
        for column in columns:
            if column not in record:
                raise DataError(f"{path}:{number}: missing column {column!r}")
        yield number, record[columns[0]], record[columns[1]]


def label_ids(labels: Sequence[Any], names: Sequence[str], where: Sequence[str]) -> list[int]:
    """Label ids of raw labels against a bundle's label names. A label is the same label as a
    name when, stripped of surrounding blanks, it equals the name; otherwise an integer (an int,
    a whole float, or a string of digits) in range is the id itself. Anything else raises
    `DataError` naming `where[i]` and the bundle's names."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for label, place in zip(labels, where, strict=True):
        text = _label_text(label)
        if text in index:
            ids.append(index[text])
        elif text.isdigit() and int(text) < len(names):
            ids.append(int(text))
        else:
            known = ", ".join(f"{i}={name}" for i, name in enumerate(names))
            raise DataError(f"{place}: label {label!r} is not one of the bundle's ({known})")
    return ids


def _label_text(label: Any) -> str:
    if isinstance(label, bool) or label is None:
        return repr(label)
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label).strip()
