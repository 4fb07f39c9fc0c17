"""`report.md`: the variants table, what the test half can resolve, the plots and the
benchmarks, rendered from the analysis."""

from __future__ import annotations

from typing import Any

from distilrnn.evaluate import format_accuracy
from distilrnn.report.data import ReportData


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def _interval(summary: dict[str, Any]) -> str:
    """The 95 % interval over seeds; one seed has none (n/a), not `[x, x]`."""
    if summary.get("n", 2) < 2 or summary["ci_low"] == summary["ci_high"]:
        return "n/a"
    return f"[{_pct(summary['ci_low'])}, {_pct(summary['ci_high'])}]"


def _versus(comparison: dict[str, Any] | None) -> str:
    """A paired bootstrap as `+d [low, high]`, starred when the interval excludes 0."""
    if comparison is None:
        return "-"
    b = comparison
    versus = f"{_pct(b['difference'], True)} [{_pct(b['ci_low'], True)}, "
    return versus + f"{_pct(b['ci_high'], True)}]" + (" *" if b["significant"] else "")


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
        closed = v.get("gap_closed")
        lines.append(
            f"| {v['name']} | {v['objective']} | {temperature} | {v['transfer_set']} | "
            f"{v['seeds']} | {format_accuracy(v['validation']['mean'], v['validation']['std'])} | "
            f"{format_accuracy(v['test']['mean'], v['test']['std'])} | {_interval(v['test'])} | "
            f"{_versus(v.get('against_baseline'))} | "
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


def _best_line(analysis: dict[str, Any]) -> list[str]:
    best = analysis["best_distilled"]
    if not best:
        return []
    entry = next(v for v in analysis["variants"] if v["name"] == best)
    closed = entry.get("gap_closed")
    return [
        f"**Best distilled student, chosen on validation: `{best}`**, test "
        f"{format_accuracy(entry['test']['mean'], entry['test']['std'])} % against the "
        f"teacher's {_pct(analysis['teacher']['test_accuracy'])} %"
        + (f"; it closes {100 * closed:.0f} % of the baseline-teacher gap." if closed else "."),
        "",
    ]


def _resolution(analysis: dict[str, Any]) -> list[str]:
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
    confidence = analysis["teacher_confidence"]
    lines = ["## The teacher's confidence", ""]
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


def render(analysis: dict[str, Any], data: ReportData, plots: dict[str, str], title: str) -> str:
    """The whole of report.md; `plots` maps plot keys to the file names written."""
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
    lines += _confidence_section(analysis, plots)
    if data.benchmarks:
        lines.append(_benchmark_section(data.benchmarks))
    return "\n".join(lines).rstrip() + "\n"
