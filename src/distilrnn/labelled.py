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
    pair_column: str | None = None,
) -> tuple[list[Any], list[Any], list[int]]:
    """Texts, raw labels and their line numbers of a TSV / CSV file or of a JSON-lines file,
    with the column settings of `data`: with `header` the first line names the columns; without,
    `text_column` / `label_column` are 0-based positions (SentEval's `label<TAB>sentence`: "1",
    "0"). With `pair_column` (a pair's second text) each text is a `(text, text_pair)` tuple.
    Format errors raise `DataError` naming the file and line; blank lines are skipped."""
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
    columns = (text_column, label_column) + ((pair_column,) if pair_column is not None else ())
    if fmt == "jsonl":
        if not header:
            raise DataError(f"{path}: --no-header applies to TSV / CSV files, not JSON lines")
        rows = jsonl_records(path, lines, columns)
    else:
        rows = _delimited_rows(path, lines, "\t" if fmt == "tsv" else ",", columns, header)
    texts: list[Any] = []
    labels, numbers = [], []
    for number, values in rows:
        text, label, *pair = values
        for column, value in zip((text_column, *columns[2:]), (text, *pair), strict=True):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{path}:{number}: empty or non-string text in column {column!r}")
        texts.append((text, pair[0]) if pair else text)
        labels.append(label)
        numbers.append(number)
    if not texts:
        raise DataError(f"{path}: the file holds a header but no rows")
    return texts, labels, numbers


def _delimited_rows(
    path: Path,
    lines: list[tuple[int, str]],
    delimiter: str,
    columns: tuple[str, ...],
    header: bool,
) -> Iterator[tuple[int, tuple[str, ...]]]:
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
        indices = [first.index(c) for c in columns]
        rows = rows[1:]
    else:
        if not all(c.isdigit() for c in columns):
            raise DataError(
                f"{path}: without a header, --text-column / --label-column are 0-based "
                f"positions, got {columns[0]!r} / {columns[1]!r}"
            )
        indices = [int(c) for c in columns]
        if max(indices) >= len(first):
            raise DataError(
                f"{path}:{first_number}: column position {max(indices)} but the "
                f"row has {len(first)} field(s) (positions count from 0)"
            )
    for number, row in rows:
        if len(row) != len(first):
            raise DataError(
                f"{path}:{number}: ragged row: {len(row)} fields where line {first_number} has "
                f"{len(first)}"
            )
        yield number, tuple(row[i] for i in indices)


def jsonl_rows(
    path: Path, lines: Iterable[tuple[int, str]], columns: tuple[str, str]
) -> Iterator[tuple[int, Any, Any]]:
    """`(line number, text, label)` of JSON-lines records, each checked to be an object with
    both `columns`; the data readers use it too."""
    for number, (text, label) in jsonl_records(path, lines, columns):
        yield number, text, label


def jsonl_records(
    path: Path, lines: Iterable[tuple[int, str]], columns: tuple[str, ...]
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """`(line number, values of columns)` of JSON-lines records, each checked to be an object
    with every one of `columns`."""
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
        yield number, tuple(record[column] for column in columns)


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


def label_scores(labels: Sequence[Any], where: Sequence[str]) -> list[float]:
    """Gold scores of a regression file's raw labels (numbers, or strings of numbers); anything
    else (or NaN) raises `DataError` naming `where[i]`."""
    values = []
    for label, place in zip(labels, where, strict=True):
        try:
            value = float(label) if not isinstance(label, bool) and label is not None else None
        except (TypeError, ValueError):
            value = None
        if value is None or value != value:  # NaN
            raise DataError(
                f"{place}: label {label!r} is not a number (the bundle predicts a score)"
            )
        values.append(value)
    return values


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """`(text, text_pair)` of a file of two tab-separated columns a line, no header; blank
    lines are skipped, a line without exactly two non-empty columns raises `DataError` naming
    the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pair file not found: {path}")
    pairs = []
    with path.open("rb") as handle:
        for number, line in decoded_lines(handle, str(path)):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not all(field.strip() for field in fields):
                raise DataError(
                    f"{path}:{number}: expected two tab-separated texts (text, text_pair), got "
                    f"{len(fields)} column(s)" + ("" if len(fields) != 2 else " with an empty one")
                )
            pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataError(f"no pairs to predict: {path} holds no non-blank line")
    return pairs
