"""Tasks: reading and validating labelled text files, label mappings, and the three splits.

A task is `train`, `validation` and `test` splits with a `text` column and an integer `label`
column, plus the label names in id order. Errors name the file and line so a user can fix the row.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict

from distilrnn.config import DataConfig

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """Bad task data; the message names the file and, where there is one, the line."""


@dataclass
class Task:
    splits: DatasetDict  # columns: text (str), label (int id)
    label_names: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def save(self, directory: Path) -> None:
        self.splits.save_to_disk(str(directory / "splits"))
        (directory / "labels.json").write_text(json.dumps({"names": self.label_names}, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Task:
        names = json.loads((directory / "labels.json").read_text())["names"]
        return cls(DatasetDict.load_from_disk(str(directory / "splits")), names)


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    formats = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
    if suffix not in formats:
        raise DataError(f"{path}: cannot tell the format from the extension; set data.format")
    return formats[suffix]


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
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
        )
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


def _read_jsonl(path: Path, columns: tuple[str, str]) -> Iterator[tuple[int, str, object]]:
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


def read_examples(path: Path, config: DataConfig) -> tuple[list[str], list[str], list[int]]:
    """Read one file into (texts, raw labels as strings, line numbers), validating every row."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = _detect_format(path, config.format)
    columns = (config.text_column, config.label_column)
    if fmt == "jsonl":
        rows = _read_jsonl(path, columns)
    else:
        rows = _read_delimited(
            path, "\t" if fmt == "tsv" else ",", fmt == "csv" or config.quoting, columns
        )
    texts, labels, numbers = [], [], []
    for number, text, label in rows:
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{number}: empty text in column {config.text_column!r}")
        if label is None or (isinstance(label, str) and not label.strip()):
            raise DataError(f"{path}:{number}: empty label in column {config.label_column!r}")
        texts.append(text.strip())
        labels.append(str(label).strip())
        numbers.append(number)
    if not texts:
        raise DataError(f"{path}: no examples (only a header or blank lines)")
    return texts, labels, numbers


def label_vocabulary(raw_labels: list[str]) -> list[str]:
    """Label names in id order: integers sorted numerically, other strings alphabetically."""
    unique = set(raw_labels)
    if all(label.lstrip("-").isdigit() for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _encode(path: Path, raw: list[str], numbers: list[int], vocab: dict[str, int]) -> list[int]:
    ids = []
    for label, number in zip(raw, numbers, strict=True):
        if label not in vocab:
            raise DataError(
                f"{path}:{number}: label {label!r} never occurs in the training split "
                f"(known: {', '.join(vocab)})"
            )
        ids.append(vocab[label])
    return ids


def halve(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Split a dataset 50/50 with a fixed seed: (validation half, test half)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    middle = len(dataset) - len(dataset) // 2
    return dataset.select(sorted(order[:middle])), dataset.select(sorted(order[middle:]))


def load_local_task(config: DataConfig) -> Task:
    folder = config.resolved_path()
    assert folder is not None
    if not folder.is_dir():
        raise DataError(f"data.path: {folder} is not a directory")
    train_path = folder / config.train_file
    texts, raw, numbers = read_examples(train_path, config)
    names = label_vocabulary(raw)
    vocab = {name: i for i, name in enumerate(names)}
    splits = {
        "train": Dataset.from_dict(
            {"text": texts, "label": _encode(train_path, raw, numbers, vocab)}
        )
    }
    for split, file_name in (("validation", config.validation_file), ("test", config.test_file)):
        if not file_name:
            continue
        path = folder / file_name
        texts, raw, numbers = read_examples(path, config)
        splits[split] = Dataset.from_dict(
            {"text": texts, "label": _encode(path, raw, numbers, vocab)}
        )
    return _finish(splits, names, config)


def load_hub_task(config: DataConfig) -> Task:
    """Load a datasets hub task such as `glue/sst2` (needs the network or the local cache)."""
    from datasets import load_dataset

    name, _, subset = config.hub_name.partition("/")
    loaded = load_dataset(name, subset or None)
    splits, names = {}, None
    for split in SPLITS:
        if split not in loaded:
            continue
        dataset = loaded[split]
        if split == "test" and min(dataset[config.label_column]) < 0:  # GLUE hides test labels
            continue
        feature = dataset.features[config.label_column]
        names = names or getattr(feature, "names", None)
        splits[split] = Dataset.from_dict(
            {"text": dataset[config.text_column], "label": dataset[config.label_column]}
        )
    if "train" not in splits or "validation" not in splits:
        raise DataError(f"data.hub_name: {config.hub_name} has no train or validation split")
    names = names or [str(i) for i in range(max(splits["train"]["label"]) + 1)]
    return _finish(splits, list(names), config)


def _finish(splits: dict[str, Dataset], names: list[str], config: DataConfig) -> Task:
    if config.label_names:
        if len(config.label_names) != len(names):
            raise DataError(
                f"data.label_names has {len(config.label_names)} names but the training data "
                f"has {len(names)} labels ({', '.join(names)})"
            )
        names = list(config.label_names)
    if "test" not in splits:
        splits["validation"], splits["test"] = halve(splits["validation"], config.split_seed)
    if config.max_train_samples and config.max_train_samples < len(splits["train"]):
        splits["train"] = (
            splits["train"].shuffle(seed=config.split_seed).select(range(config.max_train_samples))
        )
    return Task(DatasetDict({s: splits[s] for s in SPLITS}), names)


def load_task(config: DataConfig) -> Task:
    """Load, validate and split the task that `config` describes."""
    if config.path:
        return load_local_task(config)
    if config.hub_name:
        return load_hub_task(config)
    raise DataError("no data: set data.path (a folder of files) or data.hub_name")


def data_files(config: DataConfig) -> list[Path]:
    """The local files a task is read from (for content hashing)."""
    folder = config.resolved_path()
    if folder is None:
        return []
    names = [config.train_file, config.validation_file, config.test_file]
    return [folder / name for name in names if name]
