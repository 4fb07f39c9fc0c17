"""Command line: parse flags and the TOML config, then call the pipeline; nothing else."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from distilrnn.config import ConfigError, RunConfig, describe_settings, load_config
from distilrnn.evaluate import format_accuracy

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
