"""The CLI's tables: results of a run and the summary of an export (rich, to a console)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_results(console: Console, results: dict[str, Any], test_examples: int = 0) -> None:
    """The results table of `distilrnn run` / `evaluate` / `report`, and, when a row rests on
    one seed, what a difference on `test_examples` test texts can and cannot show."""
    from distilrnn.evaluate import format_accuracy

    table = Table(title=f"distilrnn results: {results['run_dir']}")
    columns = (
        "model", "objective", "seeds", "val acc", "test acc", "params", "trainable", "embedding",
        "size MB", "train s",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "objective") else "right")
    for row in results["rows"]:
        table.add_row(
            row["name"],
            row["objective"],
            str(row["seeds"]),
            format_accuracy(row["validation_accuracy"], row.get("validation_accuracy_std")),
            format_accuracy(row["test_accuracy"], row.get("test_accuracy_std")),
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
        console.print(
            f"test accuracy: {100 * evaluation['accuracy']:.2f} % on {evaluation['examples']} "
            "texts" + ("" if delta is None else f" ({delta:+.2f} points against the student)")
        )
    latency = summary["latency_ms"]
    console.print(
        f"one-sentence latency (1 thread): p50 {latency['p50']:.3f} ms, p90 {latency['p90']:.3f} ms"
    )


def resolution_note(results: dict[str, Any], test_examples: int) -> str | None:
    """A caption for a table with single-seed rows: the smallest difference the test split
    resolves (`stats.resolvable_difference` at the teacher's accuracy)."""
    from distilrnn.stats import resolvable_difference

    rows = results["rows"]
    if not test_examples or not any(row["seeds"] == 1 for row in rows[1:]):
        return None
    accuracy = min(max(rows[0]["test_accuracy"], 0.01), 0.99)
    points = 100 * resolvable_difference(test_examples, accuracy)
    return (
        f"one seed on {test_examples} test texts: a difference under about {points:.1f} points "
        "between two rows is not resolved; train more seeds (student.seeds) and read the "
        "report's paired bootstrap before calling one student better"
    )
