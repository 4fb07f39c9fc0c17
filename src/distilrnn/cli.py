"""Command line: parse flags and the TOML config, call the library, print what came back.

Every setting lives in a dataclass of `distilrnn.config`; the TOML file, `--set section.key=value`
and `distilrnn settings` all read them from there, and the `export` and `benchmark` commands get
one flag per field of their section (`cli_options.settings_options`), so a setting cannot exist
in one place and not the others.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from distilrnn.cli_options import settings_options
from distilrnn.cli_predict import predict
from distilrnn.cli_tables import print_export_summary, print_results
from distilrnn.config import RunConfig
from distilrnn.config_io import describe_settings, load_config
from distilrnn.errors import BundleError, DistilrnnError
from distilrnn.stages import STAGES

# What `distilrnn[train]` adds to the runtime install; a command that needs one of them fails
# with a pointer to the extra instead of a traceback (see `main`). Keep this module's own imports
# free of them, so that `distilrnn predict` runs with `distilrnn[runtime]` alone.
TRAINING_MODULES = frozenset(
    {
        "accelerate",
        "datasets",
        "huggingface_hub",
        "matplotlib",
        "onnx",
        "onnxscript",
        "optuna",
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
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML config whose export or benchmark settings to start from."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting: section.key=value (TOML value)."),
]
RunDirOpt = Annotated[str | None, typer.Option("--run-dir", help="Override run_dir.")]
ForceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--force",
        help=f"Rebuild this stage even if a finished copy exists ({', '.join(STAGES)}).",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="torch device for the teacher and students.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
VariantOpt = Annotated[
    list[str] | None,
    typer.Option("--variant", help="Train only this variant; repeat for several (default: all)."),
]
JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Train this many students at once, in worker processes (threads split between them).",
    ),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _config(
    config: Path | None,
    overrides: list[str] | None,
    run_dir: str | None = None,
    values: dict[str, Any] | None = None,
) -> RunConfig:
    values = dict(values or {})
    if run_dir:
        values["run_dir"] = run_dir
    return load_config(config, list(overrides or []), values)


# stages ------------------------------------------------------------------------------------
def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _scores(record: Any) -> str:
    """`validation X, test Y` on the model's primary metric (percent for accuracy and F1)."""
    metric = record.metric_names[0]

    def show(value: float | None) -> str:
        if value is None or metric not in ("accuracy", "f1"):
            return "-" if value is None else f"{value:.4f}"
        return _percent(value)

    name = "" if metric == "accuracy" else f"{metric} "
    validation, test = record.score("validation", metric), record.score("test", metric)
    return f"validation {name}{show(validation)}, test {show(test)}"


def _students(out: Any) -> list[str]:
    return [f"{s.directory}: {_scores(s)}" for s in out.students]


# command -> (the stage it runs until, what it says, what it prints, its options beyond the
# config's: a stage that runs no model takes no --device; only student training takes --variant)
STAGE_COMMANDS: dict[str, tuple[str, str, Callable[[Any], list[str]], tuple[str, ...]]] = {
    "data": (
        "data",
        "Load, validate and split the task; save the splits and label names.",
        lambda out: [
            f"labels: {out.task.label_names}; "
            f"sizes: { {s: len(out.task.splits[s]) for s in out.task.splits} }"
        ],
        (),
    ),
    "teacher": (
        "teacher",
        "Fine-tune the teacher (or check a fine-tuned one) and report its accuracy.",
        lambda out: [f"teacher at {out.teacher.model_dir}: {_scores(out.teacher)}"],
        ("device",),
    ),
    "calibrate": (
        "calibration",
        'Fit the teacher\'s temperature on validation (what `temperature = "auto"` uses).',
        lambda out: [f"temperature: {out.temperature:.3f}"],
        ("device",),
    ),
    "augment": (
        "augment",
        "Build the transfer set: the training texts plus perturbed copies (Tang et al. 2019).",
        lambda out: [
            f"transfer set: {len(out.transfer)} texts ({len(out.task.splits['train'])} training)"
        ],
        (),
    ),
    "label": (
        "label",
        "Record the teacher's logits for the texts the students distil on: the transfer set when "
        "a variant trains on it (built first if needed), else the training texts (sharded, "
        "resumable).",
        lambda out: [f"{len(out.labelled)} texts labelled"],
        ("device",),
    ),
    "student": (
        "student",
        "Train the student variants (each seed), reusing finished ones.",
        _students,
        ("device", "variant", "jobs"),
    ),
}


def _stage_command(
    until: str, doc: str, summary: Callable[[Any], list[str]], extra: tuple[str, ...]
) -> Callable[..., None]:
    def command(
        config: ConfigArg = None,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        force: ForceOpt = None,
        device: DeviceOpt = "cpu",
        verbose: VerboseOpt = False,
        variant: VariantOpt = None,
        jobs: JobsOpt = 1,
    ) -> None:
        from distilrnn.distributed import is_main
        from distilrnn.pipeline import Pipeline

        _setup_logging(verbose)
        pipeline = Pipeline(
            _config(config, set_, run_dir),
            device=device,
            force=tuple(force or ()),
            variants=tuple(variant or ()),
            jobs=jobs,
        )
        out = pipeline.run(until=until)
        if not is_main():  # launched as several processes (torchrun, accelerate): rank 0 prints
            return
        if until == "report":
            print_results(console, out.results, len(out.task.splits["test"]))
            console.print(f"report: {out.report}")
            console.print(f"reused: {', '.join(pipeline.reused) or 'nothing'}")
            console.print(f"built: {', '.join(pipeline.built) or 'nothing'}")
        for line in summary(out):
            console.print(line)

    hints = get_type_hints(command, include_extras=True)
    optional = {"device", "variant", "jobs"}
    command.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=hints[name]
            )
            for name, p in inspect.signature(command).parameters.items()
            if name not in optional or name in extra
        ]
    )
    command.__doc__ = doc
    return command


STAGE_COMMANDS["run"] = (
    "report",
    "Run every stage (data, teacher, then calibration and augment where a variant needs them, "
    "label, student, evaluate, report), reusing finished ones.",
    lambda out: [],
    ("device", "variant", "jobs"),
)
for _name, (_until, _doc, _summary, _extra) in STAGE_COMMANDS.items():
    app.command(_name, epilog=SETTINGS_EPILOG)(_stage_command(_until, _doc, _summary, _extra))


@app.command(epilog=SETTINGS_EPILOG)
def evaluate(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Collect the finished models' metrics into results.json / results.md and print the table."""
    from distilrnn.pipeline import Pipeline

    _setup_logging(verbose)
    pipeline = Pipeline(_config(config, set_, run_dir))
    print_results(console, pipeline.evaluate(), len(pipeline.folder.test_split()[0]))


@app.command(epilog=SETTINGS_EPILOG)
def report(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write report.md with its plots (learning curves, accuracy against size and speed, the
    teacher's confidence, reliability) and the seed statistics, from a finished run."""
    from distilrnn.pipeline import Pipeline

    _setup_logging(verbose)
    pipeline = Pipeline(_config(config, set_, run_dir))
    print_results(console, pipeline.evaluate(), len(pipeline.folder.test_split()[0]))
    console.print(f"report: {pipeline.report()}")


def _is_pair_run(run: Any) -> bool:
    """Whether a run's task is of sentence pairs (False when it has no finished data stage)."""
    from distilrnn.errors import RunFolderError

    try:
        return run.task().is_pair
    except RunFolderError:
        return False


@app.command("predict-file", epilog=SETTINGS_EPILOG)
def predict_file(
    input_file: Annotated[
        Path,
        typer.Argument(
            help="Unlabelled file to predict: an index column and the run's text column(s)."
        ),
    ],
    output_file: Annotated[Path, typer.Argument(help="Prediction TSV to write.")],
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    index_column: Annotated[
        str, typer.Option("--index-column", help="The input's index column.")
    ] = "index",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTPUT_FILE if it exists.")
    ] = False,
    bundle: Annotated[
        bool,
        typer.Option(
            "--bundle",
            help="Also predict with each distilled seed's bundle (the config's export "
            "settings), in columns bundle/seed-N.",
        ),
    ] = False,
    ids: Annotated[
        bool,
        typer.Option("--ids", help="Write label ids (0, 1, ...) instead of label names."),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write what a finished run's teacher, baseline and best distilled variant (each seed, both
    chosen on validation) predict for an unlabelled file, such as GLUE's hidden test split."""
    from distilrnn.prediction_files import write_prediction_file

    _setup_logging(verbose)
    summary = write_prediction_file(
        _config(config, set_, run_dir),
        input_file,
        output_file,
        index_column=index_column,
        overwrite=overwrite,
        bundle=bundle,
        ids=ids,
    )
    chosen = ", ".join(
        f"{role} {name} (validation {summary['metric']} {score:.4f})"
        for role, (name, score) in summary["chosen"].items()
    )
    console.print(f"{summary['output']}: {summary['rows']} rows; {chosen}")


# export, predict, benchmark ----------------------------------------------------------------
@app.command(epilog=SETTINGS_EPILOG)
@settings_options("export")
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
    config: ConfigOpt = None,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    section_values: dict[str, Any] | None = None,
) -> None:
    """Export a student as a self-contained bundle: model.onnx, tokenizer.json, labels.json,
    config.json and a README.md model card; `distilrnn predict` runs it without torch. Every
    flag below is also the `export.*` setting of the same name."""
    from distilrnn.export import export_student

    _setup_logging(verbose)
    values = dict(section_values or {})
    if "labels" in values:  # --labels a,b or --labels a --labels b
        values["labels"] = [n.strip() for item in values["labels"] for n in item.split(",")]
        values["labels"] = [name for name in values["labels"] if name]
    settings = _config(config, set_, values={"export": values}).export
    summary = export_student(student_dir, output_dir, settings, variant=variant, seed=seed)
    print_export_summary(console, summary)


@app.command("export-teacher")
def export_teacher(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with a finished teacher stage.")],
    output_dir: Annotated[
        Path, typer.Argument(help="Bundle folder to write; a bundle already there is replaced.")
    ],
    quantize: Annotated[
        bool,
        typer.Option(
            help="int8 through onnxruntime's dynamic quantisation (int8 weights, activations "
            "scaled per batch), the usual way to ship a transformer on CPU."
        ),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Export the run's fine-tuned teacher as a bundle, so that `distilrnn predict` runs (and
    with --labelled scores) it exactly as it runs a student, on your own data."""
    from distilrnn.export import export_teacher_bundle
    from distilrnn.run import Run

    _setup_logging(verbose)
    run = Run(run_dir)
    record = run.teacher()
    if _is_pair_run(run):
        raise BundleError(
            f"{run_dir}: a teacher bundle reads single texts; a sentence-pair teacher also "
            "needs its token type ids, which bundles do not carry yet"
        )
    summary = export_teacher_bundle(
        record.model_dir,
        output_dir,
        labels=run.label_names(),
        max_length=int(record.settings.get("max_length", 128)),
        quantize=quantize,
    )
    console.print(f"teacher bundle: {summary['bundle_dir']} ({summary['bundle_bytes']:,} bytes)")


@app.command(epilog=SETTINGS_EPILOG)
@settings_options("benchmark")
def benchmark(
    config: ConfigArg = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this file.")
    ] = None,
    verbose: VerboseOpt = False,
    section_values: dict[str, Any] | None = None,
) -> None:
    """Time teacher against student on CPU (size, latency, throughput, training); write
    benchmark-<variant>.json in the run directory (the report reads it) and print the tables.
    Every flag below is also the `benchmark.*` setting of the same name."""
    from distilrnn.atomic import write_json_atomic
    from distilrnn.bench import benchmark_run, markdown_table

    _setup_logging(verbose)
    run_config = _config(config, set_, run_dir, values={"benchmark": section_values or {}})
    results = benchmark_run(run_config, run_config.benchmark)
    if json_path is not None:
        write_json_atomic(json_path, results)
    console.print(markdown_table(results), markup=False, highlight=False, soft_wrap=True)


@app.command(epilog=SETTINGS_EPILOG)
def tune(
    config: ConfigArg = None,
    trials: Annotated[
        int | None,
        typer.Option(help="Trials the study holds when done, other workers' too (tune.trials)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL shared by workers (default: RUN/tune/study.db)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the variant's name).")
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="Variant the trials start from (default: the first).")
    ] = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    device: DeviceOpt = "cpu",
    verbose: VerboseOpt = False,
) -> None:
    """Search a variant's settings named in `tune.space` with Optuna (median pruning), then
    print the best trial as a TOML variant table to paste into the config. Several workers (this
    command on several machines) share one study through --storage."""
    from distilrnn.tune import tune as run_tune

    _setup_logging(verbose)
    given = {"trials": trials, "storage": storage, "study": study, "variant": variant}
    values = {"tune": {k: v for k, v in given.items() if v is not None}}
    result = run_tune(_config(config, set_, run_dir, values=values), device=device)
    logging.getLogger(__name__).info("study history: %s", result.history_plot)
    console.print(result.toml, markup=False, highlight=False, soft_wrap=True, end="")


app.command()(predict)


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
    """The console script: a user's mistake is one line and a non-zero exit; a bug keeps its
    traceback."""
    try:
        app()
    except DistilrnnError as error:
        kind = "config error" if error.exit_code == 2 else "error"
        console.print(f"[red]{kind}:[/red] {escape(str(error))}")
        sys.exit(error.exit_code)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in TRAINING_MODULES:
            raise
        console.print(
            f"[red]error:[/red] this command needs {error.name}, which the runtime install "
            + escape("does not include: pip install 'distilrnn[train]'")
        )
        sys.exit(1)
