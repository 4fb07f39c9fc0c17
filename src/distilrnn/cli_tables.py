"""The CLI's tables: results of a run and the summary of an export (rich, to a console)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_results(console: Console, results: dict[str, Any], test_examples: int = 0) -> None:
    """The results table of `distilrnn run` / `evaluate` / `report`, and, when a row rests on
    one seed, what a difference on `test_examples` test texts can and cannot show (accuracy
    only). The metric columns are the task's: "val acc", "test acc"; "test F1"; "test Pearson"."""
    from distilrnn.evaluate import METRIC_LABELS, metric_cell, metric_names

    table = Table(title=f"distilrnn results: {results['run_dir']}")
    names = metric_names(results["rows"][0] if results["rows"] else results)
    metric_columns = [(split, name) for split in ("validation", "test") for name in names]
    short = {"validation": "val", "test": "test"}
    columns = (
        "model", "objective", "seeds",
        *(f"{short[s]} {METRIC_LABELS.get(n, n)}" for s, n in metric_columns),
        "params", "trainable", "embedding", "size MB", "train s",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "objective") else "right")
    for row in results["rows"]:
        table.add_row(
            row["name"],
            row["objective"],
            str(row["seeds"]),
            *(metric_cell(row, split, name) for split, name in metric_columns),
            f"{row['parameters']['total'] / 1e6:.2f} M",
            f"{row['parameters']['trainable'] / 1e6:.2f} M",
            f"{row['parameters']['embedding'] / 1e6:.2f} M",
            f"{row['size_bytes'] / 1e6:.1f}",
            f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "-",
        )
    console.print(table)
    note = resolution_note(results, test_examples)
    if note:
        console.print(note)


def print_export_summary(console: Console, summary: dict[str, Any]) -> None:
    """Files, compression and measurements of a bundle `distilrnn export` wrote."""
    table = Table(title=f"bundle: {summary['bundle_dir']}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for name, size in summary["files"].items():
        table.add_row(name, f"{size:,}")
    table.add_row("bundle", f"{summary['bundle_bytes']:,}")
    console.print(table)
    factorised = summary["compression"]["embedding_rank"]
    if factorised:
        console.print(
            f"embedding factorised: {factorised['from_width']} -> {factorised['rank']} columns "
            f"(tokens weighted: {factorised['token_weights']})"
        )
    pruning = summary["compression"]["prune_vocab"]
    if pruning:
        console.print(
            f"vocabulary pruning: {pruning['kept_rows']:,} of {pruning['vocab_size']:,} rows "
            f"kept, {pruning['bytes_saved']:,} bytes saved"
        )
    folded = summary["compression"].get("fold_first_layer")
    if folded:
        console.print(
            f"first convolution folded into the table: {folded['table_rows']:,} rows x "
            f"{folded['table_columns']:,} columns"
        )
    quantized = summary["compression"]["quantize"]
    if quantized:
        bits = " (embedding 4-bit)" if quantized["embedding_bits"] == 4 else ""
        console.print(
            f"int8 quantisation{bits}: model.onnx {quantized['float_model_bytes']:,} -> "
            f"{summary['files']['model.onnx']:,} bytes"
        )
    evaluation = summary["evaluation"]
    if evaluation:
        delta = evaluation["delta_points"]
        metric = evaluation.get("metric", "accuracy")
        value = evaluation.get("value", evaluation.get("accuracy"))
        shown = f"{100 * value:.2f} %" if metric in ("accuracy", "f1") else f"{value:.4f}"
        console.print(
            f"test {metric}: {shown} on {evaluation['examples']} "
            "texts" + ("" if delta is None else f" ({delta:+.2f} points against the student)")
        )
    latency = summary["latency_ms"]
    console.print(
        f"one-sentence latency (1 thread): p50 {latency['p50']:.3f} ms, p90 {latency['p90']:.3f} ms"
    )


def resolution_note(results: dict[str, Any], test_examples: int) -> str | None:
    """A caption for a table with single-seed rows: the smallest difference the test split
    resolves (`stats.resolvable_difference` at the teacher's accuracy). That formula is the
    difference of two proportions, so a task without accuracy (regression) gets no caption."""
    from distilrnn.stats import resolvable_difference

    rows = results["rows"]
    if not test_examples or not any(row["seeds"] == 1 for row in rows[1:]):
        return None
    if "test_accuracy" not in rows[0]:  # a proportion's formula: says nothing of F1 or Pearson
        return None
    accuracy = min(max(rows[0]["test_accuracy"], 0.01), 0.99)
    points = 100 * resolvable_difference(test_examples, accuracy)
    return (
        f"one seed on {test_examples} test texts: a difference under about {points:.1f} points "
        "between two rows is not resolved; train more seeds (student.seeds) and read the "
        "report's paired bootstrap before calling one student better"
    )
