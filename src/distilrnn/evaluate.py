"""Collect the teacher's and the students' metrics into results.json and a markdown table.

The task's metrics (accuracy; F1; Pearson, Spearman) are computed by the teacher and student
stages on the validation and test halves; this module adds what can be read off the artifacts
(parameters, bytes on disk) and aggregates seeds. Records written before tasks had metric lists
hold accuracy only and read as `metrics = ["accuracy"]`.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import safe_open

from distilrnn import stats
from distilrnn.atomic import write_atomically, write_json_atomic
from distilrnn.config import RunConfig
from distilrnn.errors import RunFolderError
from distilrnn.run import Run, StudentRecord, TeacherRecord
from distilrnn.variants import encoder_name

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")
LEGACY_METRICS = ["accuracy"]  # what a record without a "metrics" list was scored by
METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "pearson": "Pearson", "spearman": "Spearman"}
PERCENT_METRICS = ("accuracy", "f1")  # fractions shown in percent; correlations as they are


def metric_names(record_metrics: dict[str, Any]) -> list[str]:
    """A metrics record's (or results row's) metric names, primary first."""
    return list(record_metrics.get("metrics") or LEGACY_METRICS)


def metric_header(name: str) -> str:
    """A metric's column label: "acc (%)", "F1 (%)", "Pearson"."""
    label = METRIC_LABELS.get(name, name)
    return f"{label} (%)" if name in PERCENT_METRICS else label


def format_metric(name: str, mean: float, std: float | None = None) -> str:
    """A metric's mean (percent for accuracy and F1, 3 decimals for a correlation), with the
    standard deviation over seeds when there is one."""
    if name in PERCENT_METRICS:
        return format_accuracy(mean, std)
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std else "")


def safetensors_parameters(path: Path, embedding_key: str = "word_embeddings") -> dict[str, int]:
    """Parameter counts read from a safetensors header (no model is built)."""
    total = embedding = 0
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
            count = 1
            for size in handle.get_slice(name).get_shape():
                count *= size
            total += count
            embedding += count if embedding_key in name else 0
    return {"total": total, "trainable": total, "embedding": embedding}


def folder_bytes(directory: Path, pattern: str = "*.safetensors") -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern))


def teacher_row(teacher: TeacherRecord) -> dict[str, Any]:
    """The teacher's results row: its task's metrics, size from its checkpoint."""
    parameters = {"total": 0, "trainable": 0, "embedding": 0}
    for path in sorted(teacher.model_dir.glob("*.safetensors")):
        for key, value in safetensors_parameters(path).items():
            parameters[key] += value
    names = metric_names(teacher.metrics)
    return {
        "name": "teacher",
        "objective": "fine-tuned",
        "seeds": 1,
        "directories": [str(teacher.directory)],
        "metrics": names,
        "task_type": teacher.metrics.get("task_type", "classification"),
        **{
            f"{split}_{name}": _required(teacher.metrics, f"{split}_{name}", teacher)
            for split in SPLITS
            for name in names
        },
        "parameters": parameters,
        "size_bytes": folder_bytes(teacher.model_dir),
        "train_seconds": teacher.metrics.get("train_seconds"),
    }


def ensemble_row(ensemble: TeacherRecord, run: Run) -> dict[str, Any]:
    """The teacher ensemble's results row: its combined prediction's metrics, and the size and
    training time of all its members together (each member's scores under `members`)."""
    members = [run.root / member["folder"] for member in ensemble.metrics.get("members", [])]
    rows = [teacher_row(TeacherRecord.read(directory)) for directory in members]
    names = metric_names(ensemble.metrics)
    parameters = {key: sum(row["parameters"][key] for row in rows) for key in rows[0]["parameters"]}
    seconds = [row["train_seconds"] for row in rows if row.get("train_seconds")]
    return {
        "name": "teacher ensemble",
        "objective": f"ensemble of {len(rows)} ({ensemble.metrics.get('combine')})",
        "seeds": 1,
        "directories": [str(ensemble.directory)],
        "metrics": names,
        "task_type": ensemble.metrics.get("task_type", "classification"),
        **{
            f"{split}_{name}": _required(ensemble.metrics, f"{split}_{name}", ensemble)
            for split in SPLITS
            for name in names
        },
        "parameters": parameters,
        "size_bytes": sum(row["size_bytes"] for row in rows),
        "train_seconds": sum(seconds) if seconds else None,
        "members": [
            {key: row[key] for key in ("directories", *(f"{s}_{n}" for s in SPLITS for n in names))}
            for row in rows
        ],
    }


def _configured_ensemble(config: RunConfig, run: Run) -> TeacherRecord | None:
    """The run's teacher ensemble record when it is the one `config` names (its members and
    `label.ensemble`); None without one, or with a record of other members (logged)."""
    from distilrnn.ensemble import ensemble_members

    names = [member.name for member in ensemble_members(config.teacher)]
    record = run.teacher_ensemble() if names else None
    if record is None:
        return None
    wanted = {"combine": config.label.ensemble, "members": names}
    if {key: record.settings.get(key) for key in wanted} != wanted:
        logger.warning(
            "%s is of other members or another label.ensemble than the config's: run "
            "`distilrnn teacher` to rebuild it; results leave it out",
            record.directory,
        )
        return None
    return record


def _required(metrics: dict[str, Any], key: str, record: TeacherRecord | StudentRecord) -> Any:
    if key not in metrics:
        raise RunFolderError(f"{record.directory} has no {key} in its metrics: rebuild that stage")
    return metrics[key]


def _pair_design(directory: Path) -> str:
    """How the student reads a pair (`none` for single texts, and for students saved before
    pairs existed)."""
    config = directory / "config.json"
    if not config.is_file():
        return "none"
    return str(json.loads(config.read_text(encoding="utf-8")).get("pair_design", "none"))


def student_rows(students: Sequence[StudentRecord]) -> list[dict[str, Any]]:
    """One row per variant, each metric as mean and standard deviation over its seeds:
    `{split}_{metric}`, `{split}_{metric}_std`, `{split}_summaries[metric]`; `{split}_summary`
    and `per_seed` are the primary (first) metric's."""
    by_variant: dict[str, list[StudentRecord]] = {}
    for student in students:
        by_variant.setdefault(student.variant, []).append(student)
    rows = []
    for name, runs in by_variant.items():
        first = runs[0]
        names = metric_names(first.metrics)
        row = {
            "name": name,
            "objective": first.objective,
            "rnn": encoder_name(first.settings),  # the cell, or bag / cnn
            "pair_design": _pair_design(first.directory),
            "temperature": first.settings.get("temperature"),
            "transfer_set": first.settings.get("transfer_set", "train"),
            "seeds": len(runs),
            "directories": [str(run.directory) for run in runs],
            "parameters": _required(first.metrics, "parameters", first),
            "size_bytes": folder_bytes(first.directory),
            "train_seconds": statistics.fmean(
                _required(run.metrics, "train_seconds", run) for run in runs
            ),
            "metrics": names,
            "task_type": first.metrics.get("task_type", "classification"),
            "per_seed": {
                run.seed: {s: _required(run.metrics, f"{s}_{names[0]}", run) for s in SPLITS}
                for run in runs
            },
        }
        for split in SPLITS:
            row[f"{split}_summaries"] = {}
            for name in names:
                values = [_required(run.metrics, f"{split}_{name}", run) for run in runs]
                summary = stats.summarize(values)
                row[f"{split}_{name}"], row[f"{split}_{name}_std"] = summary.mean, summary.std
                row[f"{split}_summaries"][name] = summary.to_dict()
            row[f"{split}_summary"] = row[f"{split}_summaries"][names[0]]
        rows.append(row)
    return rows


def format_accuracy(mean: float, std: float | None = None) -> str:
    """Accuracy in percent, with the standard deviation over seeds when there is one."""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std else "")


def metric_cell(row: dict[str, Any], split: str, name: str) -> str:
    """A row's `split` value of metric `name`, ± its standard deviation over seeds."""
    return format_metric(name, row[f"{split}_{name}"], row.get(f"{split}_{name}_std"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The results table: one validation and one test column per metric of the task (the
    teacher's row says which), then sizes and training time."""
    names = metric_names(rows[0]) if rows else LEGACY_METRICS
    metric_columns = [(split, name) for split in SPLITS for name in names]
    headers = " | ".join(f"{split} {metric_header(name)}" for split, name in metric_columns)
    lines = [
        f"| model | objective | seeds | {headers} | parameters | "
        "trainable | embedding | size (MB) | train time (s) |",
        "|---|---|---:|" + "---:|" * len(metric_columns) + "---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seconds = f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "-"
        cells = " | ".join(metric_cell(row, split, name) for split, name in metric_columns)
        lines.append(
            f"| {row['name']} | {row['objective']} | {row['seeds']} | {cells} | "
            f"{row['parameters']['total'] / 1e6:.2f} M | "
            f"{row['parameters']['trainable'] / 1e6:.2f} M | "
            f"{row['parameters']['embedding'] / 1e6:.2f} M | {row['size_bytes'] / 1e6:.1f} | "
            f"{seconds} |"
        )
    return "\n".join(lines) + "\n"


def collect_results(
    config: RunConfig, run: Run | str | Path, student_dirs: Sequence[Path] | None = None
) -> dict[str, Any]:
    """Write results.json and results.md into the run folder; return the results.

    The rows are the teacher's, then one per variant of `student_dirs` (in their order;
    default: every finished student of the run). A teacher ensemble the config names is its
    own entry, `teacher_ensemble` (rows stay the teacher and the students), and the row after
    the teacher's in results.md.
    """
    run = run if isinstance(run, Run) else Run(run)
    if student_dirs is None:
        student_dirs = run.finished_students()
    students = [StudentRecord.read(Path(directory)) for directory in student_dirs]
    rows = [teacher_row(run.teacher()), *student_rows(students)]
    results = {
        "run_dir": str(run.root),
        "config": config.to_dict(),
        "metrics": rows[0]["metrics"],
        "task_type": rows[0]["task_type"],
        "rows": rows,
    }
    table = rows
    ensemble = _configured_ensemble(config, run)
    if ensemble is not None:
        results["teacher_ensemble"] = ensemble_row(ensemble, run)
        table = [rows[0], results["teacher_ensemble"], *rows[1:]]
    write_json_atomic(run.results_file, results)
    text = f"# distilrnn results: {run.root}\n\n" + markdown_table(table)
    write_atomically(
        run.results_file.with_suffix(".md"), lambda tmp: tmp.write_text(text, encoding="utf-8")
    )
    return results
