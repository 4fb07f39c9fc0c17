"""Where a finished run keeps what an export reads: a student by variant and seed, the label
names, the teacher and task for the model card, the transfer set and the test half.

    run_dir/data/labels.json, data/splits/        label names, train / validation / test
    run_dir/teacher/stage.json, metrics.json      teacher name and accuracy
    run_dir/augment/transfer/                     the augmented transfer set
    run_dir/students/<variant>/seed-<n>/          the student
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from distilrnn.runtime import read_label_names

logger = logging.getLogger(__name__)


def find_run_dir(student_dir: Path) -> Path | None:
    """`run_dir` when `student_dir` is `run_dir/students/<variant>/seed-<n>`, else None."""
    student_dir = student_dir.resolve()
    if len(student_dir.parents) < 3 or student_dir.parents[1].name != "students":
        return None
    run_dir = student_dir.parents[2]
    return run_dir if (run_dir / "data" / "labels.json").is_file() else None


def resolve_student_dir(path: Path, variant: str | None = None, seed: int | None = None) -> Path:
    """A student folder: `path` itself, or the student `variant` / `seed` of the run `path`
    (default seed: the lowest one trained)."""
    if variant is None:
        if seed is not None:
            raise ValueError("--seed needs --variant")
        if (path / "students").is_dir():
            raise ValueError(f"{path} is a run directory: name the student with --variant")
        return path
    variant_dir = path / "students" / variant
    if not variant_dir.is_dir():
        raise FileNotFoundError(f"no student {variant!r} in {path}: {variant_dir} not found")
    if seed is None:
        seeds = sorted(
            int(p.name.removeprefix("seed-")) for p in variant_dir.glob("seed-*") if p.is_dir()
        )
        if not seeds:
            raise FileNotFoundError(f"no trained seed in {variant_dir}")
        seed = seeds[0]
    return variant_dir / f"seed-{seed}"


def _stage_settings(stage_dir: Path) -> dict[str, Any]:
    path = stage_dir / "stage.json"
    return json.loads(path.read_text()).get("settings", {}) if path.is_file() else {}


def run_context(run_dir: Path) -> dict[str, Any]:
    """What the model card says about a run: label names, teacher and task."""
    teacher = _stage_settings(run_dir / "teacher")
    data = _stage_settings(run_dir / "data").get("data", {})
    teacher_metrics_path = run_dir / "teacher" / "metrics.json"
    teacher_metrics = (
        json.loads(teacher_metrics_path.read_text()) if teacher_metrics_path.is_file() else {}
    )
    return {
        "labels": read_label_names(run_dir / "data" / "labels.json"),
        "teacher": {
            "name": teacher.get("checkpoint") or teacher.get("model"),
            **{
                key: teacher_metrics[key]
                for key in ("validation_accuracy", "test_accuracy")
                if key in teacher_metrics
            },
        },
        "task": data.get("hub_name") or _local_task(data),
    }


def _local_task(data: dict[str, Any]) -> str | None:
    """A local dataset as the model card names it: the data folder's name (environment
    variables in the configured path expanded) and its files, e.g. `sst2 (train.tsv, dev.tsv)`,
    not a path of the machine that trained it."""
    path = data.get("path")
    if not path:
        return None
    expanded = os.path.expandvars(str(path))
    name = Path(expanded).name if "$" not in expanded else str(path)
    files = [data[key] for key in ("train_file", "validation_file", "test_file") if data.get(key)]
    return f"{name} ({', '.join(files)})" if files else name


def run_test_split(run_dir: Path) -> tuple[list[str], list[int]]:
    """Texts and label ids of the run's test half."""
    from distilrnn.data import Task

    test = Task.load(run_dir / "data").splits["test"]
    return list(test["text"]), list(test["label"])


def run_transfer_texts(run_dir: Path, metrics: dict[str, Any]) -> list[str]:
    """The texts the student was trained on: the augmented transfer set if it used one, else
    the training split."""
    from datasets import Dataset

    from distilrnn.data import Task

    settings = metrics.get("settings", {})
    augmented = settings.get("objective") != "ce" and settings.get("transfer_set") == "augmented"
    if augmented:
        transfer_dir = run_dir / "augment" / "transfer"
        if not transfer_dir.is_dir():
            raise FileNotFoundError(f"transfer set not found: {transfer_dir}")
        return list(Dataset.load_from_disk(str(transfer_dir))["text"])
    return list(Task.load(run_dir / "data").splits["train"]["text"])


def read_text_source(source: str | Path, run_dir: Path | None, metrics: dict) -> list[str]:
    """Texts for vocabulary pruning or token weights: `transfer` (the run's transfer set), a
    text file (one text a line) or a folder saved by `datasets` with a `text` column."""
    if str(source) == "transfer":
        if run_dir is None:
            raise ValueError(
                "the text source `transfer` needs the student's run: export a student folder "
                "inside a run directory, or give a text file"
            )
        return run_transfer_texts(run_dir, metrics)
    path = Path(source)
    if path.is_dir():
        from datasets import Dataset

        dataset = Dataset.load_from_disk(str(path))
        if "text" not in dataset.column_names:
            raise ValueError(f"{path} has no `text` column (columns: {dataset.column_names})")
        return list(dataset["text"])
    if not path.is_file():
        raise FileNotFoundError(f"text source not found: {path}")
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]
