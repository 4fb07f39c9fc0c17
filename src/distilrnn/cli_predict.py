"""`distilrnn predict`: classify texts with a bundle. Needs only the runtime install."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distilrnn.errors import DataError, MissingFileError

if TYPE_CHECKING:
    from distilrnn.runtime import Predictor

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
    labelled: Annotated[
        Path | None,
        typer.Option(
            help="Score the bundle on a labelled .tsv / .csv (header line) or .jsonl file: "
            "print its accuracy and the number of examples instead of predictions. Labels are "
            "the bundle's label names or ids."
        ),
    ] = None,
    text_column: Annotated[
        str, typer.Option(help="With --labelled: the column holding the text.")
    ] = "sentence",
    label_column: Annotated[
        str, typer.Option(help="With --labelled: the column holding the label.")
    ] = "label",
    header: Annotated[
        bool,
        typer.Option(
            help="With --labelled: a TSV / CSV file starts with a header line; --no-header: the "
            "columns are 0-based positions (SentEval: --text-column 1 --label-column 0)."
        ),
    ] = True,
) -> None:
    """Classify texts with an exported bundle: labels and probabilities, or with --labelled its
    accuracy on a labelled file. Needs only `distilrnn[runtime]` (onnxruntime, tokenizers,
    numpy), no torch."""
    from distilrnn.runtime import Predictor

    if labelled is not None:
        if texts or file is not None:
            raise DataError("--labelled scores a file: give no texts and no --file with it")
        predictor = Predictor(bundle, batch_size=batch_size, threads=threads)
        columns = (text_column, label_column)
        _score(predictor, labelled, columns, header, output_format)
        return
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


def _score(
    predictor: Predictor,
    path: Path,
    columns: tuple[str, str],
    header: bool,
    output_format: OutputFormat,
) -> None:
    """Print the bundle's accuracy on the labelled file `path` (text and label `columns`)."""
    from distilrnn.labelled import label_ids, read_labelled

    texts, raw_labels, numbers = read_labelled(path, *columns, header=header)
    where = [f"{path}:{number}" for number in numbers]
    score = predictor.score(texts, label_ids(raw_labels, predictor.labels, where))
    if output_format is OutputFormat.jsonl:
        record = {"file": str(path), "examples": score.examples, "correct": score.correct}
        typer.echo(json.dumps({**record, "accuracy": score.accuracy}))
        return
    console.print(
        f"accuracy {100 * score.accuracy:.2f} % ({score.correct} of {score.examples} examples) "
        f"on {escape(str(path))}",
        highlight=False,
    )


def _predict_inputs(texts: list[str] | None, file: Path | None) -> list[str]:
    """The texts to classify: the arguments, the file's lines, or stdin's lines."""
    from distilrnn.labelled import decoded_lines
    from distilrnn.runtime import texts_from_lines

    if texts and file is not None:
        raise DataError("give the texts as arguments or with --file, not both")
    if texts:
        return list(texts)
    if file is not None:
        if not file.is_file():
            raise MissingFileError(f"text file not found: {file}")
        with file.open("rb") as handle:
            lines = texts_from_lines(line for _, line in decoded_lines(handle, str(file)))
        if not lines:
            raise DataError(f"no texts to classify: {file} holds no non-blank line")
        return lines
    if sys.stdin.isatty():
        raise DataError("no texts to classify: give them as arguments, with --file, or on stdin")
    lines = texts_from_lines(_stdin_lines())
    if not lines:
        raise DataError("no texts to classify: stdin held no non-blank line")
    return lines


def _stdin_lines() -> list[str]:
    """stdin's lines, decoded as UTF-8 here (from its bytes where it has them), so that a bad
    byte sequence is a `DataError` naming the line."""
    from distilrnn.labelled import decoded_lines

    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return [line for _, line in decoded_lines(buffer, "stdin")]
    lines = []
    try:
        for line in sys.stdin:
            lines.append(line)
    except UnicodeDecodeError as error:
        raise DataError(f"stdin:{len(lines) + 1}: not valid UTF-8 ({error.reason})") from None
    return lines
