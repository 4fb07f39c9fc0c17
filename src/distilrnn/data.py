"""Tasks: labelled texts in train / validation / test splits, from files, a hub name, Python
lists, a pandas DataFrame or a datasets `Dataset`, all validated and encoded by one code path.

A task is `train`, `validation` and `test` splits with a `text` column and an integer `label`
column, plus the label names in id order. Labels may be integers or strings; their names are the
training labels sorted (integers numerically, strings alphabetically). A split without labels
holds -1 in every row. Without a validation split, a seeded 20 % of the training rows is held
out as one; without a test split, the validation split is halved into validation (model
selection) and test (reporting). Errors name the file and line, or the split and row.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import numbers
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.config import DataConfig
from distilrnn.errors import ConfigError, DataError, MissingFileError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
UNLABELLED = -1  # the label id of every row of a split without labels
HELD_OUT = 0.2  # share of the training rows held out as validation when there is none
FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
_FEATURES = Features({"text": Value("string"), "label": Value("int64")})

__all__ = ["DataError", "Split", "Task", "data_files", "halve", "label_vocabulary", "load_task"]


@dataclass(frozen=True)
class Split:
    """One split as Python lists: the texts and their label ids (None when unlabelled)."""

    texts: list[str]
    labels: list[int] | None
    name: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Task:
    """Three splits (`text`, `label` columns) and the label names in id order.

    `label_names` is empty only for a task made from unlabelled training texts without names;
    give it later from the teacher: `task.with_label_names(teacher.label_names)`.
    """

    splits: DatasetDict  # train / validation / test; columns: text (str), label (int id or -1)
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def validation(self) -> Split:
        return self.split("validation")

    @property
    def test(self) -> Split:
        return self.split("test")

    def split(self, name: str) -> Split:
        dataset = self.splits[name]
        labels = list(dataset["label"])
        unlabelled = all(label == UNLABELLED for label in labels)
        return Split(list(dataset["text"]), None if unlabelled else labels, name)

    def with_label_names(self, names: Sequence[str]) -> Task:
        """This task with `names` as its label names (e.g. the teacher's, for a task made from
        unlabelled texts); every label id must have a name."""
        names = [str(name) for name in names]
        if self.label_names and len(names) != len(self.label_names):
            raise DataError(f"{len(names)} label names for a task with {self.num_labels} labels")
        top = max((max(self.splits[s]["label"], default=UNLABELLED) for s in SPLITS), default=-1)
        if top >= len(names):
            raise DataError(f"label id {top} has no name among {len(names)} label names")
        return Task(self.splits, names)

    def save(self, directory: Path) -> None:
        """Write `splits/` (Arrow) and `labels.json` into `directory`, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "splits.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.splits.save_to_disk(str(tmp))
        replace_directory(tmp, directory / "splits")
        write_json_atomic(directory / "labels.json", {"names": self.label_names})

    @classmethod
    def load(cls, directory: Path) -> Task:
        directory = Path(directory)
        names = json.loads((directory / "labels.json").read_text())["names"]
        return cls(DatasetDict.load_from_disk(str(directory / "splits")), names)

    @classmethod
    def from_lists(
        cls,
        train_texts: Sequence[str],
        train_labels: Sequence[Any] | None = None,
        *,
        validation: tuple[Sequence[str], Sequence[Any] | None] | None = None,
        test: tuple[Sequence[str], Sequence[Any] | None] | None = None,
        label_names: Sequence[str] | None = None,
        split_seed: int = 42,
    ) -> Task:
        """A task from Python lists; `validation` and `test` are `(texts, labels)` pairs.

        Labels are ints or strings, or None for unlabelled texts (then `label_names` names the
        classes, or the task takes them later with `with_label_names`).
        """
        given = {"train": (train_texts, train_labels), "validation": validation, "test": test}
        rows = {}
        for split, pair in given.items():
            if pair is None:
                continue
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise DataError(f"{split}: expected a (texts, labels) pair")
            rows[split] = _Rows(split, *pair)
        return _assemble(rows.values(), label_names=label_names, split_seed=split_seed)

    @classmethod
    def from_pandas(
        cls,
        train: Any,
        *,
        text_column: str = "sentence",
        label_column: str | None = "label",
        validation: Any = None,
        test: Any = None,
        label_names: Sequence[str] | None = None,
        split_seed: int = 42,
    ) -> Task:
        """A task from pandas DataFrames (`label_column=None`: unlabelled texts)."""
        frames = {"train": train, "validation": validation, "test": test}
        rows = {}
        for split, frame in frames.items():
            if frame is None:
                continue
            columns = [c for c in (text_column, label_column) if c is not None]
            _check_columns(f"{split} DataFrame", columns, list(frame.columns))
            labels = frame[label_column].tolist() if label_column is not None else None
            rows[split] = _Rows(
                split, frame[text_column].tolist(), labels, columns=(text_column, label_column)
            )
        return _assemble(rows.values(), label_names=label_names, split_seed=split_seed)

    @classmethod
    def from_dataset(
        cls,
        data: Dataset | DatasetDict,
        *,
        text_column: str = "sentence",
        label_column: str | None = "label",
        label_names: Sequence[str] | None = None,
        split_seed: int = 42,
    ) -> Task:
        """A task from a datasets `Dataset` (the training rows) or a `DatasetDict` with `train`
        and optionally `validation` / `test`. A `ClassLabel` column keeps its names and ids; a
        split whose labels are all -1 (GLUE's hidden test labels) is unlabelled."""
        rows, vocabulary = _dataset_rows(data, text_column, label_column)
        return _assemble(
            rows.values(), label_names=label_names, vocabulary=vocabulary, split_seed=split_seed
        )


# one split's rows before validation -----------------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    """One split's rows as given; `where(i)` names row i in error messages."""

    split: str
    texts: Sequence[Any]
    labels: Sequence[Any] | None
    path: Path | None = None  # the file the rows came from
    lines: Sequence[int] | None = None  # their line numbers in it
    columns: tuple[str, str | None] | None = None

    @property
    def origin(self) -> str:
        return str(self.path) if self.path is not None else f"{self.split} split"

    def where(self, index: int) -> str:
        if self.lines is not None:
            return f"{self.origin}:{self.lines[index]}"
        return f"{self.split} split, row {index}"

    def column(self, which: int) -> str:
        name = self.columns[which] if self.columns else None
        return f" in column {name!r}" if name else ""


def _check_columns(origin: str, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{origin}: missing column(s) {', '.join(missing)}; it has {', '.join(present)}"
        )


def _clean_texts(rows: _Rows) -> list[str]:
    if isinstance(rows.texts, str):
        raise DataError(f"{rows.origin}: expected a list of texts, got one string")
    if len(rows.texts) == 0:
        blank = " (only a header or blank lines)" if rows.path is not None else ""
        raise DataError(f"{rows.origin}: no examples{blank}")
    texts = []
    for index, text in enumerate(rows.texts):
        stripped = text.strip() if isinstance(text, str) else ""
        if stripped:
            texts.append(stripped)
        elif isinstance(text, str) or _label_string(text) is None:  # blank, None or NaN
            raise DataError(f"{rows.where(index)}: empty text{rows.column(0)}")
        else:
            kind = type(text).__name__
            raise DataError(f"{rows.where(index)}: text is a {kind}, not a string{rows.column(0)}")
    return texts


def _label_string(label: Any) -> str | None:
    """A raw label as the string it is known by; None when missing (None, NaN or blank)."""
    if isinstance(label, numbers.Real) and not isinstance(label, numbers.Integral):
        value = float(label)
        if math.isnan(value):
            return None
        if value.is_integer():  # pandas turns an int column with a gap into floats
            return str(int(value))
    text = str(label).strip() if label is not None else ""
    return text or None


def _raw_labels(rows: _Rows) -> list[str] | None:
    if rows.labels is None:
        return None
    if len(rows.labels) != len(rows.texts):
        raise DataError(f"{rows.origin}: {len(rows.texts)} texts but {len(rows.labels)} labels")
    raw = []
    for index, label in enumerate(rows.labels):
        text = _label_string(label)
        if text is None:
            raise DataError(f"{rows.where(index)}: empty label{rows.column(1)}")
        raw.append(text)
    return raw


def label_vocabulary(raw_labels: list[str]) -> list[str]:
    """Label names in id order: integers sorted numerically, other strings alphabetically."""
    unique = set(raw_labels)
    if all(label.lstrip("-").isdigit() for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _encode(rows: _Rows, raw: list[str], index: dict[str, int] | None, reason: str) -> list[int]:
    """Label ids of `raw` by `index`; without an index (unlabelled training texts and no
    names), labels must already be ids."""
    ids = []
    for row, label in enumerate(raw):
        if index is None:
            if not label.isdigit():
                raise DataError(
                    f"{rows.where(row)}: label {label!r} is not an integer id; with unlabelled "
                    "training texts, give label_names to use string labels"
                )
            ids.append(int(label))
        elif label in index:
            ids.append(index[label])
        else:
            known = ", ".join(index)
            raise DataError(f"{rows.where(row)}: label {label!r} {reason} (known: {known})")
    return ids


def _assemble(
    rows: Iterable[_Rows],
    *,
    label_names: Sequence[str] | None = None,
    vocabulary: list[str] | None = None,
    split_seed: int = 42,
    max_train_samples: int = 0,
) -> Task:
    """Validate and encode raw splits into a task: the one path every source takes.

    `rows` (train first) are checked as they come, so a file is checked before the next is
    read. `vocabulary`: the label strings in id order when the source fixes them (a
    `ClassLabel`); otherwise the sorted training labels. `label_names` then renames them (same
    count), or, for unlabelled training texts, is the vocabulary itself.
    """
    given: dict[str, _Rows] = {}
    texts: dict[str, list[str]] = {}
    raw: dict[str, list[str] | None] = {}
    for r in rows:
        given[r.split], texts[r.split], raw[r.split] = r, _clean_texts(r), _raw_labels(r)
    reason = "is not one of the task's labels"
    if vocabulary is None and raw["train"] is not None:
        vocabulary, reason = label_vocabulary(raw["train"]), "never occurs in the training split"
    index: dict[str, int] | None = None
    names: list[str] = []
    if vocabulary is not None:
        index = {label: i for i, label in enumerate(vocabulary)}
        names = list(vocabulary)
        if label_names:
            if len(label_names) != len(names):
                raise DataError(
                    f"label_names has {len(label_names)} names but the training data "
                    f"has {len(names)} labels ({', '.join(names)})"
                )
            names = [str(name) for name in label_names]
    elif label_names:  # unlabelled training texts: a label is a name or an id
        names = [str(name) for name in label_names]
        index = {str(i): i for i in range(len(names))} | {n: i for i, n in enumerate(names)}
    datasets = {}
    for split, r in given.items():
        ids = (
            [UNLABELLED] * len(texts[split])
            if raw[split] is None
            else _encode(r, raw[split], index, reason)
        )
        datasets[split] = Dataset.from_dict({"text": texts[split], "label": ids}, _FEATURES)
    return _split(datasets, names, split_seed, max_train_samples)


def _partition(dataset: Dataset, first: int, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded random partition: `first` rows, then the rest, each in its original order."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(sorted(order[:first])), dataset.select(sorted(order[first:]))


def halve(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Split a dataset 50/50 with a fixed seed: (validation half, test half)."""
    return _partition(dataset, len(dataset) - len(dataset) // 2, seed)


def _split(datasets: dict[str, Dataset], names: list[str], seed: int, max_train: int) -> Task:
    if "validation" not in datasets:
        if len(datasets["train"]) < 2:
            raise DataError("train: too few rows to hold out a validation split")
        held = max(1, round(HELD_OUT * len(datasets["train"])))
        datasets["validation"], datasets["train"] = _partition(datasets["train"], held, seed)
    if "test" not in datasets:
        datasets["validation"], datasets["test"] = halve(datasets["validation"], seed)
    if max_train and max_train < len(datasets["train"]):
        datasets["train"] = datasets["train"].shuffle(seed=seed).select(range(max_train))
    return Task(DatasetDict({s: datasets[s] for s in SPLITS}), names)


# files ----------------------------------------------------------------------------------------
def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: cannot tell the format from the extension; set data.format")
    return FORMATS[path.suffix.lower()]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) and turn decoding errors into a DataError naming the line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not valid UTF-8 ({error.reason})") from None


def _read_delimited(
    path: Path, delimiter: str, quoting: bool, columns: tuple[str, str]
) -> Iterator[tuple[int, str, str]]:
    csv.field_size_limit(sys.maxsize)
    lines = _lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise DataError(f"{path}: the file is empty (expected a header line)")
    mode = csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    header = next(csv.reader([header_line[1]], delimiter=delimiter, quoting=mode))
    _check_columns(f"{path}:1", list(columns), header)
    text_index, label_index = (header.index(c) for c in columns)
    for number, line in lines:
        if not line.strip():
            continue
        row = next(csv.reader([line], delimiter=delimiter, quoting=mode))
        if len(row) != len(header):
            raise DataError(
                f"{path}:{number}: ragged row: {len(row)} fields where the header has {len(header)}"
            )
        yield number, row[text_index], row[label_index]


def _read_jsonl(path: Path, columns: tuple[str, str]) -> Iterator[tuple[int, Any, Any]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
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


def _read_file(path: Path, split: str, config: DataConfig) -> _Rows:
    """One file's rows with their line numbers (format errors raised here, row checks later)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = _detect_format(path, config.format)
    columns = (config.text_column, config.label_column)
    if fmt == "jsonl":
        rows = _read_jsonl(path, columns)
    else:
        quoting = fmt == "csv" or config.quoting
        rows = _read_delimited(path, "\t" if fmt == "tsv" else ",", quoting, columns)
    numbers_, texts, labels = [], [], []
    for number, text, label in rows:
        numbers_.append(number)
        texts.append(text)
        labels.append(label)
    return _Rows(split, texts, labels, path=path, lines=numbers_, columns=columns)


def load_local_task(config: DataConfig) -> Task:
    """The task in the folder `data.path`: the train file, and the validation / test files
    when named (an empty `validation_file` holds a share of the training rows out instead)."""
    folder = config.resolved_path()
    assert folder is not None
    if not folder.is_dir():
        raise DataError(f"data.path: {folder} is not a directory")
    names = (config.train_file, config.validation_file, config.test_file)
    rows = (
        _read_file(folder / name, split, config)
        for split, name in zip(SPLITS, names, strict=True)
        if name
    )
    return _assemble(
        rows,
        label_names=config.label_names,
        split_seed=config.split_seed,
        max_train_samples=config.max_train_samples,
    )


# datasets and the hub ------------------------------------------------------------------------
def _dataset_rows(
    data: Dataset | DatasetDict, text_column: str, label_column: str | None
) -> tuple[dict[str, _Rows], list[str] | None]:
    """Rows of each split of a datasets object, and the label vocabulary a `ClassLabel` fixes."""
    splits = {"train": data} if isinstance(data, Dataset) else dict(data)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or "train" not in splits:
        raise DataError(
            f"dataset splits {', '.join(splits)}: expected train and optionally validation, test"
        )
    rows, vocabulary = {}, None
    for split, dataset in splits.items():
        columns = [c for c in (text_column, label_column) if c is not None]
        _check_columns(f"{split} split", columns, dataset.column_names)
        labels = None
        if label_column is not None:
            values = list(dataset[label_column])
            feature = dataset.features[label_column]
            if all(value is None or value == UNLABELLED for value in values):
                labels = None  # hidden labels, as in GLUE's test splits
            elif isinstance(feature, ClassLabel):
                vocabulary = vocabulary or list(feature.names)
                labels = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
            else:
                labels = values
        rows[split] = _Rows(
            split, list(dataset[text_column]), labels, columns=(text_column, label_column)
        )
    return rows, vocabulary


def load_hub_task(config: DataConfig) -> Task:
    """Load a datasets hub task such as `glue/sst2` (needs the network or the local cache).
    A test split with hidden labels is dropped, so the validation split is halved instead."""
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
    rows, vocabulary = _dataset_rows(DatasetDict(splits), config.text_column, config.label_column)
    return _assemble(
        rows.values(),
        label_names=config.label_names,
        vocabulary=vocabulary,
        split_seed=config.split_seed,
        max_train_samples=config.max_train_samples,
    )


# one entry point ------------------------------------------------------------------------------
def load_task(source: Any, **settings: Any) -> Task:
    """Load, validate and split a task.

    `source` is a `DataConfig`; a folder of files; a single CSV / TSV / JSONL file (its rows are
    the training rows: 20 % are held out as validation, then halved into validation and test);
    a datasets hub name such as `glue/sst2`; a datasets `Dataset` / `DatasetDict`; or a pandas
    DataFrame. `settings` are `DataConfig` fields (`text_column="review"`,
    `label_column="stars"`, `validation_file="dev.csv"`, ...) or, for a Dataset or DataFrame,
    the keywords of `Task.from_dataset` / `Task.from_pandas`.
    """
    if isinstance(source, Dataset | DatasetDict):
        return Task.from_dataset(source, **settings)
    if type(source).__module__.startswith("pandas"):
        return Task.from_pandas(source, **settings)
    if isinstance(source, DataConfig):
        config = dataclasses.replace(source, **_data_settings(settings)) if settings else source
    else:
        config = _config_for(source, settings)
    if config.path:
        return load_local_task(config)
    if config.hub_name:
        return load_hub_task(config)
    raise DataError("no data: set data.path (a folder of files) or data.hub_name")


def _data_settings(settings: dict[str, Any]) -> dict[str, Any]:
    known = [f.name for f in dataclasses.fields(DataConfig)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown data setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return settings


def _config_for(source: str | os.PathLike, settings: dict[str, Any]) -> DataConfig:
    """A `DataConfig` for a folder, a single file or a hub name, with `settings` on top."""
    name = str(source)
    path = Path(os.path.expandvars(os.path.expanduser(name)))
    if path.is_dir():
        values = {"path": str(path)}
    elif path.is_file():
        values = {"path": str(path.parent), "train_file": path.name, "validation_file": ""}
    elif isinstance(source, os.PathLike) or path.suffix.lower() in FORMATS or name[:1] in "./~$":
        raise MissingFileError(f"{name}: no such file or folder")
    else:
        values = {"hub_name": name}
    return DataConfig(**(values | _data_settings(settings)))


def data_files(config: DataConfig) -> list[Path]:
    """The local files a task is read from (for content hashing)."""
    folder = config.resolved_path()
    if folder is None:
        return []
    names = [config.train_file, config.validation_file, config.test_file]
    return [folder / name for name in names if name]
