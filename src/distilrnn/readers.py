"""Readers of a task's raw rows: TSV / CSV / JSONL files in a folder, a datasets object and the
datasets hub. A reader returns each split's rows as given (`Rows`), with where they came from;
`distilrnn.data` validates and encodes them into a `Task`. Format errors (a missing column, a
ragged row, bad UTF-8 or JSON) are raised here and name the file and line. A UTF-8 byte-order
mark at the start of a file is dropped; TSV / CSV files without a header line
(`data.header = false`) name their columns by 0-based position.
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict

from distilrnn.config import DataConfig
from distilrnn.errors import DataError
from distilrnn.labelled import jsonl_records

SPLITS = ("train", "validation", "test")
UNLABELLED = -1  # the label id of every row of a split without labels
FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Rows:
    """One split's rows as given; `where(i)` names row i in error messages."""

    split: str
    texts: Sequence[Any]
    labels: Sequence[Any] | None
    path: Path | None = None  # the file the rows came from
    lines: Sequence[int] | None = None  # their line numbers in it
    columns: tuple[str, ...] | None = None  # text, label [, text_pair] column names
    indices: Sequence[int] | None = None  # their row indices in the source, once rows are dropped
    pairs: Sequence[Any] | None = None  # the second texts of sentence pairs

    @property
    def origin(self) -> str:
        return str(self.path) if self.path is not None else f"{self.split} split"

    def row_index(self, index: int) -> int:
        return self.indices[index] if self.indices is not None else index

    def where(self, index: int) -> str:
        if self.lines is not None:
            return f"{self.origin}:{self.lines[index]}"
        return f"{self.split} split, row {self.row_index(index)}"

    def column(self, which: int) -> str:
        """` in column NAME` for error messages: 0 the text, 1 the label, 2 the second text."""
        name = self.columns[which] if self.columns and which < len(self.columns) else None
        return f" in column {name!r}" if name else ""


def check_columns(origin: str, wanted: list[str], present: list[str]) -> None:
    """Raise `DataError` naming `origin` and the columns of `wanted` not in `present`."""
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{origin}: missing column(s) {', '.join(missing)}; it has {', '.join(present)}"
        )


# files ----------------------------------------------------------------------------------------
def read_folder(config: DataConfig) -> Iterator[Rows]:
    """The rows of the files in the folder `data.path`: the train file, and the validation /
    test files when named. Each file is read when the iterator reaches it, so a file is
    checked before the next is read."""
    folder = config.resolved_path()
    assert folder is not None
    if not folder.is_dir():
        raise DataError(f"data.path: {folder} is not a directory")
    names = (config.train_file, config.validation_file, config.test_file)
    return (
        _read_file(folder / name, split, config)
        for split, name in zip(SPLITS, names, strict=True)
        if name
    )


def data_files(config: DataConfig) -> list[Path]:
    """The local files a task is read from (for content hashing)."""
    folder = config.resolved_path()
    if folder is None:
        return []
    names = [config.train_file, config.validation_file, config.test_file]
    return [folder / name for name in names if name]


def _read_file(path: Path, split: str, config: DataConfig) -> Rows:
    """One file's rows with their line numbers (format errors raised here, row checks later)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = _detect_format(path, config.format)
    columns = (config.text_column, config.label_column)
    if config.text_pair_column:
        columns += (config.text_pair_column,)
    if fmt == "jsonl":
        if not config.header:
            raise DataError(f"{path}: data.header = false applies to TSV / CSV files, not JSONL")
        rows = read_jsonl(path, columns)
    else:
        quoting = fmt == "csv" or config.quoting
        delimiter = "\t" if fmt == "tsv" else ","
        rows = read_delimited(path, delimiter, quoting, columns, config.header)
    numbers, values = [], []
    for number, row in rows:
        numbers.append(number)
        values.append(row)
    texts = [v[0] for v in values]
    labels = [v[1] for v in values]
    pairs = [v[2] for v in values] if config.text_pair_column else None
    return Rows(split, texts, labels, path=path, lines=numbers, columns=columns, pairs=pairs)


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: cannot tell the format from the extension; set data.format")
    return FORMATS[path.suffix.lower()]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) and turn decoding errors into a DataError naming the line. A
    byte-order mark opening the file (GLUE's MRPC ships one) is not part of the first line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not valid UTF-8 ({error.reason})") from None


def read_delimited(
    path: Path, delimiter: str, quoting: bool, columns: tuple[str, ...], header: bool = True
) -> Iterator[tuple[int, list[str]]]:
    """Rows of a TSV / CSV file. With `header`, the first line names the columns; without,
    `columns` are 0-based positions and the first row fixes how many fields a row has."""
    csv.field_size_limit(sys.maxsize)
    mode = csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    rows = (
        (number, next(csv.reader([line], delimiter=delimiter, quoting=mode)))
        for number, line in _lines(path)
        if line.strip() or (header and number == 1)
    )
    first = next(rows, None)
    if first is None:
        expected = "a header line" if header else "rows"
        raise DataError(f"{path}: the file is empty (expected {expected})")
    if header:
        names, width = first[1], len(first[1])
        check_columns(f"{path}:1", list(columns), names)
        indices = [names.index(c) for c in columns]
        shape = "the header has"
    else:
        width, shape = len(first[1]), f"line {first[0]} has"
        indices = [int(c) for c in columns]
        names = ("text_column", "label_column", "text_pair_column")
        for name, position in zip(names, columns, strict=False):
            if int(position) >= width:
                raise DataError(
                    f"{path}:{first[0]}: data.{name} is position {position} but the row has "
                    f"{width} field(s) (positions count from 0)"
                )
        rows = itertools.chain([first], rows)
    for number, row in rows:
        if len(row) != width:
            raise DataError(f"{path}:{number}: ragged row: {len(row)} fields where {shape} {width}")
        yield number, [row[i] for i in indices]


def read_jsonl(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[Any]]]:
    """`(line number, values of columns)` of a JSON-lines file, each line an object with
    every column (`distilrnn.labelled.jsonl_records` checks them)."""
    lines = ((number, line) for number, line in _lines(path) if line.strip())
    for number, values in jsonl_records(path, lines, columns):
        yield number, list(values)


# datasets and the hub ------------------------------------------------------------------------
def dataset_rows(
    data: Dataset | DatasetDict,
    text_column: str,
    label_column: str | None,
    text_pair_column: str = "",
) -> tuple[dict[str, Rows], list[str] | None]:
    """Rows of each split of a datasets object, and the label vocabulary a `ClassLabel` fixes."""
    splits = {"train": data} if isinstance(data, Dataset) else dict(data)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or "train" not in splits:
        raise DataError(
            f"dataset splits {', '.join(splits)}: expected train and optionally validation, test"
        )
    rows, vocabulary = {}, None
    for split, dataset in splits.items():
        columns = [c for c in (text_column, label_column, text_pair_column) if c]
        check_columns(f"{split} split", columns, dataset.column_names)
        labels = None
        if label_column is not None:
            values = list(dataset[label_column])
            feature = dataset.features[label_column]
            if all(value is None or value == UNLABELLED for value in values):
                labels = None  # hidden labels, as in GLUE's test splits (STS-B: -1 too)
            elif isinstance(feature, ClassLabel):
                vocabulary = vocabulary or list(feature.names)
                labels = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
            else:
                labels = values
        rows[split] = Rows(
            split,
            list(dataset[text_column]),
            labels,
            columns=(text_column, label_column or "", text_pair_column),
            pairs=list(dataset[text_pair_column]) if text_pair_column else None,
        )
    return rows, vocabulary


def read_hub(config: DataConfig) -> tuple[list[Rows], list[str] | None]:
    """The rows of a datasets hub task such as `glue/sst2` (needs the network or the local
    cache), and its label vocabulary. A test split with hidden labels is dropped, so the
    validation split is halved instead."""
    from datasets import load_dataset

    name, _, subset = config.hub_name.partition("/")
    try:
        loaded = load_dataset(name, subset or None)
    except (OSError, ValueError) as error:
        raise DataError(f"data.hub_name: cannot load {config.hub_name!r}: {error}") from None
    splits = {s: loaded[s] for s in SPLITS if s in loaded}
    test = splits.get("test")
    if (
        test is not None
        and config.label_column in test.column_names
        and min(test[config.label_column], default=UNLABELLED) < 0
    ):
        del splits["test"]
    rows, vocabulary = dataset_rows(
        DatasetDict(splits), config.text_column, config.label_column, config.text_pair_column
    )
    return list(rows.values()), vocabulary
