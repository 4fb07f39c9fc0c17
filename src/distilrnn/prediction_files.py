"""Prediction files for unlabelled test data: what a run's models predict on texts whose labels
the user does not have (GLUE's hidden test splits), one column per model.

`write_prediction_file(config, input, output)` reads the input file with the run's data
settings (its text [and second text] columns, plus an index column), and writes a TSV with a
header `index<TAB>teacher<TAB>baseline/seed-0<TAB>...<TAB>distilled/seed-0<TAB>...`: the
teacher (the teacher ensemble's combined prediction when the config names members,
`teacher.ensemble_*`: what the students learned from), the baseline (the best label-trained
variant, `objective = "ce"`) and the best distilled variant, both chosen by their mean
validation score on the task's primary metric (which variants they are is returned, and
logged). With `bundle`, each seed of the distilled variant is also exported with the config's
`[export]` settings (what `distilrnn export` would deploy) and run through the `Predictor`:
columns `bundle/seed-0`, ... Each value is the predicted label as the training data writes it
(its label name; with `ids`, the label id 0, 1, ..., which is what a file of integer labels such
as GLUE's holds when `data.label_names` renames them) or, for regression, the predicted score.

These texts only ever go through trained models: nothing here trains, augments, calibrates,
prunes or selects on them (the choice of models reads the validation split alone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.atomic import write_atomically
from distilrnn.config import RunConfig
from distilrnn.errors import DataError, RunFolderError
from distilrnn.inputs import Input
from distilrnn.metrics import REGRESSION, predictions
from distilrnn.readers import FORMATS, read_delimited, read_jsonl
from distilrnn.records import StudentRecord
from distilrnn.run import Run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """A variant chosen on validation: its name, seeds' folders and mean validation score."""

    variant: str
    directories: list[Path]
    validation: float


def choose_variants(run: Run, config: RunConfig) -> dict[str, Choice]:
    """The baseline (best `ce` variant) and the best distilled variant (any other objective) of
    a run, each by the mean over its seeds of the validation score on the primary metric."""
    metric = run.task().metrics[0]
    by_variant: dict[str, list[StudentRecord]] = {}
    known = {variant.name for variant in config.variants}
    for directory in run.finished_students():
        if directory.parent.name not in known:
            continue  # a student of a variant this config no longer names
        record = StudentRecord.read(directory)
        by_variant.setdefault(directory.parent.name, []).append(record)
    best: dict[str, Choice] = {}
    for variant, records in by_variant.items():
        objective = config.student_for(config.variant(variant)).objective
        role = "baseline" if objective == "ce" else "distilled"
        scores = [r.score("validation", metric) for r in records]
        if any(score is None for score in scores):
            raise RunFolderError(f"variant {variant}: a student has no validation {metric}")
        mean = float(np.mean(scores))
        if role not in best or mean > best[role].validation:
            folders = sorted((r.directory for r in records), key=lambda p: _seed(p))
            best[role] = Choice(variant, folders, mean)
    missing = [role for role in ("baseline", "distilled") if role not in best]
    if missing:
        raise RunFolderError(f"{run.root}: no finished {' or '.join(missing)} student")
    return best


def _seed(directory: Path) -> int:
    return int(directory.name.removeprefix("seed-"))


def read_unlabelled(
    path: Path, config: RunConfig, index_column: str = "index"
) -> tuple[list[str], list[Input]]:
    """The index and the inputs (texts or pairs) of an unlabelled file, by the run's data
    columns; errors name the file and line."""
    data = config.data
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    columns = (index_column, data.text_column)
    if data.text_pair_column:
        columns += (data.text_pair_column,)
    kind = FORMATS.get(path.suffix.lower(), "tsv") if data.format == "auto" else data.format
    if kind == "jsonl":
        rows = list(read_jsonl(path, columns))
    else:
        quoting = kind == "csv" or data.quoting
        rows = list(read_delimited(path, "\t" if kind == "tsv" else ",", quoting, columns))
    if not rows:
        raise DataError(f"{path}: no rows")
    indices, inputs = [], []
    for number, values in rows:
        texts = [str(v).strip() for v in values[1:]]
        if not all(texts):
            raise DataError(f"{path}:{number}: empty text")
        indices.append(str(values[0]))
        inputs.append(texts[0] if len(texts) == 1 else (texts[0], texts[1]))
    return indices, inputs


def _teacher(run: Run, config: RunConfig) -> Any:
    """The run's teacher, or its teacher ensemble (main teacher first, `label.ensemble`) when
    the config names members."""
    from distilrnn.ensemble import TeacherEnsemble, ensemble_members
    from distilrnn.teacher import Teacher

    record = run.teacher()
    max_length = int(record.settings.get("max_length", 128))
    members = [run.teacher_member(m.name) for m in ensemble_members(config.teacher)]
    if not members:
        return Teacher.from_pretrained(str(record.model_dir), max_length=max_length)
    folders = [record.model_dir, *(member.model_dir for member in members)]
    return TeacherEnsemble.from_pretrained(
        folders, combine=config.label.ensemble, max_length=max_length
    )


def _values(
    logits: np.ndarray, task_type: str, label_names: Sequence[str], ids: bool = False
) -> list[str]:
    if task_type == REGRESSION:
        return [f"{score:.4f}" for score in predictions(logits, task_type)]
    return [str(i) if ids else str(label_names[i]) for i in predictions(logits, task_type)]


def _bundle_logits(config: RunConfig, directory: Path, inputs: list[Input]) -> np.ndarray:
    """`inputs` through the bundle `distilrnn export` makes of the student in `directory` with
    the config's `[export]` settings (written to a temporary folder, then removed)."""
    import tempfile

    from distilrnn.export import export_student
    from distilrnn.runtime import Predictor

    with tempfile.TemporaryDirectory(prefix="distilrnn-bundle-") as scratch:
        bundle = Path(scratch) / "bundle"
        export_student(directory, bundle, config.export)
        return Predictor(bundle, threads=0).logits(inputs)


def write_prediction_file(
    config: RunConfig,
    input_path: str | Path,
    output_path: str | Path,
    *,
    index_column: str = "index",
    overwrite: bool = False,
    device: str = "cpu",
    bundle: bool = False,
    ids: bool = False,
) -> dict[str, Any]:
    """Write the prediction file of a finished run (module docstring); returns what it wrote:
    the output path, the chosen variants with their validation scores, and the row count. An
    existing output file is kept unless `overwrite`."""
    from distilrnn.student import RNNStudent

    output = Path(output_path)
    if output.exists() and not overwrite:
        raise DataError(f"{output} exists; pass overwrite (--overwrite) to replace it")
    run = Run(config.run_dir).check()
    task = run.task()
    indices, inputs = read_unlabelled(Path(input_path), config, index_column)
    chosen = choose_variants(run, config)
    teacher = _teacher(run, config)

    def values(logits: np.ndarray) -> list[str]:
        return _values(logits, task.task_type, task.label_names, ids)

    columns = {"teacher": values(teacher.logits(inputs, device=device))}
    for role in ("baseline", "distilled"):
        for directory in chosen[role].directories:
            student = RNNStudent.from_pretrained(directory)
            columns[f"{role}/seed-{_seed(directory)}"] = values(student.predict_logits(inputs))
    if bundle:
        for directory in chosen["distilled"].directories:
            logits = _bundle_logits(config, directory, inputs)
            columns[f"bundle/seed-{_seed(directory)}"] = values(logits)
    lines = ["\t".join(["index", *columns])]
    for row, index in enumerate(indices):
        lines.append("\t".join([index, *(values[row] for values in columns.values())]))
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    summary = {
        "output": str(output),
        "rows": len(indices),
        "columns": list(columns),
        "teacher": getattr(teacher, "name", "teacher"),
        "metric": task.metrics[0],
        "chosen": {role: (c.variant, c.validation) for role, c in chosen.items()},
    }
    logger.info("%s: %d rows, %s", output, len(indices), ", ".join(columns))
    return summary
