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
from datasets import Dataset, DatasetDict

from distilrnn.assembly import HELD_OUT, assemble_splits, halve, infer_task_type
from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.config import DataConfig
from distilrnn.errors import ConfigError, DataError, MissingFileError
from distilrnn.inputs import PAIR_COLUMN, Input, split_inputs
from distilrnn.label_rules import canonical_label, label_vocabulary
from distilrnn.metrics import CLASSIFICATION, REGRESSION, check_metrics, labelled_mask, scores
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

__all__ = [
    "DataError",
    "Split",
    "Task",
    "canonical_label",
    "data_files",
    "halve",
    "infer_task_type",
    "label_vocabulary",
    "load_task",
]


@dataclass(frozen=True)
class Split:
    """One split as Python lists: the texts, their label ids or scores (None when unlabelled)
    and, for sentence pairs, the second texts."""

    texts: list[str]
    labels: list[int] | list[float] | None
    name: str
    text_pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[Input]:
        """The texts, or `(text, text_pair)` tuples for pairs."""
        if self.text_pairs is None:
            return list(self.texts)
        return list(zip(self.texts, self.text_pairs, strict=True))


@dataclass
class Task:
    """Three splits (`text` [, `text_pair`], `label` columns), the label names in id order, the
    task type and the metrics it is scored by (the first chooses models).

    `label_names` is empty only for a task made from unlabelled training texts without names;
    give it later from the teacher: `task.with_label_names(teacher.label_names)`. A regression
    task's label names are `["score"]`: its models output one number.
    """

    # train / validation / test; columns: text (str) [, text_pair (str)], label (int id, -1
    # when unlabelled; or a float score, NaN when unlabelled)
    splits: DatasetDict
    label_names: list[str]
    task_type: str = CLASSIFICATION
    metrics: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = check_metrics(self.metrics, self.task_type, max(2, self.num_labels))

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_pair(self) -> bool:
        """Whether the task's examples are sentence pairs."""
        return PAIR_COLUMN in self.splits["train"].column_names

    @property
    def is_regression(self) -> bool:
        return self.task_type == REGRESSION

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def validation(self) -> Split:
        return self.split("validation")

    @property
    def test(self) -> Split:
        return self.split("test")

    def score(self, split: str, logits: np.ndarray) -> dict[str, float]:
        """The task's metrics of a model's `logits` `(n, num_labels)` on a labelled split."""
        labels = self.splits[split]["label"]
        if not labelled_mask(labels, self.task_type).all():
            raise DataError(f"the {split} split has rows without labels: it cannot be scored")
        return scores(self.metrics, logits, labels, self.task_type)

    def split_metrics(self, logits: dict[str, np.ndarray]) -> dict[str, Any]:
        """`{split}_{metric}` for each split's logits, with the task's `metrics` and
        `task_type`: what a model's metrics.json records."""
        out: dict[str, Any] = {"task_type": self.task_type, "metrics": list(self.metrics)}
        for split, values in logits.items():
            for name, value in self.score(split, values).items():
                out[f"{split}_{name}"] = value
        return out

    def split(self, name: str) -> Split:
        dataset = self.splits[name]
        labels = list(dataset["label"])
        unlabelled = not labelled_mask(labels, self.task_type).any() if labels else True
        pairs = list(dataset[PAIR_COLUMN]) if PAIR_COLUMN in dataset.column_names else None
        return Split(list(dataset["text"]), None if unlabelled else labels, name, pairs)

    def with_label_names(self, names: Sequence[str]) -> Task:
        """This task with `names` as its label names (e.g. the teacher's, for a task made from
        unlabelled texts); every label id must have a name."""
        names = [str(name) for name in names]
        if self.label_names and len(names) != len(self.label_names):
            raise DataError(f"{len(names)} label names for a task with {self.num_labels} labels")
        if self.is_regression:
            return dataclasses.replace(self, label_names=names)
        top = max((max(self.splits[s]["label"], default=UNLABELLED) for s in SPLITS), default=-1)
        if top >= len(names):
            raise DataError(f"label id {top} has no name among {len(names)} label names")
        return dataclasses.replace(self, label_names=names)

    def save(self, directory: Path) -> None:
        """Write `splits/` (Arrow) and `labels.json` into `directory`, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "splits.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.splits.save_to_disk(str(tmp))
        replace_directory(tmp, directory / "splits")
        write_json_atomic(
            directory / "labels.json",
            {"names": self.label_names, "task_type": self.task_type, "metrics": self.metrics},
        )

    @classmethod
    def load(cls, directory: Path) -> Task:
        """A task saved by `save` (a run's data folder; older ones hold only the names)."""
        directory = Path(directory)
        saved = read_json(directory / "labels.json")
        try:
            splits = DatasetDict.load_from_disk(str(directory / "splits"))
        except FileNotFoundError as error:
            raise MissingFileError(f"{directory / 'splits'}: incomplete ({error})") from None
        try:
            return cls(
                splits,
                saved["names"],
                saved.get("task_type", CLASSIFICATION),
                saved.get("metrics", []),
            )
        except ConfigError as error:
            raise DataError(f"{directory / 'labels.json'}: {error}") from None

    @classmethod
    def from_lists(
        cls,
        train_texts: Sequence[Input],
        train_labels: Sequence[Any] | None = None,
        *,
        validation: tuple[Sequence[Input], Sequence[Any] | None] | None = None,
        test: tuple[Sequence[Input], Sequence[Any] | None] | None = None,
        label_names: Sequence[str] | None = None,
        task_type: str = "auto",
        metrics: Sequence[str] = (),
        split_seed: int = 42,
    ) -> Task:
        """A task from Python lists; `validation` and `test` are `(texts, labels)` pairs.

        Texts are strings, or `(text, text_pair)` tuples for sentence pairs. Labels are ints or
        strings (classification), floats (regression; `task_type="auto"` tells them apart), or
        None for unlabelled texts (then `label_names` names the classes, or the task takes them
        later with `with_label_names`).
        """
        given = {"train": (train_texts, train_labels), "validation": validation, "test": test}
        rows = {}
        for split, pair in given.items():
            if pair is None:
                continue
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise DataError(f"{split}: expected a (texts, labels) pair")
            inputs, labels = pair
            if isinstance(inputs, str):
                texts, pairs = inputs, None  # refused by _clean_texts
            else:
                try:
                    texts, pairs = split_inputs(inputs)
                except ValueError as error:
                    raise DataError(f"{split}: {error}") from None
            rows[split] = Rows(split, texts, labels, pairs=pairs)
        return _assemble(
            rows.values(),
            label_names=label_names,
            split_seed=split_seed,
            task_type=task_type,
            metrics=metrics,
        )

    @classmethod
    def from_pandas(
        cls,
        train: Any,
        *,
        text_column: str = "sentence",
        label_column: str | None = "label",
        text_pair_column: str = "",
        validation: Any = None,
        test: Any = None,
        label_names: Sequence[str] | None = None,
        task_type: str = "auto",
        metrics: Sequence[str] = (),
        split_seed: int = 42,
    ) -> Task:
        """A task from pandas DataFrames (`label_column=None`: unlabelled texts;
        `text_pair_column`: the second text of sentence pairs)."""
        frames = {"train": train, "validation": validation, "test": test}
        rows = {}
        for split, frame in frames.items():
            if frame is None:
                continue
            columns = [c for c in (text_column, label_column, text_pair_column) if c]
            check_columns(f"{split} DataFrame", columns, list(frame.columns))
            labels = frame[label_column].tolist() if label_column is not None else None
            pairs = frame[text_pair_column].tolist() if text_pair_column else None
            rows[split] = Rows(
                split,
                frame[text_column].tolist(),
                labels,
                columns=(text_column, label_column or "", text_pair_column),
                pairs=pairs,
            )
        return _assemble(
            rows.values(),
            label_names=label_names,
            split_seed=split_seed,
            task_type=task_type,
            metrics=metrics,
        )

    @classmethod
    def from_dataset(
        cls,
        data: Dataset | DatasetDict,
        *,
        text_column: str = "sentence",
        label_column: str | None = "label",
        text_pair_column: str = "",
        label_names: Sequence[str] | None = None,
        task_type: str = "auto",
        metrics: Sequence[str] = (),
        split_seed: int = 42,
    ) -> Task:
        """A task from a datasets `Dataset` (the training rows) or a `DatasetDict` with `train`
        and optionally `validation` / `test`. A `ClassLabel` column keeps its names and ids; a
        split whose labels are all -1 (GLUE's hidden test labels) is unlabelled."""
        rows, vocabulary = dataset_rows(data, text_column, label_column, text_pair_column)
        return _assemble(
            rows.values(),
            label_names=label_names,
            vocabulary=vocabulary,
            split_seed=split_seed,
            task_type=task_type,
            metrics=metrics,
        )


def _assemble(rows: Iterable[Rows], *, metrics: Sequence[str] = (), **settings: Any) -> Task:
    """A task from raw rows (`distilrnn.assembly.assemble_splits`, which takes `settings`),
    scored by `metrics`."""
    splits, names, kind = assemble_splits(rows, **settings)
    try:
        return Task(splits, names, kind, list(metrics))
    except ConfigError as error:
        raise DataError(str(error)) from None


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
        task_type=config.task_type,
        metrics=config.metrics,
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
