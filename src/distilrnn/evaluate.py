"""Collect the teacher's and the students' metrics into results.json and a markdown table.

Accuracy is computed by the teacher and student stages on the validation and test halves; this
module adds what can be read off the artifacts (parameters, bytes on disk) and aggregates seeds.
"""

from __future__ import annotations

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

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")


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
    """The teacher's results row: accuracy from its metrics, size from its checkpoint."""
    parameters = {"total": 0, "trainable": 0, "embedding": 0}
    for path in sorted(teacher.model_dir.glob("*.safetensors")):
        for key, value in safetensors_parameters(path).items():
            parameters[key] += value
    return {
        "name": "teacher",
        "objective": "fine-tuned",
        "seeds": 1,
        "directories": [str(teacher.directory)],
        "validation_accuracy": _required(teacher.metrics, "validation_accuracy", teacher),
        "test_accuracy": _required(teacher.metrics, "test_accuracy", teacher),
        "parameters": parameters,
        "size_bytes": folder_bytes(teacher.model_dir),
        "train_seconds": teacher.metrics.get("train_seconds"),
    }


def _required(metrics: dict[str, Any], key: str, record: TeacherRecord | StudentRecord) -> Any:
    if key not in metrics:
        raise RunFolderError(f"{record.directory} has no {key} in its metrics: rebuild that stage")
    return metrics[key]


def student_rows(students: Sequence[StudentRecord]) -> list[dict[str, Any]]:
    """One row per variant, accuracy as mean and standard deviation over its seeds."""
    by_variant: dict[str, list[StudentRecord]] = {}
    for student in students:
        by_variant.setdefault(student.variant, []).append(student)
    rows = []
    for name, runs in by_variant.items():
        first = runs[0]
        row = {
            "name": name,
            "objective": first.objective,
            "rnn": first.settings.get("rnn"),
            "temperature": first.settings.get("temperature"),
            "transfer_set": first.settings.get("transfer_set", "train"),
            "seeds": len(runs),
            "directories": [str(run.directory) for run in runs],
            "parameters": _required(first.metrics, "parameters", first),
            "size_bytes": folder_bytes(first.directory),
            "train_seconds": statistics.fmean(
                _required(run.metrics, "train_seconds", run) for run in runs
            ),
            "per_seed": {
                run.seed: {s: _required(run.metrics, f"{s}_accuracy", run) for s in SPLITS}
                for run in runs
            },
        }
        for split in SPLITS:
            summary = stats.summarize([run.metrics[f"{split}_accuracy"] for run in runs])
            row[f"{split}_accuracy"], row[f"{split}_accuracy_std"] = summary.mean, summary.std
            row[f"{split}_summary"] = summary.to_dict()
        rows.append(row)
    return rows


def format_accuracy(mean: float, std: float | None = None) -> str:
    """Accuracy in percent, with the standard deviation over seeds when there is one."""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std else "")


def _accuracy(row: dict[str, Any], split: str) -> str:
    return format_accuracy(row[f"{split}_accuracy"], row.get(f"{split}_accuracy_std"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | objective | seeds | validation acc (%) | test acc (%) | parameters | "
        "trainable | embedding | size (MB) | train time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seconds = f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "-"
        lines.append(
            f"| {row['name']} | {row['objective']} | {row['seeds']} | "
            f"{_accuracy(row, 'validation')} | {_accuracy(row, 'test')} | "
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
    default: every finished student of the run).
    """
    run = run if isinstance(run, Run) else Run(run)
    if student_dirs is None:
        student_dirs = run.finished_students()
    students = [StudentRecord.read(Path(directory)) for directory in student_dirs]
    rows = [teacher_row(run.teacher()), *student_rows(students)]
    results = {"run_dir": str(run.root), "config": config.to_dict(), "rows": rows}
    write_json_atomic(run.results_file, results)
    text = f"# distilrnn results: {run.root}\n\n" + markdown_table(rows)
    write_atomically(
        run.results_file.with_suffix(".md"), lambda tmp: tmp.write_text(text, encoding="utf-8")
    )
    return results
