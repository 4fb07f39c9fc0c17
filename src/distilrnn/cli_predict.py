"""`distilrnn predict`: classify texts with a bundle. Needs only the runtime install."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="A pair bundle: read the pairs from a file of two tab-separated columns a line "
            "(text, text_pair; no header). Without it a pair bundle reads JSON lines "
            '{"text": ..., "text_pair": ...} on stdin.',
        ),
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
        str | None,
        typer.Option(
            help="With --labelled: the column holding the text (default: sentence; a pair "
            "bundle: text)."
        ),
    ] = None,
    pair_column: Annotated[
        str,
        typer.Option(help="With --labelled and a pair bundle: the column of the second text."),
    ] = "text_pair",
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
    """Classify texts (or pairs of texts) with an exported bundle: labels and probabilities (a
    regression bundle: scores), or with --labelled its metrics on a labelled file. Needs only
    `distilrnn[runtime]` (onnxruntime, tokenizers, numpy), no torch."""
    from distilrnn.runtime import Predictor

    if labelled is not None:
        if texts or file is not None or pairs is not None:
            raise DataError("--labelled scores a file: give no texts, --file or --pairs with it")
        predictor = Predictor(bundle, batch_size=batch_size, threads=threads)
        text = text_column or ("text" if predictor.is_pair else "sentence")
        columns = (text, label_column, pair_column if predictor.is_pair else None)
        _score(predictor, labelled, columns, header, output_format)
        return
    predictor = Predictor(bundle, batch_size=batch_size, threads=threads)
    if pairs is not None or predictor.is_pair:
        inputs = _pair_inputs(texts, file, pairs)
    else:
        inputs = _predict_inputs(texts, file)
    predictions = predictor.predict(inputs)
    if output_format is OutputFormat.jsonl:
        for prediction in predictions:
            typer.echo(json.dumps(prediction.to_dict(), ensure_ascii=False))
        return
    table = Table()
    table.add_column("text", overflow="fold")
    if predictor.is_pair:
        table.add_column("text_pair", overflow="fold")
    first = [escape(p.text) for p in predictions]
    second = [[escape(p.text_pair or "")] if predictor.is_pair else [] for p in predictions]
    if predictions[0].score is not None:
        table.add_column("score", justify="right")
        for text, pair, prediction in zip(first, second, predictions, strict=True):
            table.add_row(text, *pair, f"{prediction.score:.4f}")
        console.print(table)
        return
    labels = list(predictions[0].probabilities or {})
    table.add_column("label")
    for name in labels:
        table.add_column(f"p({escape(name)})", justify="right")
    for text, pair, prediction in zip(first, second, predictions, strict=True):
        probabilities = prediction.probabilities or {}
        table.add_row(
            text,
            *pair,
            escape(prediction.label or ""),
            *(f"{probabilities[name]:.4f}" for name in labels),
        )
    console.print(table)


def _score(
    predictor: Predictor,
    path: Path,
    columns: tuple[str, str, str | None],
    header: bool,
    output_format: OutputFormat,
) -> None:
    """Print the bundle's metrics on the labelled file `path` (text, label and, for a pair
    bundle, second-text `columns`): accuracy (and the task's others) for a classifier, pearson
    and spearman for a regression bundle."""
    from distilrnn.labelled import label_ids, label_scores, read_labelled

    text_column, label_column, pair_column = columns
    inputs, raw_labels, numbers = read_labelled(
        path, text_column, label_column, header=header, pair_column=pair_column
    )
    where = [f"{path}:{number}" for number in numbers]
    if predictor.task_type == "regression":
        labels: list[Any] = label_scores(raw_labels, where)
    else:
        labels = label_ids(raw_labels, predictor.labels, where)
    score = predictor.score(inputs, labels)
    if output_format is OutputFormat.jsonl:
        record: dict[str, Any] = {"file": str(path), "examples": score.examples}
        if score.correct is not None:
            record["correct"] = score.correct
        typer.echo(json.dumps({**record, **score.metrics}))
        return
    if score.correct is not None:
        others = "".join(
            f", {name} {100 * value:.2f} %"
            for name, value in score.metrics.items()
            if name != "accuracy"
        )
        console.print(
            f"accuracy {100 * score.accuracy:.2f} %{others} ({score.correct} of "
            f"{score.examples} examples) on {escape(str(path))}",
            highlight=False,
        )
        return
    shown = ", ".join(f"{name} {value:.4f}" for name, value in score.metrics.items())
    console.print(f"{shown} ({score.examples} examples) on {escape(str(path))}", highlight=False)


def _pair_inputs(
    texts: list[str] | None, file: Path | None, pairs: Path | None
) -> list[tuple[str, str]]:
    """The pairs to predict: the `--pairs` file's two tab-separated columns, or stdin's JSON
    lines `{"text": ..., "text_pair": ...}`."""
    from distilrnn.labelled import jsonl_records, read_pairs

    if texts or file is not None:
        raise DataError(
            "a pair bundle reads pairs: give them with --pairs FILE (text<TAB>text_pair a line) "
            'or as JSON lines {"text": ..., "text_pair": ...} on stdin, not as texts or --file'
        )
    if pairs is not None:
        return read_pairs(pairs)
    if sys.stdin.isatty():
        raise DataError("no pairs to predict: give them with --pairs or as JSON lines on stdin")
    lines = [(n, line) for n, line in enumerate(_stdin_lines(), 1) if line.strip()]
    if not lines:
        raise DataError("no pairs to predict: stdin held no non-blank line")
    inputs = []
    for number, (text, pair) in jsonl_records(Path("stdin"), lines, ("text", "text_pair")):
        if not isinstance(text, str) or not isinstance(pair, str):
            raise DataError(f"stdin:{number}: text and text_pair must be strings")
        inputs.append((text, pair))
    return inputs


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
