"""The experiment's report: `report.md` with PNG plots beside it, and `report.json`, written
into the run folder.

It reads what the stages left behind through `distilrnn.run.Run` (`data`): results.json, each
model's per-example predictions, the students' training logs, the teacher's calibration record
and its logits of the training texts, and benchmark files when there are any. `analysis` adds
the statistics (seed intervals, paired bootstrap against the baseline, gap closed, what the
test half can resolve), `plots` draws the figures and `markdown` renders the page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from distilrnn.atomic import write_atomically, write_json_atomic
from distilrnn.metrics import REGRESSION
from distilrnn.report.analysis import analyse, baseline_of, correct, gap_closed
from distilrnn.report.data import ReportData, load_report_data
from distilrnn.report.markdown import render, variants_table
from distilrnn.report.plots import (
    plot_accuracy_against,
    plot_confidence,
    plot_frontier,
    plot_learning_curves,
    plot_reliability,
)
from distilrnn.run import Run

__all__ = [
    "PLOTS",
    "REPORT_NAME",
    "ReportData",
    "analyse",
    "baseline_of",
    "correct",
    "gap_closed",
    "load_report_data",
    "render",
    "variants_table",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_NAME = "report.md"
ANALYSIS_NAME = "report.json"
PLOTS = {
    "learning_curves": "learning_curves.png",
    "accuracy_vs_size": "accuracy_vs_size.png",
    "accuracy_vs_speed": "accuracy_vs_speed.png",
    "confidence": "teacher_confidence.png",
    "reliability": "reliability.png",
    "frontier": "frontier.png",
}


def write_report(
    run: Run | str | Path,
    benchmark_files: Sequence[Path] | None = None,
    title: str = "distilrnn report",
) -> Path:
    """Write report.md, its PNG plots and report.json into the run folder; return the report's
    path. `benchmark_files` default to every `benchmark*.json` of the run."""
    run = run if isinstance(run, Run) else Run(run)
    data = load_report_data(run, benchmark_files)
    analysis = analyse(data)
    root = run.root
    plots = {"learning_curves": PLOTS["learning_curves"]}
    plot_learning_curves(data, root / PLOTS["learning_curves"])
    for key, axis_name in (("accuracy_vs_size", "size"), ("accuracy_vs_speed", "speed")):
        if plot_accuracy_against(data, root / PLOTS[key], axis_name):
            plots[key] = PLOTS[key]
    if data.frontier is not None and plot_frontier(data.frontier, root / PLOTS["frontier"]):
        plots["frontier"] = PLOTS["frontier"]
    if plot_confidence(data, root / PLOTS["confidence"]):
        plots["confidence"] = PLOTS["confidence"]
    if data.task_type != REGRESSION:  # a reliability diagram needs class probabilities
        plot_reliability(data, root / PLOTS["reliability"], analysis["best_distilled"])
        plots["reliability"] = PLOTS["reliability"]
    for history in sorted((root / "tune").glob("history-*.png")):  # `distilrnn tune` studies
        plots[f"study:{history.stem.removeprefix('history-')}"] = f"tune/{history.name}"
    write_json_atomic(root / ANALYSIS_NAME, analysis)
    text = render(analysis, data, plots, title)
    path = root / REPORT_NAME
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("report: %s", path)
    return path
