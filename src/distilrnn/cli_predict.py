"""`distilrnn predict`: classify texts with a bundle. Needs only the runtime install."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distilrnn.errors import DataError, MissingFileError

console = Console(width=None if sys.stdout.isatty() else 140)


class OutputFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `distilrnn export`.")],
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to classify; none: --file, else stdin (one text a line)."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the texts from a file, one a line.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="A table, or one JSON object a line.")
    ] = OutputFormat.table,
    batch_size: Annotated[int, typer.Option(help="Texts per model call.")] = 64,
    threads: Annotated[int, typer.Option(help="onnxruntime threads (0: its default).")] = 1,
) -> None:
    """Classify texts with an exported bundle: labels and probabilities. Needs only
    `distilrnn[runtime]` (onnxruntime, tokenizers, numpy), no torch."""
    from distilrnn.runtime import Predictor

    inputs = _predict_inputs(texts, file)
    predictions = Predictor(bundle, batch_size=batch_size, threads=threads).predict(inputs)
    if output_format is OutputFormat.jsonl:
        for prediction in predictions:
            typer.echo(json.dumps(prediction.to_dict(), ensure_ascii=False))
        return
    labels = list(predictions[0].probabilities)
    table = Table()
    table.add_column("text", overflow="fold")
    table.add_column("label")
    for name in labels:
        table.add_column(f"p({escape(name)})", justify="right")
    for prediction in predictions:
        table.add_row(
            escape(prediction.text),
            escape(prediction.label),
            *(f"{prediction.probabilities[name]:.4f}" for name in labels),
        )
    console.print(table)


def _predict_inputs(texts: list[str] | None, file: Path | None) -> list[str]:
    """The texts to classify: the arguments, the file's lines, or stdin's lines."""
    from distilrnn.runtime import texts_from_lines

    if texts and file is not None:
        raise DataError("give the texts as arguments or with --file, not both")
    if texts:
        return list(texts)
    if file is not None:
        if not file.is_file():
            raise MissingFileError(f"text file not found: {file}")
        with file.open(encoding="utf-8") as handle:
            lines = texts_from_lines(handle)
        if not lines:
            raise DataError(f"no texts to classify: {file} holds no non-blank line")
        return lines
    if sys.stdin.isatty():
        raise DataError("no texts to classify: give them as arguments, with --file, or on stdin")
    lines = texts_from_lines(sys.stdin)
    if not lines:
        raise DataError("no texts to classify: stdin held no non-blank line")
    return lines
