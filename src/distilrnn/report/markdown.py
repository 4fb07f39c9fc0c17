"""`report.md`: the variants table, what the test half can resolve, the plots and the
benchmarks, rendered from the analysis."""

from __future__ import annotations

from typing import Any

from distilrnn.evaluate import METRIC_LABELS, PERCENT_METRICS, format_metric
from distilrnn.report.data import ReportData


def _pct(value: float | None, signed: bool = False, metric: str = "accuracy") -> str:
    """A metric value: percent for accuracy and F1, a correlation with 3 decimals."""
    if value is None:
        return "-"
    if metric not in PERCENT_METRICS:
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def _interval(summary: dict[str, Any], metric: str = "accuracy") -> str:
    """The 95 % interval over seeds; one seed has none (n/a), not `[x, x]`."""
    if summary.get("n", 2) < 2 or summary["ci_low"] == summary["ci_high"]:
        return "n/a"
    return f"[{_pct(summary['ci_low'], metric=metric)}, {_pct(summary['ci_high'], metric=metric)}]"


def _versus(comparison: dict[str, Any] | None, metric: str = "accuracy") -> str:
    """A paired bootstrap as `+d [low, high]`, starred when the interval excludes 0."""
    if comparison is None:
        return "-"
    b = comparison
    versus = f"{_pct(b['difference'], True, metric)} [{_pct(b['ci_low'], True, metric)}, "
    return versus + f"{_pct(b['ci_high'], True, metric)}]" + (" *" if b["significant"] else "")


def _title(metric: str) -> str:
    """A metric's name in prose and headings: Accuracy, F1, Pearson, Spearman."""
    return "Accuracy" if metric == "accuracy" else METRIC_LABELS.get(metric, metric)


def _mean_std(summary: dict[str, Any]) -> dict[str, float]:
    return {"mean": summary["mean"], "std": summary["std"]}


def variants_table(
    analysis: dict[str, Any], rows: list[dict[str, Any]], metric: str | None = None
) -> str:
    """The variants on one metric of the task (default: the primary one)."""
    metric = metric or analysis.get("metrics", ["accuracy"])[0]
    percent = metric in PERCENT_METRICS
    by_name = {row["name"]: row for row in rows}
    teacher = rows[0]
    unit, points = (" (%)", "points, ") if percent else ("", "")
    lines = [
        f"| model | objective | T | trained on | seeds | validation{unit} | test{unit} | "
        f"test 95 % CI | vs baseline ({points}95 % CI) | gap closed | size (MB) | train s |",
        "|---|---|---:|---|---:|---:|---:|---|---|---:|---:|---:|",
        f"| teacher | fine-tuned | | train | 1 | "
        f"{_pct(teacher[f'validation_{metric}'], metric=metric)} | "
        f"{_pct(teacher[f'test_{metric}'], metric=metric)} | | | | "
        f"{teacher['size_bytes'] / 1e6:.1f} | {teacher.get('train_seconds') or 0:.0f} |",
    ]
    ensemble = analysis.get("teacher_ensemble")
    if ensemble:
        lines.append(
            f"| teacher ensemble | {ensemble['objective']} | | train | 1 | "
            f"{_pct(ensemble[f'validation_{metric}'], metric=metric)} | "
            f"{_pct(ensemble[f'test_{metric}'], metric=metric)} | | | | "
            f"{ensemble['size_bytes'] / 1e6:.1f} | {ensemble.get('train_seconds') or 0:.0f} |"
        )
    for entry in analysis["variants"]:
        v = {**entry, **entry.get("metrics", {}).get(metric, {})}
        row = by_name[v["name"]]
        temperature = v["temperature"] if v["objective"] == "kl" else ""
        if isinstance(temperature, float):
            temperature = f"{temperature:g}"
        closed = v.get("gap_closed")
        lines.append(
            f"| {v['name']} | {v['objective']} | {temperature} | {v['transfer_set']} | "
            f"{v['seeds']} | {format_metric(metric, **_mean_std(v['validation']))} | "
            f"{format_metric(metric, **_mean_std(v['test']))} | "
            f"{_interval(v['test'], metric)} | {_versus(v.get('against_baseline'), metric)} | "
            f"{'-' if closed is None else f'{100 * closed:.0f} %'} | "
            f"{row['size_bytes'] / 1e6:.1f} | {row.get('train_seconds') or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _benchmark_section(benchmarks: list[dict[str, Any]]) -> str:
    from distilrnn.bench import markdown_table

    parts = ["## Speed and size, teacher against student (one process)\n"]
    for result in benchmarks:
        name = result.get("student_name", result.get("student_rnn", "student"))
        parts.append(f"### {name}\n\n{markdown_table(result)}")
    return "\n".join(parts)


def _frontier_section(frontier: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """frontier.json (`benchmarks/frontier.py`): its Pareto plot, table and time breakdown."""
    from distilrnn.bench.frontier_report import breakdown_table, frontier_table

    lines = ["## Speed frontier", ""]
    if "frontier" in plots:
        lines += [f"![frontier]({plots['frontier']})", ""]
    breakdown = ["Where the time goes (batch 64, one thread):", "", breakdown_table(frontier)]
    return [*lines, frontier_table(frontier), *breakdown]


def _best_line(analysis: dict[str, Any]) -> list[str]:
    best = analysis["best_distilled"]
    if not best:
        return []
    entry = next(v for v in analysis["variants"] if v["name"] == best)
    metric = analysis.get("metrics", ["accuracy"])[0]
    closed = entry.get("gap_closed")
    unit = " %" if metric in PERCENT_METRICS else ""
    label = "" if metric == "accuracy" else f"{_title(metric)} "
    return [
        f"**Best distilled student, chosen on validation: `{best}`**, test {label}"
        f"{format_metric(metric, entry['test']['mean'], entry['test']['std'])}{unit} against the "
        f"teacher's {_pct(analysis['teacher'][f'test_{metric}'], metric=metric)}{unit}"
        + (f"; it closes {100 * closed:.0f} % of the baseline-teacher gap." if closed else "."),
        "",
    ]


def _resolution(analysis: dict[str, Any]) -> list[str]:
    """What the test half resolves: a formula for accuracy (a proportion), so a task not
    scored by accuracy (regression) gets no such section."""
    if analysis.get("resolvable_difference") is None:
        return []
    return [
        "## What the data can resolve",
        "",
        f"The test half has {analysis['test_examples']} sentences: one sentence is "
        f"{100 / analysis['test_examples']:.2f} points, the standard error of one accuracy is "
        f"about {_pct(analysis['standard_error'])} points, and two independent accuracies must "
        f"differ by about {_pct(analysis['resolvable_difference'])} points before a 95 % test "
        "tells them apart. Paired comparisons on the same sentences are sharper, which is why "
        "the table uses the paired bootstrap; differences smaller than the seed spread are noise.",
        "",
    ]


def _confidence_section(analysis: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """The teacher's confidence and calibration; none for regression (no probabilities)."""
    confidence = analysis["teacher_confidence"]
    if confidence is None or "reliability" not in plots:
        return []
    whose = "teacher ensemble's" if confidence.get("source") == "teacher ensemble" else "teacher's"
    lines = [f"## The {whose} confidence", ""]
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
    return lines


def _legend(names: list[str]) -> str:
    """How to read the tables; an accuracy-only task's words are those it always had."""
    if names == ["accuracy"]:
        return (
            "Accuracy is the mean over seeds ± the standard deviation; the 95 % interval is the "
            "Student-t interval of that mean. *vs baseline* is a paired bootstrap over the test "
            "sentences (10,000 resamples; each sentence's correctness averaged over seeds) against "
            "the `ce` student of the same cell; `*` marks an interval that excludes 0. *Gap "
            "closed* is (student - baseline) / (teacher - baseline) on the test means."
        )
    labels = ", ".join(_title(name) for name in names)
    return (
        f"One table per metric ({labels}); each value is the mean over seeds ± the standard "
        "deviation, and the 95 % interval is the Student-t interval of that mean. *vs baseline* "
        "is a paired bootstrap over the test examples (pairs, for a pair task; 10,000 "
        "resamples, the metric recomputed on each) against the `ce` student of the same cell "
        "and pair design: "
        "each example's prediction is the seeds' mean score for a correlation, their majority "
        "label for F1, and its correctness averaged over seeds for accuracy; `*` marks an "
        "interval that excludes 0. *Gap closed* is (student - baseline) / (teacher - baseline) "
        "on the test means. Accuracy and F1 are in percent, correlations as they are."
    )


def render(analysis: dict[str, Any], data: ReportData, plots: dict[str, str], title: str) -> str:
    """The whole of report.md; `plots` maps plot keys to the file names written."""
    names = analysis.get("metrics", ["accuracy"])
    lines = [f"# {title}", "", _legend(names), ""]
    if len(names) == 1:
        lines.append(variants_table(analysis, data.rows, names[0]))
    for name in names if len(names) > 1 else []:
        primary = " (primary: it chooses the best student)" if name == names[0] else ""
        lines += [f"### {_title(name)}{primary}", "", variants_table(analysis, data.rows, name)]
    lines += [
        *_best_line(analysis),
        *_resolution(analysis),
        "## Learning curves",
        "",
        f"![learning curves]({plots['learning_curves']})",
        "",
    ]
    for key, caption in (
        ("accuracy_vs_size", "Accuracy against size"),
        ("accuracy_vs_speed", "Accuracy against speed"),
    ):
        if key in plots:
            lines += [f"## {caption}", "", f"![{key}]({plots[key]})", ""]
    if data.frontier is not None:
        lines += _frontier_section(data.frontier, plots)
    lines += _confidence_section(analysis, plots)
    studies = [key for key in plots if key.startswith("study:")]
    if studies:  # `distilrnn tune`: each trial's validation score and the best so far
        lines += ["## Hyper-parameter search", ""]
        for key in studies:
            lines += [f"Study `{key.removeprefix('study:')}`:", "", f"![{key}]({plots[key]})", ""]
    if data.benchmarks:
        lines.append(_benchmark_section(data.benchmarks))
    return "\n".join(lines).rstrip() + "\n"
