"""What the report reads from a run folder, through `distilrnn.run.Run` only: results.json,
each model's per-example predictions, the teacher's calibration record, the teacher's logits of
its training texts, and any benchmark files, peers.json (`distilrnn.bench.peers`) and
frontier.json (`distilrnn.bench.frontier`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.calibration import calibrate
from distilrnn.data import Task
from distilrnn.errors import MissingFileError, RunFolderError
from distilrnn.evaluate import metric_names
from distilrnn.metrics import CLASSIFICATION, REGRESSION
from distilrnn.run import Run, StudentRecord, TeacherRecord, read_json

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")


@dataclass
class ReportData:
    """Everything the report needs, read from a run directory.

    `calibration` is the teacher's temperature record (`distilrnn.calibration.calibrate`'s
    keys); when none is given it is fitted here, once, on the teacher's validation logits (a
    classification task only: a regression task has no calibration). The task's metrics and
    type are the teacher row's (`metrics`, `task_type`; rows written before tasks had them read
    as accuracy and classification).
    """

    rows: list[dict[str, Any]]  # results.json rows: the teacher first, then one per variant
    labels: dict[str, np.ndarray]  # split -> (n_examples,) gold labels
    logits: dict[str, dict[str, list[np.ndarray]]]  # name -> split -> per-seed (n, labels)
    train_logits: np.ndarray | None = None  # teacher logits of the training texts (n, labels)
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    # results.json's `teacher_ensemble` row (its logits under "teacher ensemble"), when the run
    # distils a teacher ensemble: then the labels, and the calibration, are the ensemble's
    ensemble: dict[str, Any] | None = None
    peers: dict[str, Any] | None = None  # peers.json: TF-IDF, fastText, the teacher's bundles
    frontier: dict[str, Any] | None = None  # frontier.json: every student, teachers, peers

    def __post_init__(self) -> None:
        if self.calibration is None and self.task_type != REGRESSION:
            self.calibration = calibrate(
                self.logits[self.target]["validation"][0], self.labels["validation"]
            )

    @property
    def target(self) -> str:
        """Whose logits the students learned: `teacher`, or `teacher ensemble`."""
        return "teacher ensemble" if self.ensemble is not None else "teacher"

    @property
    def metrics(self) -> list[str]:
        """The task's metric names, primary first."""
        return metric_names(self.rows[0])

    @property
    def task_type(self) -> str:
        return self.rows[0].get("task_type", CLASSIFICATION)

    @property
    def temperature(self) -> float:
        """The temperature minimising the teacher's validation NLL."""
        return float(self.calibration["temperature"])


def _record(row: dict[str, Any], directory: Path) -> TeacherRecord | StudentRecord:
    return (
        TeacherRecord.read(directory) if row["name"] == "teacher" else StudentRecord.read(directory)
    )


def _model_logits(row: dict[str, Any], task: Task) -> dict[str, list[np.ndarray]]:
    """Per split, one logits array per seed; raises if a model folder has no predictions."""
    by_split: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for directory in map(Path, row["directories"]):
        predictions = _record(row, directory).predictions()
        if predictions is None:
            raise MissingFileError(
                f"{directory} has no predictions; rebuild it with `distilrnn student` "
                "(or `distilrnn teacher --force teacher`)"
            )
        for split in by_split:
            if len(predictions[split]) != len(task.splits[split]):
                raise RunFolderError(
                    f"{directory}: its predictions hold {len(predictions[split])} {split} "
                    f"examples, the task {len(task.splits[split])}"
                )
            by_split[split].append(predictions[split])
    return by_split


def load_report_data(
    run: Run | str | Path, benchmark_files: Sequence[Path] | None = None
) -> ReportData:
    """Read results.json, the models' predictions, the teacher's calibration and, when present,
    the training-set logits, the benchmark files (default: every one in the run), peers.json
    and frontier.json."""
    run = run if isinstance(run, Run) else Run(run)
    if not run.results_file.is_file():
        raise MissingFileError(f"{run.results_file} not found: run `distilrnn evaluate` first")
    results = read_json(run.results_file)
    rows, ensemble = results["rows"], results.get("teacher_ensemble")
    task = run.task()
    labels = {split: np.asarray(task.splits[split]["label"]) for split in SPLITS}
    models = rows + ([ensemble] if ensemble else [])
    logits = {row["name"]: _model_logits(row, task) for row in models}
    if benchmark_files is None:
        benchmark_files = run.benchmark_files()
    benchmarks = [read_json(Path(path)) for path in benchmark_files]
    peers = read_json(run.peers_file) if run.peers_file.is_file() else None
    frontier = read_json(run.frontier_file) if run.frontier_file.is_file() else None
    return ReportData(
        rows,
        labels,
        logits,
        run.training_logits(),
        benchmarks,
        run.calibration(),
        ensemble,
        peers=peers,
        frontier=frontier,
    )
