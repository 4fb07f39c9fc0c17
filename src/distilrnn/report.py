"""The experiment's report: `report.md` with PNG plots beside it, written into the run directory.

It reads what the stages left behind (results.json, each model's per-example predictions, the
students' training logs, the teacher's logits of the training texts, and benchmark files when
there are any) and adds the statistics: each variant's mean, standard deviation and 95 % t
interval over seeds, a paired bootstrap over test sentences against the baseline of the same
cell (Koehn 2004), the share of the teacher-baseline gap each student closes, and what gap the
test half can resolve at all. The best distilled student is chosen on the validation half; the
test half is only reported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn import calibration, stats
from distilrnn.atomic import write_json_atomic
from distilrnn.data import Task
from distilrnn.evaluate import format_accuracy, load_predictions

logger = logging.getLogger(__name__)

REPORT_NAME = "report.md"
PLOTS = {
    "learning_curves": "learning_curves.png",
    "accuracy_vs_size": "accuracy_vs_size.png",
    "accuracy_vs_speed": "accuracy_vs_speed.png",
    "confidence": "teacher_confidence.png",
    "reliability": "reliability.png",
}


@dataclass
class ReportData:
    """Everything the report needs, read from a run directory."""

    rows: list[dict[str, Any]]  # results.json rows: the teacher first, then one per variant
    labels: dict[str, np.ndarray]  # split -> (n_examples,) gold labels
    logits: dict[str, dict[str, list[np.ndarray]]]  # name -> split -> per-seed (n, labels)
    train_logits: np.ndarray | None = None  # teacher logits of the training texts (n, labels)
    benchmarks: list[dict[str, Any]] = field(default_factory=list)


def _model_logits(row: dict[str, Any], task: Task) -> dict[str, list[np.ndarray]]:
    """Per split, one logits array per seed; raises if a model folder has no predictions."""
    by_split: dict[str, list[np.ndarray]] = {"validation": [], "test": []}
    for directory in row["directories"]:
        predictions = load_predictions(Path(directory))
        if predictions is None:
            raise FileNotFoundError(
                f"{directory} has no predictions.json; rebuild it with `distilrnn student` "
                "(or `distilrnn teacher --force teacher`)"
            )
        for split in by_split:
            if len(predictions[split]) != len(task.splits[split]):
                raise ValueError(
                    f"{directory}/predictions.json holds {len(predictions[split])} {split} "
                    f"examples, the task {len(task.splits[split])}"
                )
            by_split[split].append(predictions[split])
    return by_split


def load_report_data(run_dir: Path, benchmark_files: list[Path] = ()) -> ReportData:
    """Read results.json, the models' predictions and, when present, the training-set logits."""
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} not found: run `distilrnn evaluate` first")
    rows = json.loads(results_path.read_text())["rows"]
    task = Task.load(run_dir / "data")
    labels = {split: np.asarray(task.splits[split]["label"]) for split in ("validation", "test")}
    logits = {row["name"]: _model_logits(row, task) for row in rows}
    benchmarks = [json.loads(Path(path).read_text()) for path in benchmark_files]
    return ReportData(rows, labels, logits, _training_logits(run_dir, task), benchmarks)


def _training_logits(run_dir: Path, task: Task) -> np.ndarray | None:
    """The teacher's logits of the training texts: the first rows of the labelled set."""
    from distilrnn.labeling import load_labelled

    shards = sorted((run_dir / "labels").glob("logits-*"))
    if not (run_dir / "labels" / "stage.json").is_file() or len(shards) != 1:
        return None
    labelled = load_labelled(shards[0])
    num_train = len(task.splits["train"])
    if len(labelled) < num_train:
        return None
    table = labelled.select(range(num_train)).with_format("numpy")
    return np.asarray(table["teacher_logits"], dtype=np.float32)


# statistics ---------------------------------------------------------------------------------
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


def analyse(data: ReportData, samples: int = 10000) -> dict[str, Any]:
    """Statistics of every variant against its baseline and the teacher, on the test half."""
    teacher = data.rows[0]
    test = data.labels["test"]
    teacher_correct = correct(data.logits["teacher"]["test"], test)
    variants = []
    for row in data.rows[1:]:
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
                row["test_accuracy"], baseline["test_accuracy"], teacher["test_accuracy"]
            )
        variants.append(entry)
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
        "test_examples": len(test),
        "standard_error": stats.standard_error(len(test), mean_accuracy),
        "resolvable_difference": stats.resolvable_difference(len(test), mean_accuracy),
        "teacher_confidence": _confidence(data),
    }


def _confidence(data: ReportData) -> dict[str, Any]:
    """The teacher's training-set confidence and its validation calibration."""
    val_logits = data.logits["teacher"]["validation"][0]
    val_labels = data.labels["validation"]
    temperature = calibration.fit_temperature(val_logits, val_labels)
    out: dict[str, Any] = {
        "validation_ece": calibration.expected_calibration_error(val_logits, val_labels),
        "validation_nll": calibration.negative_log_likelihood(val_logits, val_labels),
        "fitted_temperature": temperature,
        "validation_ece_scaled": calibration.expected_calibration_error(
            val_logits, val_labels, temperature=temperature
        ),
    }
    if data.train_logits is not None:
        confidence = calibration.softmax(data.train_logits).max(-1)
        out.update(
            train_confidence_mean=float(confidence.mean()),
            train_share_above_099=float((confidence > 0.99).mean()),
        )
    return out


# plots --------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(data: ReportData, path: Path) -> None:
    """Validation accuracy against training texts seen (epochs times the training-set size, so
    a transfer-set epoch counts for what it holds), the mean over seeds, one line a variant."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for row in data.rows[1:]:
        curves = [_eval_curve(Path(d)) for d in row["directories"]]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        seen = [point[0] / 1e6 for point in curves[0][:length]]
        accuracy = np.mean([[point[1] for point in c[:length]] for c in curves], axis=0)
        axis.plot(seen, 100 * accuracy, marker="o", markersize=3, label=row["name"])
    axis.axhline(100 * data.rows[0]["validation_accuracy"], color="black", ls="--", label="teacher")
    axis.set(
        xlabel="training texts seen (millions)",
        ylabel="validation accuracy (%), mean over seeds",
        title="Learning curves",
    )
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3)
    _save(figure, path)


def _eval_curve(directory: Path) -> list[tuple[float, float]]:
    """(texts seen, validation accuracy) at each evaluation of one student's training."""
    metrics_path = directory / "metrics.json"
    if not metrics_path.is_file():
        return []
    metrics = json.loads(metrics_path.read_text())
    size = metrics.get("train_examples", 1)
    history = metrics.get("log_history", [])
    return [(h["epoch"] * size, h["eval_accuracy"]) for h in history if "eval_accuracy" in h]


def _speeds(data: ReportData) -> dict[str, float]:
    """Throughput (texts/s, batch 64, the most threads measured) by model: teacher, lstm, gru."""
    speeds: dict[str, float] = {}
    for result in data.benchmarks:
        for model in ("teacher", "student"):
            throughput = result[model]["throughput"]
            key = "teacher" if model == "teacher" else result.get("student_rnn", "student")
            speeds[key] = float(throughput[max(throughput, key=int)])
    return speeds


def plot_accuracy_against(data: ReportData, path: Path, axis_name: str) -> bool:
    """Test accuracy (mean and 95 % interval over seeds) against size (MB) or throughput."""
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
            "mean": row["test_accuracy"],
            "ci_low": row["test_accuracy"],
            "ci_high": row["test_accuracy"],
        }
        points.append((row["name"], x, summary))
    if len(points) < 2:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, x, s in points:
        error = [[100 * (s["mean"] - s["ci_low"])], [100 * (s["ci_high"] - s["mean"])]]
        marker = "*" if name == "teacher" else "o"
        axis.errorbar(x, 100 * s["mean"], yerr=error, fmt=marker, capsize=3, label=name)
    axis.set_xscale("log")
    xlabel = "bytes on disk (MB, log)" if axis_name == "size" else "texts/s, batch 64 (log)"
    axis.set(xlabel=xlabel, ylabel="test accuracy (%), mean and 95 % CI over seeds")
    axis.set_title(f"Accuracy against {'size' if axis_name == 'size' else 'speed'}")
    axis.legend(fontsize=7, ncol=2)
    axis.grid(alpha=0.3, which="both")
    _save(figure, path)
    return True


def plot_confidence(data: ReportData, path: Path) -> bool:
    """Histogram of the teacher's max-softmax confidence on its training texts."""
    if data.train_logits is None:
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
    """Reliability diagram on the validation half: the teacher, temperature-scaled, a student."""
    plt = _pyplot()
    labels = data.labels["validation"]
    teacher = data.logits["teacher"]["validation"][0]
    temperature = calibration.fit_temperature(teacher, labels)
    curves = [("teacher", teacher, 1.0), (f"teacher, T = {temperature:.2f}", teacher, temperature)]
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


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    figure.savefig(tmp, dpi=110)
    tmp.replace(path)
    import matplotlib.pyplot as plt

    plt.close(figure)


# markdown -----------------------------------------------------------------------------------
def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def _interval(summary: dict[str, Any]) -> str:
    return f"[{_pct(summary['ci_low'])}, {_pct(summary['ci_high'])}]"


def variants_table(analysis: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    by_name = {row["name"]: row for row in rows}
    teacher = rows[0]
    lines = [
        "| model | objective | T | trained on | seeds | validation (%) | test (%) | test 95 % CI "
        "| vs baseline (points, 95 % CI) | gap closed | size (MB) | train s |",
        "|---|---|---:|---|---:|---:|---:|---|---|---:|---:|---:|",
        f"| teacher | fine-tuned | | train | 1 | {_pct(teacher['validation_accuracy'])} | "
        f"{_pct(teacher['test_accuracy'])} | | | | {teacher['size_bytes'] / 1e6:.1f} | "
        f"{teacher.get('train_seconds') or 0:.0f} |",
    ]
    for v in analysis["variants"]:
        row = by_name[v["name"]]
        temperature = v["temperature"] if v["objective"] == "kl" else ""
        if isinstance(temperature, float):
            temperature = f"{temperature:g}"
        versus = "-"
        if "against_baseline" in v:
            b = v["against_baseline"]
            versus = f"{_pct(b['difference'], True)} [{_pct(b['ci_low'], True)}, "
            versus += f"{_pct(b['ci_high'], True)}]" + (" *" if b["significant"] else "")
        closed = v.get("gap_closed")
        lines.append(
            f"| {v['name']} | {v['objective']} | {temperature} | {v['transfer_set']} | "
            f"{v['seeds']} | {format_accuracy(v['validation']['mean'], v['validation']['std'])} | "
            f"{format_accuracy(v['test']['mean'], v['test']['std'])} | {_interval(v['test'])} | "
            f"{versus} | {'-' if closed is None else f'{100 * closed:.0f} %'} | "
            f"{row['size_bytes'] / 1e6:.1f} | {row.get('train_seconds') or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _benchmark_section(benchmarks: list[dict[str, Any]]) -> str:
    from distilrnn.benchmark import markdown_table

    parts = ["## Speed and size, teacher against student (one process)\n"]
    for result in benchmarks:
        name = result.get("student_name", result.get("student_rnn", "student"))
        parts.append(f"### {name}\n\n{markdown_table(result)}")
    return "\n".join(parts)


def render(analysis: dict[str, Any], data: ReportData, plots: dict[str, str], title: str) -> str:
    teacher = analysis["teacher"]
    confidence = analysis["teacher_confidence"]
    best = analysis["best_distilled"]
    lines = [
        f"# {title}",
        "",
        "Accuracy is the mean over seeds ± the standard deviation; the 95 % interval is the "
        "Student-t interval of that mean. *vs baseline* is a paired bootstrap over the test "
        "sentences (10,000 resamples; each sentence's correctness averaged over seeds) against "
        "the `ce` student of the same cell; `*` marks an interval that excludes 0. *Gap closed* "
        "is (student - baseline) / (teacher - baseline) on the test means.",
        "",
        variants_table(analysis, data.rows),
    ]
    if best:
        entry = next(v for v in analysis["variants"] if v["name"] == best)
        closed = entry.get("gap_closed")
        lines += [
            f"**Best distilled student, chosen on validation: `{best}`**, test "
            f"{format_accuracy(entry['test']['mean'], entry['test']['std'])} % against the "
            f"teacher's {_pct(teacher['test_accuracy'])} %"
            + (f"; it closes {100 * closed:.0f} % of the baseline-teacher gap." if closed else "."),
            "",
        ]
    lines += [
        "## What the data can resolve",
        "",
        f"The test half has {analysis['test_examples']} sentences: one sentence is "
        f"{100 / analysis['test_examples']:.2f} points, the standard error of one accuracy is "
        f"about {_pct(analysis['standard_error'])} points, and two independent accuracies must "
        f"differ by about {_pct(analysis['resolvable_difference'])} points before a 95 % test "
        "tells them apart. Paired comparisons on the same sentences are sharper, which is why "
        "the table uses the paired bootstrap; differences smaller than the seed spread are noise.",
        "",
        "## Learning curves",
        "",
        f"![learning curves]({plots['learning_curves']})",
        "",
    ]
    for key, caption in (("accuracy_vs_size", "Accuracy against size"), ("accuracy_vs_speed", "")):
        if key in plots:
            lines += [
                f"## {caption or 'Accuracy against speed'}",
                "",
                f"![{key}]({plots[key]})",
                "",
            ]
    lines += ["## The teacher's confidence", ""]
    if "confidence" in plots:
        lines += [
            f"Mean confidence on the training texts {confidence['train_confidence_mean']:.3f}; "
            f"{100 * confidence['train_share_above_099']:.1f} % of them above 0.99.",
            "",
            f"![teacher confidence]({plots['confidence']})",
            "",
        ]
    lines += [
        f"Validation ECE {confidence['validation_ece']:.3f}; the temperature minimising "
        f"validation NLL is {confidence['fitted_temperature']:.2f} (ECE "
        f"{confidence['validation_ece_scaled']:.3f} after scaling).",
        "",
        f"![reliability diagram]({plots['reliability']})",
        "",
    ]
    if data.benchmarks:
        lines.append(_benchmark_section(data.benchmarks))
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    run_dir: Path, benchmark_files: list[Path] = (), title: str = "distilrnn report"
) -> Path:
    """Write run_dir/report.md, its PNG plots and report.json; return the report's path."""
    data = load_report_data(run_dir, list(benchmark_files))
    analysis = analyse(data)
    plots = {"learning_curves": PLOTS["learning_curves"], "reliability": PLOTS["reliability"]}
    plot_learning_curves(data, run_dir / PLOTS["learning_curves"])
    for key, axis_name in (("accuracy_vs_size", "size"), ("accuracy_vs_speed", "speed")):
        if plot_accuracy_against(data, run_dir / PLOTS[key], axis_name):
            plots[key] = PLOTS[key]
    if plot_confidence(data, run_dir / PLOTS["confidence"]):
        plots["confidence"] = PLOTS["confidence"]
    plot_reliability(data, run_dir / PLOTS["reliability"], analysis["best_distilled"])
    write_json_atomic(run_dir / "report.json", analysis)
    path = run_dir / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(analysis, data, plots, title), encoding="utf-8")
    tmp.replace(path)
    logger.info("report: %s", path)
    return path
