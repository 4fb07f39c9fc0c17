"""Raw rows to splits: the one path every source of a task takes (`distilrnn.data`).

Texts are cleaned (an empty or non-string text is an error naming its row, or with
`drop_empty` the row is dropped), labels are encoded as class ids or, for a regression task,
float scores, sentence pairs keep their second text in a `text_pair` column, and a validation
(and test) split is held out when the source has none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value

from distilrnn.errors import DataError
from distilrnn.inputs import PAIR_COLUMN
from distilrnn.label_rules import canonical_label, encode_labels, label_index, raw_labels
from distilrnn.metrics import CLASSIFICATION, REGRESSION
from distilrnn.readers import SPLITS, UNLABELLED, Rows

# the name the data stage logged under before this module was split out of `distilrnn.data`
logger = logging.getLogger("distilrnn.data")

HELD_OUT = 0.2  # share of the training rows held out as validation when there is none
REGRESSION_NAMES = ["score"]  # a regression task's one "label": the predicted score


def _features(task_type: str, pair: bool) -> Features:
    columns = {"text": Value("string")}
    if pair:
        columns[PAIR_COLUMN] = Value("string")
    columns["label"] = Value("float64" if task_type == REGRESSION else "int64")
    return Features(columns)


def _is_empty(text: Any) -> bool:
    """A text that is missing: blank, None or NaN."""
    return not text.strip() if isinstance(text, str) else canonical_label(text) is None


def _drop_empty(rows: Rows) -> Rows:
    """`rows` without those whose text (or second text) is empty, keeping each row's line for
    error messages; the count dropped is logged (`data.drop_empty = true`)."""
    if isinstance(rows.texts, str) or isinstance(rows.pairs, str):
        return rows  # refused by _clean_texts
    if rows.pairs is not None and len(rows.pairs) != len(rows.texts):
        return rows  # refused by _clean_texts
    keep = [
        i
        for i, text in enumerate(rows.texts)
        if not _is_empty(text) and (rows.pairs is None or not _is_empty(rows.pairs[i]))
    ]
    dropped = len(rows.texts) - len(keep)
    if dropped == 0:
        return rows
    logger.warning("%s: dropped %d row(s) with empty text (data.drop_empty)", rows.origin, dropped)
    if rows.labels is not None and len(rows.labels) != len(rows.texts):
        return rows  # refused by raw_labels
    return dataclasses.replace(
        rows,
        texts=[rows.texts[i] for i in keep],
        pairs=None if rows.pairs is None else [rows.pairs[i] for i in keep],
        labels=None if rows.labels is None else [rows.labels[i] for i in keep],
        lines=None if rows.lines is None else [rows.lines[i] for i in keep],
        indices=[rows.row_index(i) for i in keep],
    )


def _clean_column(rows: Rows, values: Sequence[Any], which: int) -> list[str]:
    """The texts of one column (0: text, 2: second text), stripped; an empty or non-string
    text is an error naming the row."""
    if isinstance(values, str):
        raise DataError(f"{rows.origin}: expected a list of texts, got one string")
    if len(values) == 0:
        blank = " (only a header or blank lines)" if rows.path is not None else ""
        raise DataError(f"{rows.origin}: no examples{blank}")
    texts = []
    for index, text in enumerate(values):
        if _is_empty(text):
            raise DataError(
                f"{rows.where(index)}: empty text{rows.column(which)} "
                "(set data.drop_empty = true to drop such rows)"
            )
        if not isinstance(text, str):
            kind = type(text).__name__
            raise DataError(
                f"{rows.where(index)}: text is a {kind}, not a string{rows.column(which)}"
            )
        texts.append(text.strip())
    return texts


def _clean_texts(rows: Rows) -> tuple[list[str], list[str] | None]:
    texts = _clean_column(rows, rows.texts, 0)
    if rows.pairs is None:
        return texts, None
    if not isinstance(rows.pairs, str) and len(rows.pairs) != len(texts):
        raise DataError(f"{rows.origin}: {len(texts)} texts but {len(rows.pairs)} second texts")
    return texts, _clean_column(rows, rows.pairs, 2)


def _is_score(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


def infer_task_type(train_raw: list[str] | None, task_type: str = "auto") -> str:
    """`task_type` when set; `auto`: regression when every training label is a number and
    some are not whole numbers (STS-B's `3.800`), else classification."""
    if task_type != "auto":
        return task_type
    if not train_raw or not all(_is_score(label) for label in train_raw):
        return CLASSIFICATION
    return REGRESSION if any("." in label for label in train_raw) else CLASSIFICATION


def _scores(rows: Rows, raw: list[str]) -> list[float]:
    """Regression labels as floats; one that is not a finite number is an error naming it."""
    scores = []
    for index, label in enumerate(raw):
        try:
            value = float(label)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise DataError(
                f"{rows.where(index)}: label {label!r} is not a number{rows.column(1)} "
                "(a regression task's labels are scores)"
            )
        scores.append(value)
    return scores


def assemble_splits(
    rows: Iterable[Rows],
    *,
    label_names: Sequence[str] | None = None,
    vocabulary: list[str] | None = None,
    split_seed: int = 42,
    max_train_samples: int = 0,
    drop_empty: bool = False,
    held_out: float = HELD_OUT,
    task_type: str = "auto",
) -> tuple[DatasetDict, list[str], str]:
    """Validate and encode raw splits: the one path every source takes. Returns the train /
    validation / test splits, the label names and the task type.

    `rows` (train first) are checked as they come, so a file is checked before the next is
    read. `vocabulary` (fixed by the source, e.g. a `ClassLabel`) and `label_names`: see
    `label_index`. `drop_empty` drops rows with an empty text instead of stopping; `held_out`
    is the share of the training rows held out as validation when no validation split is given.
    `task_type` (`auto`: `infer_task_type`): see `DataConfig`.
    """
    given: dict[str, Rows] = {}
    texts: dict[str, tuple[list[str], list[str] | None]] = {}
    raw: dict[str, list[str] | None] = {}
    for r in rows:
        if drop_empty and len(r.texts) > 0:
            r = _drop_empty(r)
        given[r.split], texts[r.split], raw[r.split] = r, _clean_texts(r), raw_labels(r)
        if (texts[r.split][1] is None) != (texts["train"][1] is None):
            raise DataError(f"{r.origin}: the training split has pairs but this split has not")
    kind = infer_task_type(raw["train"], task_type)
    if kind == REGRESSION:
        if vocabulary is not None:
            raise DataError("data.task_type: regression, but the labels are classes (ClassLabel)")
        names = list(label_names) if label_names else list(REGRESSION_NAMES)
        if len(names) != 1:
            raise DataError(f"a regression task has one output; label_names gives {len(names)}")
    else:
        index, names, reason = label_index(raw["train"], vocabulary, label_names)
    datasets = {}
    pair = texts["train"][1] is not None
    for split, r in given.items():
        count = len(texts[split][0])
        if kind == REGRESSION:
            ids: list[Any] = [np.nan] * count if raw[split] is None else _scores(r, raw[split])
        elif raw[split] is None:
            ids = [UNLABELLED] * count
        else:
            ids = encode_labels(r, raw[split], index, reason)
        columns: dict[str, list[Any]] = {"text": texts[split][0]}
        if pair:
            columns[PAIR_COLUMN] = texts[split][1]
        columns["label"] = ids
        datasets[split] = Dataset.from_dict(columns, _features(kind, pair))
    return _split(datasets, split_seed, max_train_samples, held_out), names, kind


def _partition(dataset: Dataset, first: int, seed: int) -> tuple[Dataset, Dataset]:
    """A seeded random partition: `first` rows, then the rest, each in its original order."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(sorted(order[:first])), dataset.select(sorted(order[first:]))


def halve(dataset: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Split a dataset 50/50 with a fixed seed: (validation half, test half)."""
    return _partition(dataset, len(dataset) - len(dataset) // 2, seed)


def _split(datasets: dict[str, Dataset], seed: int, max_train: int, held_out: float) -> DatasetDict:
    if "validation" not in datasets:
        if len(datasets["train"]) < 2:
            raise DataError("train: too few rows to hold out a validation split")
        held = min(max(1, round(held_out * len(datasets["train"]))), len(datasets["train"]) - 1)
        datasets["validation"], datasets["train"] = _partition(datasets["train"], held, seed)
    if "test" not in datasets:
        datasets["validation"], datasets["test"] = halve(datasets["validation"], seed)
    if max_train and max_train < len(datasets["train"]):
        datasets["train"] = datasets["train"].shuffle(seed=seed).select(range(max_train))
    return DatasetDict({s: datasets[s] for s in SPLITS})
