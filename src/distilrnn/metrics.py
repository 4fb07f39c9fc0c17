"""Task metrics: what a model is scored by, for classification and regression.

A task scores its models by a list of metric names, the first of which chooses the model
(best epoch, best variant). Defaults: `accuracy` for classification, `pearson` and `spearman`
for regression; GLUE's MRPC adds `f1` (F1 of the positive class, label id 1, of a binary task).
Every metric takes the model's outputs as they come (`logits`: `(n, num_labels)` for
classification, `(n, 1)` predicted scores for regression) and the gold labels (ids or scores).
numpy only: the torch-free runtime scores with it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from distilrnn.errors import ConfigError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASK_TYPES = (CLASSIFICATION, REGRESSION)

DEFAULT_METRICS = {CLASSIFICATION: ["accuracy"], REGRESSION: ["pearson", "spearman"]}
METRIC_TASKS = {
    "accuracy": CLASSIFICATION,
    "f1": CLASSIFICATION,
    "pearson": REGRESSION,
    "spearman": REGRESSION,
}


def predictions(logits: np.ndarray, task_type: str) -> np.ndarray:
    """Predicted label ids `(n,)` (classification) or scores `(n,)` float (regression)."""
    logits = np.asarray(logits)
    if task_type == REGRESSION:
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    return logits.argmax(-1)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(predicted) == np.asarray(labels)).mean())


def f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class (label id 1); 0 when the class is never predicted nor gold."""
    predicted, labels = np.asarray(predicted) == 1, np.asarray(labels) == 1
    true_positive = float(np.sum(predicted & labels))
    denominator = float(np.sum(predicted) + np.sum(labels))
    return 2.0 * true_positive / denominator if denominator else 0.0


def pearson(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant."""
    x = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return float(np.sum(x * y) / denominator) if denominator > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (as `scipy.stats.rankdata`)."""
    _, inverse, counts = np.unique(
        np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True
    )
    ends = np.cumsum(counts)  # one past each distinct value's last sorted position
    return ((2 * ends - counts + 1) / 2.0)[inverse.reshape(-1)]  # vectorised: the bootstrap


def spearman(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of the ranks, ties at their mean rank)."""
    return pearson(_ranks(predicted), _ranks(labels))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "pearson": pearson,
    "spearman": spearman,
}


def check_metrics(names: Sequence[str], task_type: str, num_labels: int = 2) -> list[str]:
    """`names` checked against the task type (empty: the task type's defaults)."""
    if task_type not in TASK_TYPES:
        raise ConfigError(f"data.task_type: {task_type!r} is not one of {', '.join(TASK_TYPES)}")
    names = list(names) or list(DEFAULT_METRICS[task_type])
    for name in names:
        if name not in METRICS:
            raise ConfigError(
                f"data.metrics: unknown metric {name!r} (known: {', '.join(METRICS)})"
            )
        if METRIC_TASKS[name] != task_type:
            raise ConfigError(
                f"data.metrics: {name!r} scores {METRIC_TASKS[name]} tasks, not {task_type}"
            )
    if "f1" in names and num_labels != 2:
        raise ConfigError(
            f"data.metrics: f1 scores a binary task, this one has {num_labels} labels"
        )
    return names


def score(name: str, logits: np.ndarray, labels: Sequence[float], task_type: str) -> float:
    """One metric of `logits` against gold `labels`."""
    return METRICS[name](predictions(logits, task_type), np.asarray(labels))


def scores(
    names: Sequence[str], logits: np.ndarray, labels: Sequence[float], task_type: str
) -> dict[str, float]:
    """Every metric of `names`, by name."""
    predicted, gold = predictions(logits, task_type), np.asarray(labels)
    return {name: METRICS[name](predicted, gold) for name in names}


def resampled(
    name: str, predicted: np.ndarray, labels: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """The metric on each bootstrap resample: `indices` `(samples, n)` -> `(samples,)`."""
    metric = METRICS[name]
    if name == "accuracy":  # decomposable: one vectorised mean
        return (np.asarray(predicted)[indices] == np.asarray(labels)[indices]).mean(axis=1)
    return np.array([metric(predicted[row], labels[row]) for row in indices])


def labelled_mask(labels: Sequence[float], task_type: str) -> np.ndarray:
    """Which rows carry a gold label: a regression row without one holds NaN, a classification
    row -1 (`distilrnn.readers.UNLABELLED`)."""
    values = np.asarray(labels, dtype=np.float64)
    if task_type == REGRESSION:
        return ~np.isnan(values)
    return values >= 0


def missing_label(task_type: str) -> float | int:
    """The label a row without one holds."""
    return float("nan") if task_type == REGRESSION else -1
