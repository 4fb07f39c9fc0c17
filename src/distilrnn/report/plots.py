"""The report's PNG plots: learning curves, the primary metric against size and speed, the
teacher's confidence on its training texts, and a reliability diagram (Guo et al. 2017); the
last two for classification only (a regression model has no probabilities)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distilrnn import calibration
from distilrnn.atomic import write_atomically
from distilrnn.evaluate import METRIC_LABELS, PERCENT_METRICS
from distilrnn.metrics import REGRESSION
from distilrnn.report.data import ReportData
from distilrnn.run import StudentRecord


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    _pyplot().close(figure)


def _axis_metric(data: ReportData) -> tuple[str, str, float]:
    """The primary metric, its axis label and its scale (100 for percent metrics)."""
    metric = data.metrics[0]
    if metric in PERCENT_METRICS:
        return metric, f"{METRIC_LABELS.get(metric, metric).replace('acc', 'accuracy')} (%)", 100.0
    return metric, METRIC_LABELS.get(metric, metric), 1.0


def plot_learning_curves(data: ReportData, path: Path) -> None:
    """The primary metric on validation against training texts seen (epochs times the
    training-set size, so a transfer-set epoch counts for what it holds), the mean over seeds,
    one line a variant."""
    metric, label, scale = _axis_metric(data)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for row in data.rows[1:]:
        curves = [_eval_curve(StudentRecord.read(Path(d)), metric) for d in row["directories"]]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        seen = [point[0] / 1e6 for point in curves[0][:length]]
        accuracy = np.mean([[point[1] for point in c[:length]] for c in curves], axis=0)
        axis.plot(seen, scale * accuracy, marker="o", markersize=3, label=row["name"])
    teacher = scale * data.rows[0][f"validation_{metric}"]
    axis.axhline(teacher, color="black", ls="--", label="teacher")
    axis.set(
        xlabel="training texts seen (millions)",
        ylabel=f"validation {label}, mean over seeds",
        title="Learning curves",
    )
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3)
    _save(figure, path)


def _eval_curve(student: StudentRecord, metric: str = "accuracy") -> list[tuple[float, float]]:
    """(texts seen, validation `metric`) at each evaluation of one student's training."""
    size = student.metrics.get("train_examples", 1)
    history = student.metrics.get("log_history", [])
    key = f"eval_{metric}"
    return [(h["epoch"] * size, h[key]) for h in history if key in h]


def _speeds(data: ReportData) -> dict[str, float]:
    """Throughput (texts/s, batch 64, the most threads measured) by model: teacher, and each
    student's cell (lstm, gru) or encoder (bag, cnn), as results rows name it."""
    speeds: dict[str, float] = {}
    for result in data.benchmarks:
        for model in ("teacher", "student"):
            throughput = result[model]["throughput"]
            key = "teacher" if model == "teacher" else result.get("student_rnn", "student")
            speeds[key] = float(throughput[max(throughput, key=int)])
    return speeds


PEER_MARKERS = {"peer": "s", "teacher": "D", "student": "^"}  # by peers.json row kind


def peer_points(data: ReportData, axis_name: str) -> list[tuple[str, float, dict, str]]:
    """`(name, x, test accuracy summary, kind)` of each peers.json model (TF-IDF, fastText, the
    teacher's and students' bundles): x is its bytes (MB) or its throughput at the most threads
    timed. None unless the run has peers.json and its primary metric is accuracy."""
    if data.peers is None or data.metrics[0] != "accuracy":
        return []
    points = []
    for row in data.peers["models"]:
        if axis_name == "size":
            x = row["model_bytes"] / 1e6
        else:
            throughput = row["speed"]["throughput_texts_per_s"]
            x = float(throughput[max(throughput, key=int)])
        value = row["test_accuracy"]
        summary = {"mean": value, "ci_low": value, "ci_high": value}
        points.append((row["name"], x, summary, row["kind"]))
    return points


def plot_accuracy_against(data: ReportData, path: Path, axis_name: str) -> bool:
    """The primary metric on test (mean and 95 % interval over seeds) against size (MB) or
    throughput; with peers.json, its models too (hollow markers: timed through their own
    runtime, tokenisation included)."""
    metric, label, scale = _axis_metric(data)
    speeds = _speeds(data)
    points = []
    for row in data.rows:
        if axis_name == "size":
            x = row["size_bytes"] / 1e6
        else:
            x = speeds.get("teacher" if row["name"] == "teacher" else row.get("rnn", ""))
            if x is None:
                continue
        summary = row.get("test_summary") or {
            "mean": row[f"test_{metric}"],
            "ci_low": row[f"test_{metric}"],
            "ci_high": row[f"test_{metric}"],
        }
        points.append((row["name"], x, summary))
    peers = peer_points(data, axis_name)
    if len(points) + len(peers) < 2:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, x, s in points:
        error = [[scale * (s["mean"] - s["ci_low"])], [scale * (s["ci_high"] - s["mean"])]]
        marker = "*" if name == "teacher" else "o"
        axis.errorbar(x, scale * s["mean"], yerr=error, fmt=marker, capsize=3, label=name)
    for name, x, s, kind in peers:
        marker = PEER_MARKERS.get(kind, "o")
        axis.plot(x, scale * s["mean"], marker, markerfacecolor="none", label=name)
    axis.set_xscale("log")
    xlabel = "bytes on disk (MB, log)" if axis_name == "size" else "texts/s, batch 64 (log)"
    if peers:
        xlabel += "; hollow: peers.json"
    axis.set(xlabel=xlabel, ylabel=f"test {label}, mean and 95 % CI over seeds")
    title = label.removesuffix(" (%)").capitalize()
    axis.set_title(f"{title} against {'size' if axis_name == 'size' else 'speed'}")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3, which="both")
    _save(figure, path)
    return True


# frontier.json row kind -> (marker, legend)
FRONTIER_MARKERS = {"student": ("o", "student"), "teacher": ("D", "teacher"), "peer": ("s", "peer")}


def plot_frontier(frontier: dict[str, Any], path: Path, threads: str = "2") -> bool:
    """The speed frontier (frontier.json, `distilrnn.bench.frontier`): test accuracy (mean over
    seeds, ± sample sd) against throughput at `threads` threads (log), every model named,
    students, teachers and peers with their own markers, the Pareto-optimal ones joined."""
    models = frontier["models"]
    if not models:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))

    def point(row: dict[str, Any]) -> tuple[float, float]:
        throughput = row["speed"]["throughput_texts_per_s"][threads]
        return throughput, 100 * row["accuracy"]["test"]["mean"]

    front = sorted(point(row) for row in models if row["name"] in frontier["pareto"])
    if len(front) > 1:
        axis.plot(*zip(*front, strict=True), color="grey", alpha=0.6, zorder=0, label="Pareto")
    for kind, (marker, label) in FRONTIER_MARKERS.items():
        rows = [row for row in models if row["kind"] == kind]
        if not rows:
            continue
        x, y = zip(*map(point, rows), strict=True)
        sd = [100 * (row["accuracy"]["test"]["std"] or 0.0) for row in rows]
        axis.errorbar(x, y, yerr=sd, fmt=marker, capsize=3, label=label)
        for row, xy in zip(rows, zip(x, y, strict=True), strict=True):
            name = row["name"].removeprefix("student-")
            axis.annotate(name, xy, textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_xscale("log")
    axis.set(
        xlabel=f"texts/s, batch 64, {threads} threads (log)",
        ylabel="test accuracy (%), mean ± sd over seeds",
        title="Speed frontier: accuracy against throughput",
    )
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3, which="both")
    _save(figure, path)
    return True


def plot_confidence(data: ReportData, path: Path) -> bool:
    """Histogram of the teacher's max-softmax confidence on its training texts (classification
    only)."""
    if data.train_logits is None or data.task_type == REGRESSION:
        return False
    plt = _pyplot()
    histogram = calibration.confidence_histogram(data.train_logits, bins=20)
    edges = np.asarray(histogram["edges"])
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(edges[:-1], histogram["counts"], width=np.diff(edges), align="edge", edgecolor="k")
    axis.set_yscale("log")
    axis.set(
        xlabel="teacher confidence (max softmax probability)",
        ylabel="training texts (log)",
        title=f"Teacher confidence on its {len(data.train_logits):,} training texts",
    )
    _save(figure, path)
    return True


def plot_reliability(data: ReportData, path: Path, student: str | None) -> None:
    """Reliability diagram on the validation half: the teacher, the teacher (or the teacher
    ensemble the students learned from) scaled by its recorded temperature, and a student."""
    plt = _pyplot()
    labels = data.labels["validation"]
    teacher = data.logits["teacher"]["validation"][0]
    temperature, target = data.temperature, data.target
    scaled = data.logits[target]["validation"][0]
    curves = [("teacher", teacher, 1.0)]
    if target != "teacher":
        curves.append((target, scaled, 1.0))
    curves.append((f"{target}, T = {temperature:.2f}", scaled, temperature))
    if student is not None:
        curves.append((f"{student} (seed 0)", data.logits[student]["validation"][0], 1.0))
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.plot([0, 1], [0, 1], color="grey", ls=":", label="calibrated")
    for name, logits, t in curves:
        diagram = calibration.reliability_diagram(logits, labels, bins=10, temperature=t)
        ece = calibration.expected_calibration_error(logits, labels, temperature=t)
        kept = [
            (c, a) for c, a in zip(diagram["confidence"], diagram["accuracy"], strict=True) if c
        ]
        axis.plot(*zip(*kept, strict=True), marker="o", label=f"{name}: ECE {ece:.3f}")
    axis.set(
        xlabel="confidence",
        ylabel="accuracy",
        xlim=(0.45, 1.0),
        ylim=(0.0, 1.0),
        title="Reliability on the validation half",
    )
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    _save(figure, path)


def plot_study_history(
    trials: list[dict[str, Any]], metric: str, path: Path, title: str = "study"
) -> None:
    """A hyper-parameter search's history (`distilrnn.tune`): each trial's validation score by
    trial number (completed filled, pruned hollow at their last evaluation, failed ones left
    out) and the best so far as a step line."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    ordered = sorted(trials, key=lambda t: t["number"])
    complete = [(t["number"], t["value"]) for t in ordered if t["state"] == "complete"]
    pruned = [
        (t["number"], t["last_value"])
        for t in ordered
        if t["state"] == "pruned" and t["last_value"] is not None
    ]
    if complete:
        axis.scatter(*zip(*complete, strict=True), color="tab:blue", label="completed", zorder=3)
        best, steps = -np.inf, []
        for number, value in complete:
            best = max(best, value)
            steps.append((number, best))
        axis.step(*zip(*steps, strict=True), where="post", color="tab:orange", label="best so far")
    if pruned:
        axis.scatter(
            *zip(*pruned, strict=True),
            facecolors="none",
            edgecolors="tab:gray",
            label="pruned (last evaluation)",
            zorder=3,
        )
    axis.set_xlabel("trial")
    axis.set_ylabel(f"validation {METRIC_LABELS.get(metric, metric).replace('acc', 'accuracy')}")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    _save(figure, path)
