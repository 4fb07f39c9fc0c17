"""Tasks: labelled texts in train / validation / test splits, from files, a hub name, Python
lists, a pandas DataFrame or a datasets `Dataset`, all validated and encoded by one code path.

A task is `train`, `validation` and `test` splits with a `text` column and an integer `label`
column, plus the label names in id order. Labels may be integers or strings; what counts as the
same label is decided in one place, `canonical_label`. Their names are the training labels
sorted (integers numerically, strings alphabetically). A split without labels holds -1 in every
row. Without a validation split, a seeded 20 % of the training rows (or
`data.validation_from_train`) is held out as one; without a test split, the validation split is
halved into validation (model selection) and test (reporting). Errors name the file and line,
or the split and row.

The file and hub readers are in `distilrnn.readers`; this module turns what they read into a
`Task`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value

from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.config import DataConfig
from distilrnn.errors import DataError, MissingFileError
from distilrnn.label_rules import (
    canonical_label,
    encode_labels,
    label_index,
    label_vocabulary,
    raw_labels,
)
from distilrnn.readers import (
    FORMATS,
    SPLITS,
    UNLABELLED,
    Rows,
    check_columns,
    data_files,
    dataset_rows,
    read_folder,
    read_hub,
)
from distilrnn.records import read_json
from distilrnn.validation import build_section, settings_with

logger = logging.getLogger(__name__)

HELD_OUT = 0.2  # share of the training rows held out as validation when there is none
_FEATURES = Features({"text": Value("string"), "label": Value("int64")})

__all__ = [
    "DataError",
    "Split",
    "Task",
    "canonical_label",
    "data_files",
    "halve",
    "label_vocabulary",
    "load_task",
]


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
        names = read_json(directory / "labels.json")["names"]
        try:
            splits = DatasetDict.load_from_disk(str(directory / "splits"))
        except FileNotFoundError as error:
            raise MissingFileError(f"{directory / 'splits'}: incomplete ({error})") from None
        return cls(splits, names)

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
            rows[split] = Rows(split, *pair)
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
            check_columns(f"{split} DataFrame", columns, list(frame.columns))
            labels = frame[label_column].tolist() if label_column is not None else None
            rows[split] = Rows(
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
        rows, vocabulary = dataset_rows(data, text_column, label_column)
        return _assemble(
            rows.values(), label_names=label_names, vocabulary=vocabulary, split_seed=split_seed
        )


# one path from raw rows to a task ------------------------------------------------------------
def _is_empty(text: Any) -> bool:
    """A text that is missing: blank, None or NaN."""
    return not text.strip() if isinstance(text, str) else canonical_label(text) is None


def _drop_empty(rows: Rows) -> Rows:
    """`rows` without those whose text is empty, keeping each row's line for error messages;
    the count dropped is logged (`data.drop_empty = true`)."""
    if isinstance(rows.texts, str):
        return rows  # refused by _clean_texts
    keep = [i for i, text in enumerate(rows.texts) if not _is_empty(text)]
    dropped = len(rows.texts) - len(keep)
    if dropped == 0:
        return rows
    logger.warning("%s: dropped %d row(s) with empty text (data.drop_empty)", rows.origin, dropped)
    if rows.labels is not None and len(rows.labels) != len(rows.texts):
        return rows  # refused by raw_labels
    return dataclasses.replace(
        rows,
        texts=[rows.texts[i] for i in keep],
        labels=None if rows.labels is None else [rows.labels[i] for i in keep],
        lines=None if rows.lines is None else [rows.lines[i] for i in keep],
        indices=[rows.row_index(i) for i in keep],
    )


def _clean_texts(rows: Rows) -> list[str]:
    if isinstance(rows.texts, str):
        raise DataError(f"{rows.origin}: expected a list of texts, got one string")
    if len(rows.texts) == 0:
        blank = " (only a header or blank lines)" if rows.path is not None else ""
        raise DataError(f"{rows.origin}: no examples{blank}")
    texts = []
    for index, text in enumerate(rows.texts):
        if _is_empty(text):
            raise DataError(
                f"{rows.where(index)}: empty text{rows.column(0)} "
                "(set data.drop_empty = true to drop such rows)"
            )
        if not isinstance(text, str):
            kind = type(text).__name__
            raise DataError(f"{rows.where(index)}: text is a {kind}, not a string{rows.column(0)}")
        texts.append(text.strip())
    return texts


def _assemble(
    rows: Iterable[Rows],
    *,
    label_names: Sequence[str] | None = None,
    vocabulary: list[str] | None = None,
    split_seed: int = 42,
    max_train_samples: int = 0,
    drop_empty: bool = False,
    held_out: float = HELD_OUT,
) -> Task:
    """Validate and encode raw splits into a task: the one path every source takes.

    `rows` (train first) are checked as they come, so a file is checked before the next is
    read. `vocabulary` (fixed by the source, e.g. a `ClassLabel`) and `label_names`: see
    `label_index`. `drop_empty` drops rows with an empty text instead of stopping; `held_out`
    is the share of the training rows held out as validation when no validation split is given.
    """
    given: dict[str, Rows] = {}
    texts: dict[str, list[str]] = {}
    raw: dict[str, list[str] | None] = {}
    for r in rows:
        if drop_empty and len(r.texts) > 0:
            r = _drop_empty(r)
        given[r.split], texts[r.split], raw[r.split] = r, _clean_texts(r), raw_labels(r)
    index, names, reason = label_index(raw["train"], vocabulary, label_names)
    datasets = {}
    for split, r in given.items():
        ids = (
            [UNLABELLED] * len(texts[split])
            if raw[split] is None
            else encode_labels(r, raw[split], index, reason)
        )
        datasets[split] = Dataset.from_dict({"text": texts[split], "label": ids}, _FEATURES)
    return _split(datasets, names, split_seed, max_train_samples, held_out)


def _partition(dataset: Dataset, first: int, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded random partition: `first` rows, then the rest, each in its original order."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(sorted(order[:first])), dataset.select(sorted(order[first:]))


def halve(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Split a dataset 50/50 with a fixed seed: (validation half, test half)."""
    return _partition(dataset, len(dataset) - len(dataset) // 2, seed)


def _split(
    datasets: dict[str, Dataset], names: list[str], seed: int, max_train: int, held_out: float
) -> Task:
    if "validation" not in datasets:
        if len(datasets["train"]) < 2:
            raise DataError("train: too few rows to hold out a validation split")
        held = min(max(1, round(held_out * len(datasets["train"]))), len(datasets["train"]) - 1)
        datasets["validation"], datasets["train"] = _partition(datasets["train"], held, seed)
    if "test" not in datasets:
        datasets["validation"], datasets["test"] = halve(datasets["validation"], seed)
    if max_train and max_train < len(datasets["train"]):
        datasets["train"] = datasets["train"].shuffle(seed=seed).select(range(max_train))
    return Task(DatasetDict({s: datasets[s] for s in SPLITS}), names)


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
        config = settings_with(source, "data", **settings) if settings else source
    else:
        config = _config_for(source, settings)
    if config.path:
        rows, vocabulary = read_folder(config), None
    elif config.hub_name:
        rows, vocabulary = read_hub(config)
    else:
        raise DataError("no data: set data.path (a folder of files) or data.hub_name")
    if config.validation_from_train:
        rows = _validation_file_as_test(rows)
    return _assemble(
        rows,
        label_names=config.label_names,
        vocabulary=vocabulary,
        split_seed=config.split_seed,
        max_train_samples=config.max_train_samples,
        drop_empty=config.drop_empty,
        held_out=config.validation_from_train or HELD_OUT,
    )


def _validation_file_as_test(rows: Iterable[Rows]) -> Iterator[Rows]:
    """With `data.validation_from_train`, the validation rows are the test split (validation is
    held out from train); a source that also has a test split is refused."""
    seen = set()
    for r in rows:
        seen.add(r.split)
        if r.split == "validation":
            if "test" in seen:
                raise DataError(
                    "data.validation_from_train: the source has both validation and test "
                    "splits; there is no role left for the validation split"
                )
            r = dataclasses.replace(r, split="test")
        elif r.split == "test" and "validation" in seen:
            raise DataError(
                "data.validation_from_train: the source has both validation and test "
                "splits; there is no role left for the validation split"
            )
        yield r


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
    return build_section(DataConfig, values | settings, "data")
