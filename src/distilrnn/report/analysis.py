"""The report's statistics: each variant's seeds summarised, a paired bootstrap over test
sentences against the baseline of the same cell (Koehn 2004) and against the teacher, the share
of the teacher-baseline gap closed, and what gap the test half can resolve at all. The best
distilled student is chosen on the validation half; the test half is only reported."""

from __future__ import annotations

from typing import Any

import numpy as np

from distilrnn import calibration, stats
from distilrnn.report.data import ReportData


def correct(logits: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """(n_seeds, n_examples) bool: whether each seed's model got each example right."""
    return np.stack([lg.argmax(-1) == labels for lg in logits])


def baseline_of(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `ce` variant with the same cell type trained on the training texts, if any."""
    for other in rows:
        if other.get("objective") == "ce" and other.get("rnn") == row.get("rnn"):
            return other
    return None


def gap_closed(student: float, baseline: float, teacher: float) -> float | None:
    """(student - baseline) / (teacher - baseline): 0 is the baseline, 1 the teacher."""
    if teacher <= baseline:
        return None
    return (student - baseline) / (teacher - baseline)


def _variant(
    data: ReportData, row: dict[str, Any], teacher_correct: np.ndarray, samples: int
) -> dict[str, Any]:
    """One variant's summaries and its paired comparisons on the test half."""
    test = data.labels["test"]
    mine = correct(data.logits[row["name"]]["test"], test)
    entry: dict[str, Any] = {
        "name": row["name"],
        "objective": row["objective"],
        "rnn": row.get("rnn"),
        "transfer_set": row.get("transfer_set", "train"),
        "temperature": row.get("temperature"),
        "seeds": row["seeds"],
        "validation": row["validation_summary"],
        "test": row["test_summary"],
        "against_teacher": stats.paired_bootstrap(mine, teacher_correct, samples),
    }
    baseline = baseline_of(row, data.rows)
    if baseline is not None and baseline is not row:
        theirs = correct(data.logits[baseline["name"]]["test"], test)
        entry["baseline"] = baseline["name"]
        entry["against_baseline"] = stats.paired_bootstrap(mine, theirs, samples)
        entry["gap_closed"] = gap_closed(
            row["test_accuracy"], baseline["test_accuracy"], data.rows[0]["test_accuracy"]
        )
    return entry


def analyse(data: ReportData, samples: int = 10000) -> dict[str, Any]:
    """Statistics of every variant against its baseline and the teacher, on the test half."""
    teacher = data.rows[0]
    test_examples = len(data.labels["test"])
    teacher_correct = correct(data.logits["teacher"]["test"], data.labels["test"])
    variants = [_variant(data, row, teacher_correct, samples) for row in data.rows[1:]]
    distilled = [v for v in variants if v["objective"] != "ce"]
    best = max(distilled, key=lambda v: v["validation"]["mean"], default=None)
    mean_accuracy = float(np.mean([v["test"]["mean"] for v in variants] or [0.87]))
    return {
        "teacher": {
            "validation_accuracy": teacher["validation_accuracy"],
            "test_accuracy": teacher["test_accuracy"],
        },
        "variants": variants,
        "best_distilled": best["name"] if best else None,
        "test_examples": test_examples,
        "standard_error": stats.standard_error(test_examples, mean_accuracy),
        "resolvable_difference": stats.resolvable_difference(test_examples, mean_accuracy),
        "teacher_confidence": _confidence(data),
    }


def _confidence(data: ReportData) -> dict[str, Any]:
    """The teacher's validation calibration (from its record) and training-set confidence."""
    record = data.calibration
    out: dict[str, Any] = {
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
