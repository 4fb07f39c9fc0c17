"""Command line: parse flags and the TOML config, then call the pipeline; nothing else."""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from distilrnn.config import ConfigError, RunConfig, describe_settings, load_config

# What `distilrnn[train]` adds to the runtime install; a command that needs one of them fails
# with a pointer to the extra instead of a traceback (see `main`). Keep this module's own imports
# free of them, so that `distilrnn predict` runs with `distilrnn[runtime]` alone.
TRAINING_MODULES = frozenset(
    {
        "accelerate",
        "datasets",
        "matplotlib",
        "onnx",
        "onnxscript",
        "safetensors",
        "spacy",
        "torch",
        "tqdm",
        "transformers",
    }
)

console = Console(width=None if sys.stdout.isatty() else 140)
SETTINGS_EPILOG = "Every config setting, with its default and meaning: `distilrnn settings`."
app = typer.Typer(
    help="Distil fine-tuned transformer text classifiers into small, fast LSTM/GRU students.\n\n"
    "Every stage reads one TOML config; `--set section.key=value` overrides any setting "
    "(see `distilrnn settings`).",
    no_args_is_help=True,
    add_completion=False,
)

ConfigArg = Annotated[
    Path | None, typer.Argument(help="TOML config (see configs/); omitted: defaults.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting: section.key=value (TOML value)."),
]
RunDirOpt = Annotated[str | None, typer.Option("--run-dir", help="Override run_dir.")]
ForceOpt = Annotated[
    list[str] | None,
    typer.Option("--force", help="Rebuild this stage even if a complete copy exists."),
]
DeviceOpt = Annotated[str, typer.Option(help="torch device for the teacher and students.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _config(config: Path | None, overrides: list[str] | None, run_dir: str | None) -> RunConfig:
    overrides = list(overrides or [])
    if run_dir:
        overrides.append(f'run_dir="{run_dir}"')
    return load_config(config, overrides)


def _pipeline(config, overrides, run_dir, force, device, verbose, only=None):
    from distilrnn.pipeline import Pipeline

    _setup_logging(verbose)
    return Pipeline(
        _config(config, overrides, run_dir),
        device=device,
        force=tuple(force or ()),
        only=tuple(only or ()),
    )


def print_results(results: dict) -> None:
    from distilrnn.evaluate import format_accuracy

    table = Table(title=f"distilrnn results: {results['run_dir']}")
    for column in (
        "model",
        "objective",
        "seeds",
        "val acc",
        "test acc",
        "params",
        "trainable",
        "embedding",
        "size MB",
        "train s",
    ):
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


@app.command(epilog=SETTINGS_EPILOG)
def run(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Run every stage (data, teacher, label, student, evaluate), reusing finished ones."""
    pipeline = _pipeline(config, set_, run_dir, force, device, verbose)
    results = pipeline.run()
    print_results(results)
    console.print(f"reused: {', '.join(pipeline.reused) or 'nothing'}")
    console.print(f"built: {', '.join(pipeline.built) or 'nothing'}")


@app.command(epilog=SETTINGS_EPILOG)
def data(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Load, validate and split the task; save the splits and label names."""
    pipeline = _pipeline(config, set_, run_dir, force, "cpu", verbose)
    task, _ = pipeline.data()
    sizes = {split: len(task.splits[split]) for split in task.splits}
    console.print(f"labels: {task.label_names}; sizes: {sizes}")


@app.command(epilog=SETTINGS_EPILOG)
def teacher(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Fine-tune the teacher (or check a fine-tuned one) and report its accuracy."""
    pipeline = _pipeline(config, set_, run_dir, force, device, verbose)
    task, data_fp = pipeline.data()
    teacher_dir, _ = pipeline.teacher(task, data_fp)
    metrics = json.loads((teacher_dir.parent / "metrics.json").read_text())
    console.print(
        f"teacher at {teacher_dir}: validation {100 * metrics['validation_accuracy']:.2f} %, "
        f"test {100 * metrics['test_accuracy']:.2f} %"
    )


@app.command(epilog=SETTINGS_EPILOG)
def augment(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Build the transfer set: the training texts plus perturbed copies (Tang et al. 2019)."""
    pipeline = _pipeline(config, set_, run_dir, force, "cpu", verbose)
    task, data_fp = pipeline.data()
    teacher_dir, _ = pipeline.teacher(task, data_fp)
    transfer, _ = pipeline.augment(task, data_fp, teacher_dir)
    console.print(f"transfer set: {len(transfer)} texts ({len(task.splits['train'])} training)")


@app.command(epilog=SETTINGS_EPILOG)
def label(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Record the teacher's logits for the training texts (sharded, resumable)."""
    pipeline = _pipeline(config, set_, run_dir, force, device, verbose)
    task, data_fp = pipeline.data()
    teacher_output = pipeline.teacher(task, data_fp)
    texts = pipeline.transfer_texts(task, data_fp, teacher_output[0])
    labelled, _ = pipeline.label(*texts, *teacher_output)
    console.print(f"{len(labelled)} texts labelled")


@app.command(epilog=SETTINGS_EPILOG)
def student(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    force: ForceOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
    variant: Annotated[
        list[str] | None, typer.Option(help="Train only these variants (default: all).")
    ] = None,
) -> None:
    """Train the student variants (each seed), reusing finished ones."""
    pipeline = _pipeline(config, set_, run_dir, force, device, verbose, only=variant)
    task, data_fp = pipeline.data()
    teacher_output = pipeline.teacher(task, data_fp)
    labelled = pipeline.labelled(task, data_fp, teacher_output)
    for directory in pipeline.students(task, teacher_output, data_fp, labelled):
        metrics = json.loads((directory / "metrics.json").read_text())
        console.print(
            f"{directory}: validation {100 * metrics['validation_accuracy']:.2f} %, "
            f"test {100 * metrics['test_accuracy']:.2f} %"
        )


@app.command(epilog=SETTINGS_EPILOG)
def evaluate(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Collect the finished models' metrics into results.json / results.md and print the table."""
    pipeline = _pipeline(config, set_, run_dir, None, device, verbose)
    print_results(pipeline.evaluate_finished())


@app.command(epilog=SETTINGS_EPILOG)
def report(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Write report.md with its plots (learning curves, accuracy against size and speed, the
    teacher's confidence, reliability) and the seed statistics, from a finished run."""
    pipeline = _pipeline(config, set_, run_dir, None, device, verbose)
    print_results(pipeline.evaluate_finished())
    console.print(f"report: {pipeline.report()}")


@app.command()
def export(
    student_dir: Annotated[
        Path,
        typer.Argument(
            help="A student folder (RUN/students/VARIANT/seed-N), or a run folder with --variant."
        ),
    ],
    output_dir: Annotated[
        Path, typer.Argument(help="Bundle folder to write; a bundle already there is replaced.")
    ],
    variant: Annotated[
        str | None, typer.Option(help="With a run folder: the student variant to export.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="With --variant: its seed (default: the lowest trained).")
    ] = None,
    prune_vocab: Annotated[
        str | None,
        typer.Option(
            "--prune-vocab",
            help="Keep only the embedding rows of tokens in these texts: `transfer` (the run's "
            "transfer set), a text file (one text a line) or a datasets folder with `text`.",
        ),
    ] = None,
    quantize: Annotated[
        bool, typer.Option("--quantize", help="Quantise the weights to int8 (dynamic).")
    ] = False,
    embedding_bits: Annotated[
        int,
        typer.Option(
            "--embedding-bits",
            help="With --quantize: 8, or 4 to store the embedding in 4-bit blocks.",
        ),
    ] = 8,
    embedding_rank: Annotated[
        int | None,
        typer.Option(
            "--embedding-rank",
            help="Factorise the embedding and the first recurrent layer to N columns, without "
            "training (tokens weighted by their frequency in --rank-texts).",
        ),
    ] = None,
    rank_texts: Annotated[
        str | None,
        typer.Option(
            "--rank-texts",
            help="Texts whose token counts weight --embedding-rank: `transfer`, a text file or a "
            "datasets folder (default: `transfer` inside a run, else every token alike).",
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(help="Label names in logit order, comma-separated (default: the run's)."),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens per text (default: the student's max_length).")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Export a student as a self-contained bundle: model.onnx, tokenizer.json, labels.json,
    config.json and a README.md model card; `distilrnn predict` runs it without torch."""
    from distilrnn.export import export_student

    _setup_logging(verbose)
    names = [name.strip() for item in labels or () for name in item.split(",") if name.strip()]
    summary = export_student(
        student_dir,
        output_dir,
        variant=variant,
        seed=seed,
        prune_vocab=prune_vocab,
        quantize=quantize,
        labels=names or None,
        max_length=max_length,
        embedding_rank=embedding_rank,
        rank_texts=rank_texts,
        embedding_bits=embedding_bits,
    )
    print_export_summary(summary)


def print_export_summary(summary: dict) -> None:
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


class OutputFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


@app.command()
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
        raise ValueError("give the texts as arguments or with --file, not both")
    if texts:
        return list(texts)
    if file is not None:
        if not file.is_file():
            raise FileNotFoundError(f"text file not found: {file}")
        with file.open(encoding="utf-8") as handle:
            lines = texts_from_lines(handle)
        if not lines:
            raise ValueError(f"no texts to classify: {file} holds no non-blank line")
        return lines
    if sys.stdin.isatty():
        raise ValueError("no texts to classify: give them as arguments, with --file, or on stdin")
    lines = texts_from_lines(sys.stdin)
    if not lines:
        raise ValueError("no texts to classify: stdin held no non-blank line")
    return lines


@app.command(epilog=SETTINGS_EPILOG)
def benchmark(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    student: Annotated[
        str | None, typer.Option("--student", help="Variant to time (default: the config's first).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Its seed (default: the variant's first).")
    ] = None,
    sample: Annotated[
        int, typer.Option(help="Training texts timed for the time per epoch (0: skip).")
    ] = 2000,
    threads: Annotated[
        list[int] | None,
        typer.Option("--threads", help="CPU threads; repeat for several (default: 1 and 2)."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this file.")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Time teacher against student on CPU (size, latency, throughput, training); write
    benchmark-<variant>.json in the run directory (the report reads it) and print the tables."""
    from distilrnn.atomic import write_json_atomic
    from distilrnn.benchmark import benchmark_run, markdown_table

    _setup_logging(verbose)
    run_config = _config(config, set_, run_dir)
    results = benchmark_run(run_config, student, seed, sample=sample, threads=threads or (1, 2))
    if json_path is not None:
        write_json_atomic(json_path, results)
    console.print(markdown_table(results), markup=False, highlight=False, soft_wrap=True)


@app.command()
def settings() -> None:
    """List every config setting with its default and meaning."""
    table = Table(title="distilrnn settings (TOML section.key; override with --set)")
    for column in ("setting", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for name, default, help_text in describe_settings():
        table.add_row(escape(name), escape(default), escape(help_text))
    console.print(table)


def main() -> None:
    try:
        app()
    except ConfigError as error:
        console.print(f"[red]config error:[/red] {error}")
        sys.exit(2)
    except (ValueError, FileNotFoundError) as error:
        # data, teacher and checkpoint errors already name the file, line or setting
        console.print(f"[red]error:[/red] {error}")
        sys.exit(1)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in TRAINING_MODULES:
            raise
        console.print(
            f"[red]error:[/red] this command needs {error.name}, which the runtime install "
            + escape("does not include: pip install 'distilrnn[train]'")
        )
        sys.exit(1)
