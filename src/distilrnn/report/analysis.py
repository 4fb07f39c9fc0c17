"""The report's statistics: each variant's seeds summarised, a paired bootstrap over test
examples against the baseline of the same cell (Koehn 2004) and against the teacher, the share
of the teacher-baseline gap closed, and what gap the test half can resolve at all; for every
metric of the task (accuracy; F1; Pearson, Spearman). The primary (first) metric chooses the
best distilled student, on the validation half; the test half is only reported."""

from __future__ import annotations

from typing import Any

import numpy as np

from distilrnn import calibration, metrics, stats
from distilrnn.report.data import ReportData


def correct(logits: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """(n_seeds, n_examples) bool: whether each seed's model got each example right."""
    return np.stack([lg.argmax(-1) == labels for lg in logits])


def predicted(logits: list[np.ndarray], task_type: str) -> np.ndarray:
    """(n_seeds, n_examples): each seed's predicted label ids or scores."""
    return np.stack([metrics.predictions(lg, task_type) for lg in logits])


def baseline_of(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `ce` variant with the same cell type (a bag or cnn student: the same encoder; and, for
    pairs, the same pair design) trained on the training texts, if any."""
    for other in rows:
        if (
            other.get("objective") == "ce"
            and other.get("rnn") == row.get("rnn")
            and other.get("pair_design") == row.get("pair_design")
        ):
            return other
    return None


def gap_closed(student: float, baseline: float, teacher: float) -> float | None:
    """(student - baseline) / (teacher - baseline): 0 is the baseline, 1 the teacher.

    Every metric of `distilrnn.metrics` is higher-is-better (accuracy, F1, Pearson, Spearman),
    so the sign holds for each: a student below its baseline closes a negative share. None when
    the teacher is not above the baseline (no gap to close, and no division by zero)."""
    if not teacher > baseline:
        return None
    return (student - baseline) / (teacher - baseline)


def _summary(row: dict[str, Any], split: str, name: str, primary: str) -> dict[str, Any]:
    """A row's summary over seeds of metric `name` (rows of accuracy-only runs hold only the
    primary metric's, as `{split}_summary`)."""
    summaries = row.get(f"{split}_summaries") or {}
    if name in summaries or name != primary:
        return summaries[name]
    return row[f"{split}_summary"]


def _variant(
    data: ReportData, row: dict[str, Any], teacher_predicted: np.ndarray, samples: int
) -> dict[str, Any]:
    """One variant's summaries and its paired comparisons on the test half, per metric; the
    primary metric's are also the entry's own keys (`validation`, `test`, `against_*`)."""
    test, names = data.labels["test"], data.metrics
    mine = predicted(data.logits[row["name"]]["test"], data.task_type)
    baseline = baseline_of(row, data.rows)
    if baseline is row:
        baseline = None
    if baseline is not None:
        theirs = predicted(data.logits[baseline["name"]]["test"], data.task_type)
    by_metric: dict[str, dict[str, Any]] = {}
    for name in names:
        comparison = {
            "validation": _summary(row, "validation", name, names[0]),
            "test": _summary(row, "test", name, names[0]),
            "against_teacher": stats.paired_bootstrap_metric(
                name, mine, teacher_predicted, test, samples
            ),
        }
        if baseline is not None:
            comparison["against_baseline"] = stats.paired_bootstrap_metric(
                name, mine, theirs, test, samples
            )
            comparison["gap_closed"] = gap_closed(
                row[f"test_{name}"], baseline[f"test_{name}"], data.rows[0][f"test_{name}"]
            )
        by_metric[name] = comparison
    entry: dict[str, Any] = {
        "name": row["name"],
        "objective": row["objective"],
        "rnn": row.get("rnn"),
        "transfer_set": row.get("transfer_set", "train"),
        "temperature": row.get("temperature"),
        "seeds": row["seeds"],
        **by_metric[names[0]],
        "metrics": by_metric,
    }
    if baseline is not None:
        entry["baseline"] = baseline["name"]
    return entry


def analyse(data: ReportData, samples: int = 10000) -> dict[str, Any]:
    """Statistics of every variant against its baseline and the teacher, on the test half.

    `standard_error` and `resolvable_difference` are formulas for a proportion: they are given
    for a task scored by accuracy (at the variants' mean test accuracy) and None otherwise."""
    teacher = data.rows[0]
    names = data.metrics
    test_examples = len(data.labels["test"])
    teacher_predicted = predicted(data.logits["teacher"]["test"], data.task_type)
    variants = [_variant(data, row, teacher_predicted, samples) for row in data.rows[1:]]
    distilled = [v for v in variants if v["objective"] != "ce"]
    best = max(distilled, key=lambda v: v["validation"]["mean"], default=None)
    analysis = {
        "metrics": names,
        "task_type": data.task_type,
        "teacher": {
            f"{split}_{name}": teacher[f"{split}_{name}"]
            for split in ("validation", "test")
            for name in names
        },
        "teacher_ensemble": _ensemble(data),
        "variants": variants,
        "best_distilled": best["name"] if best else None,
        "test_examples": test_examples,
        "standard_error": None,
        "resolvable_difference": None,
        "teacher_confidence": None if data.task_type == metrics.REGRESSION else _confidence(data),
    }
    if "accuracy" in names:
        accuracies = [v["metrics"]["accuracy"]["test"]["mean"] for v in variants]
        mean_accuracy = float(np.mean(accuracies or [0.87]))
        analysis["standard_error"] = stats.standard_error(test_examples, mean_accuracy)
        analysis["resolvable_difference"] = stats.resolvable_difference(
            test_examples, mean_accuracy
        )
    return analysis


def _ensemble(data: ReportData) -> dict[str, Any] | None:
    """The teacher ensemble's scores, size and training time (None without an ensemble)."""
    row = data.ensemble
    if row is None:
        return None
    keys = [f"{split}_{name}" for split in ("validation", "test") for name in data.metrics]
    kept = ("objective", "size_bytes", "train_seconds", *keys)
    return {key: row.get(key) for key in kept} | {"members": len(row.get("members", []))}


def _confidence(data: ReportData) -> dict[str, Any]:
    """The teacher's (or the teacher ensemble's, `data.target`) validation calibration (from
    its record) and training-set confidence."""
    record = data.calibration
    out: dict[str, Any] = {
        "source": data.target,
        "validation_ece": record["validation_ece"],
        "validation_nll": record["validation_nll"],
        "fitted_temperature": data.temperature,
        "validation_ece_scaled": record["validation_ece_scaled"],
        "validation_nll_scaled": record["validation_nll_scaled"],
    }
    if data.train_logits is not None:
        confidence = calibration.softmax(data.train_logits).max(-1)
        out.update(
            train_confidence_mean=float(confidence.mean()),
            train_share_above_099=float((confidence > 0.99).mean()),
        )
    return out
