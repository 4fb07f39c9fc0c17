"""The run folder: one object that knows its layout, its format version and its records.

    run_dir/
      run.json                          format marker: {"format": "distilrnn-run", "version": 2}
      data/                             splits/ (Arrow), labels.json, metrics.json
      teacher/                          model/ (transformers checkpoint), metrics.json,
                                        predictions.json (validation / test logits)
      teacher-seed-<n>/, teacher-checkpoint-<name>/
                                        a teacher ensemble's extra members, laid out as teacher/
      teacher-ensemble/                 the members' combined predictions.json and metrics.json
      calibration/                      calibration.json: the teacher's fitted temperature
      augment/                          transfer/: the transfer set (Arrow)
      labels/                           logits-<fingerprint>/shards/: teacher logits
      students/<variant>/seed-<n>/      model.safetensors, config.json, tokenizer, metrics.json,
                                        predictions.json
      results.json, results.md, report.md, benchmark-<variant>.json
      peers.json, frontier.json         `distilrnn.bench.peers` / `distilrnn.bench.frontier`
      .work/                            checkpoints of unfinished stages
      .locks/                           a lock per stage folder, held while it is built

Every stage folder holds `stage.json` (see `distilrnn.stages`). No other module builds these
paths or walks up from a student folder to find its run: they ask a `Run`.

The transfer-set rule lives here too (`TRANSFER_SET_RULE`): the labelled transfer set starts
with the training texts, in the training split's order, followed by the generated texts.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilrnn.atomic import write_json_atomic
from distilrnn.errors import MissingFileError, RunFolderError
from distilrnn.records import (
    METRICS_NAME,
    PREDICTIONS_NAME,
    STAGE_FILE,
    StudentRecord,
    TeacherRecord,
    load_predictions,
    read_json,
    read_texts,
    save_predictions,
)

__all__ = [
    "METRICS_NAME",
    "PREDICTIONS_NAME",
    "RUN_VERSION",
    "STAGE_FILE",
    "TRANSFER_SET_RULE",
    "Run",
    "StudentRecord",
    "TeacherRecord",
    "check_name",
    "load_predictions",
    "read_json",
    "read_texts",
    "save_predictions",
    "training_rows",
]

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

    from distilrnn.data import Task

logger = logging.getLogger(__name__)

RUN_FORMAT = "distilrnn-run"
# 1: folders written before the marker existed (no run.json); their stage records are upgraded
#    when a stage is reused (`distilrnn.stages.SETTINGS_ADDED_AFTER`). 2: run.json and
#    versioned records. 3: sentence pairs and regression (data.text_pair_column, task_type,
#    metrics; student.pair_design). 4: students beyond the RNN, teacher ensembles and
#    representation distillation (the settings `SETTINGS_ADDED_AFTER[3]` lists). 5: extra texts
#    near a validation or test text left out (augment.extra_overlap).
RUN_VERSION = 5
MARKER_NAME = "run.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

TRANSFER_SET_RULE = (
    "the labelled transfer set starts with the training texts, in the training split's order, "
    "followed by the generated texts (label -1, or NaN for a regression task)"
)


def check_name(name: str, what: str = "variant name") -> str:
    """`name` if it is safe as one folder name (letters, digits, `.`, `_`, `-`; not starting
    with a dot), else a `RunFolderError`: a name must never lead outside the run folder."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RunFolderError(
            f"{what} {name!r}: use letters, digits, '.', '_' and '-' only, starting with a letter "
            "or digit (it becomes a folder name)"
        )
    return name


class Run:
    """A run folder. Paths and records come from here; `open` checks or writes the format
    marker before anything is built in it."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    # layout ---------------------------------------------------------------------------------
    @property
    def marker(self) -> Path:
        return self.root / MARKER_NAME

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def label_names_file(self) -> Path:
        return self.data_dir / "labels.json"

    @property
    def teacher_dir(self) -> Path:
        return self.root / "teacher"

    @property
    def teacher_model_dir(self) -> Path:
        return self.teacher_dir / "model"

    def teacher_member_dir(self, member: str) -> Path:
        """An extra member of a teacher ensemble (`seed-43` -> `teacher-seed-43/`)."""
        return self.root / f"teacher-{check_name(member, 'teacher member')}"

    @property
    def teacher_ensemble_dir(self) -> Path:
        return self.root / "teacher-ensemble"

    @property
    def calibration_dir(self) -> Path:
        return self.root / "calibration"

    @property
    def augment_dir(self) -> Path:
        return self.root / "augment"

    @property
    def transfer_dir(self) -> Path:
        return self.augment_dir / "transfer"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def states_dir(self) -> Path:
        """The teacher's sentence vectors over the labelled texts (`distilrnn.representations`),
        for students with `repr_weight > 0`."""
        return self.root / "states"

    @property
    def students_dir(self) -> Path:
        return self.root / "students"

    @property
    def work_dir(self) -> Path:
        """Checkpoints and caches of unfinished stages."""
        return self.root / ".work"

    @property
    def locks_dir(self) -> Path:
        return self.root / ".locks"

    def lock_file(self, stage_dir: Path) -> Path:
        """The lock a command holds while it builds the stage in `stage_dir`, named after the
        folder's path in the run (`students/a/seed-0` -> `.locks/students-a-seed-0.lock`)."""
        try:
            name = "-".join(Path(stage_dir).relative_to(self.root).parts)
        except ValueError:
            name = Path(stage_dir).name
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return self.locks_dir / f"{name}.lock"

    @property
    def results_file(self) -> Path:
        return self.root / "results.json"

    @property
    def peers_file(self) -> Path:
        """The peers benchmark's results (`distilrnn.bench.peers`), when it has run."""
        return self.root / "peers.json"

    @property
    def frontier_file(self) -> Path:
        """The speed frontier's results (`distilrnn.bench.frontier`), when it has run."""
        return self.root / "frontier.json"

    def variant_dir(self, variant: str) -> Path:
        return self.students_dir / check_name(variant)

    def student_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant) / f"seed-{int(seed)}"

    def benchmark_file(self, variant: str) -> Path:
        return self.root / f"benchmark-{check_name(variant)}.json"

    def benchmark_files(self) -> list[Path]:
        return sorted(self.root.glob("benchmark*.json"))

    # the format -----------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A run folder: it has the marker, or it is a folder of the first format (no marker,
        a `data/` stage)."""
        return self.marker.is_file() or self.label_names_file.is_file()

    @property
    def version(self) -> int:
        """The folder's format version: 1 without a marker, else the marker's."""
        if not self.marker.is_file():
            return 1
        marker = read_json(self.marker)
        if (
            not isinstance(marker, dict)
            or marker.get("format") != RUN_FORMAT
            or not isinstance(marker.get("version"), int)
        ):
            raise RunFolderError(f"{self.marker} is not a distilrnn run marker")
        return marker["version"]

    def check_version(self) -> int:
        """The folder's format version, refused when a newer distilrnn wrote it."""
        version = self.version
        if version > RUN_VERSION:
            raise RunFolderError(
                f"{self.root} was written by a newer distilrnn (run format {version}; this "
                f"one reads up to {RUN_VERSION}): upgrade distilrnn or use another run_dir"
            )
        return version

    def check(self) -> Run:
        """Refuse what must not be built in, writing nothing: a file, a folder of a newer
        format, or a non-empty folder that is not a run (nothing of the user's is touched)."""
        if self.root.exists() and not self.root.is_dir():
            raise RunFolderError(f"run_dir {self.root} is a file, not a folder")
        if self.marker.is_file():
            self.check_version()
        elif self.root.is_dir() and self._holds_files() and not self.is_run():
            raise RunFolderError(
                f"run_dir {self.root} holds files but is not a distilrnn run folder (no "
                f"{MARKER_NAME}); choose an empty or new folder"
            )
        return self

    def _holds_files(self) -> bool:
        """Whether the folder holds anything but another command's half-written marker (a
        second command starting on a new folder must not take it for a user's folder)."""
        temporary = f".{MARKER_NAME}."
        return any(not p.name.startswith(temporary) for p in self.root.iterdir())

    def open(self) -> Run:
        """Make the folder ready to build in (`check`), then create it with a marker when new,
        or upgrade an older marker; a first-format folder (no marker, same layout) is adopted,
        and each of its stage records is upgraded when the stage is next reused."""
        self.check()
        if self.marker.is_file() and self.version == RUN_VERSION:
            return self
        if self.is_run() and not self.marker.is_file():
            logger.info(
                "%s: a run folder of format 1; adopting it as format %d", self.root, RUN_VERSION
            )
        self._write_marker()
        return self

    def _write_marker(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.marker, {"format": RUN_FORMAT, "version": RUN_VERSION})

    # finding a run from a student ------------------------------------------------------------
    @classmethod
    def of_student(cls, student_dir: Path) -> Run | None:
        """The run that `student_dir` (`run/students/<variant>/seed-<n>`) belongs to, if any."""
        student_dir = Path(student_dir).resolve()
        if len(student_dir.parents) < 3 or student_dir.parents[1].name != "students":
            return None
        run = cls(student_dir.parents[2])
        return run if run.is_run() else None

    def seeds(self, variant: str) -> list[int]:
        """The trained seeds of `variant`, lowest first."""
        directory = self.variant_dir(variant)
        return sorted(
            int(p.name.removeprefix("seed-"))
            for p in directory.glob("seed-*")
            if p.is_dir() and p.name.removeprefix("seed-").isdigit()
        )

    def resolve_student(self, variant: str, seed: int | None = None) -> Path:
        """The folder of `variant`'s student of `seed` (default: the lowest trained)."""
        directory = self.variant_dir(variant)
        if not directory.is_dir():
            raise MissingFileError(f"no student {variant!r} in {self.root}: {directory} not found")
        if seed is None:
            seeds = self.seeds(variant)
            if not seeds:
                raise MissingFileError(f"no trained seed in {directory}")
            seed = seeds[0]
        if not self.student_dir(variant, seed).is_dir():
            trained = ", ".join(map(str, self.seeds(variant))) or "none"
            raise MissingFileError(
                f"no seed {seed} of {variant!r} in {self.root}; seeds: {trained}"
            )
        return self.student_dir(variant, seed)

    def finished_students(self) -> list[Path]:
        """Every student folder with a finished stage record, sorted."""
        return sorted(p.parent for p in self.students_dir.glob(f"*/*/{STAGE_FILE}"))

    # records --------------------------------------------------------------------------------
    def label_names(self) -> list[str]:
        if not self.label_names_file.is_file():
            raise RunFolderError(f"no finished data stage in {self.root}: run `distilrnn data`")
        names = read_json(self.label_names_file)
        names = names.get("names") if isinstance(names, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RunFolderError(
                f"{self.label_names_file} is corrupt: expected {{'names': [label, ...]}}; "
                "rebuild it with `distilrnn data --force data`"
            )
        return names

    def task(self) -> Task:
        from distilrnn.data import Task

        self.check_version()
        if not (self.data_dir / "splits").is_dir():
            raise RunFolderError(f"no finished data stage in {self.root}: run `distilrnn data`")
        return Task.load(self.data_dir)

    def teacher(self) -> TeacherRecord:
        self.check_version()
        if not (self.teacher_dir / STAGE_FILE).is_file():
            raise RunFolderError(
                f"no finished teacher in {self.teacher_dir}: run `distilrnn teacher` first"
            )
        return TeacherRecord.read(self.teacher_dir)

    def teacher_member(self, member: str) -> TeacherRecord:
        directory = self.teacher_member_dir(member)
        if not (directory / STAGE_FILE).is_file():
            raise RunFolderError(
                f"no finished teacher member in {directory}: run `distilrnn teacher`"
            )
        return TeacherRecord.read(directory)

    def teacher_ensemble(self) -> TeacherRecord | None:
        """The teacher ensemble's record (its combined validation / test logits and metrics,
        its members' in `metrics["members"]`), or None when the run has none."""
        if not (self.teacher_ensemble_dir / STAGE_FILE).is_file():
            return None
        return TeacherRecord.read(self.teacher_ensemble_dir)

    def student(self, variant: str, seed: int | None = None) -> StudentRecord:
        return StudentRecord.read(self.resolve_student(variant, seed))

    def calibration(self) -> dict[str, Any] | None:
        """The teacher's fitted temperature and its NLL / ECE, once the stage has run."""
        path = self.calibration_dir / "calibration.json"
        return read_json(path) if path.is_file() else None

    def stage_settings(self, stage_dir: Path) -> dict[str, Any]:
        path = stage_dir / STAGE_FILE
        return read_json(path).get("settings", {}) if path.is_file() else {}

    def context(self) -> dict[str, Any]:
        """What a model card says about the run: label names, teacher and task."""
        teacher = TeacherRecord.read(self.teacher_dir)
        data = self.stage_settings(self.data_dir).get("data", {})
        task = self.task()
        return {
            "labels": self.label_names(),
            "task_type": task.task_type,
            "metrics": list(task.metrics),
            "teacher": {
                "name": teacher.name,
                **{
                    key: teacher.metrics[key]
                    for split in ("validation", "test")
                    for key in [f"{split}_{name}" for name in task.metrics]
                    if key in teacher.metrics
                },
            },
            "task": data.get("hub_name") or _local_task(data),
        }

    def test_split(self) -> tuple[list[Any], list[Any]]:
        """Inputs (texts, or (text, text_pair) tuples) and labels of the run's test half."""
        test = self.task().test
        return test.inputs, list(self.task().splits["test"]["label"])

    def transfer_set(self) -> Dataset:
        from datasets import Dataset

        if not self.transfer_dir.is_dir():
            raise MissingFileError(f"transfer set not found: {self.transfer_dir}")
        return Dataset.load_from_disk(str(self.transfer_dir))

    def training_logits(self) -> np.ndarray | None:
        """The teacher's logits of the training texts, `(n_train, num_labels)` float32: the
        first rows of the label stage's one labelled set (`TRANSFER_SET_RULE`); None before
        that stage ran."""
        import numpy as np

        from distilrnn.labeling import load_labelled

        shards = sorted(self.labels_dir.glob("logits-*"))
        if not (self.labels_dir / STAGE_FILE).is_file() or len(shards) != 1:
            return None
        labelled = load_labelled(shards[0])
        num_train = len(self.task().splits["train"])
        if len(labelled) < num_train:
            return None
        table = training_rows(labelled, num_train, "train").with_format("numpy")
        return np.asarray(table["teacher_logits"], dtype=np.float32)

    def training_texts(self, student: StudentRecord) -> list[str]:
        """The texts `student` trained on: the transfer set if it used one, else the training
        split (for sentence pairs, the first texts then the second texts)."""
        rows = (
            self.transfer_set() if student.trained_on_transfer_set else self.task().splits["train"]
        )
        texts = list(rows["text"])
        if "text_pair" in rows.column_names:  # both sides of a pair: every token read
            texts += list(rows["text_pair"])
        return texts

    def text_source(self, source: str | Path, student: StudentRecord | None = None) -> list[str]:
        """Texts for vocabulary pruning or token weights: `transfer` (what `student` trained
        on), a text file (one text a line) or a folder saved by `datasets` with `text`."""
        if str(source) == "transfer":
            if student is None:
                raise RunFolderError("the text source `transfer` needs a student of this run")
            return self.training_texts(student)
        return read_texts(source)


def training_rows(labelled: Dataset, num_train: int, transfer_set: str) -> Dataset:
    """The rows of the labelled set a distilled student trains on (`TRANSFER_SET_RULE`): all of
    them for `augmented`, the first `num_train` (the training texts) for `train`."""
    if transfer_set == "train" and len(labelled) > num_train:
        return labelled.select(range(num_train))
    return labelled


def _local_task(data: dict[str, Any]) -> str | None:
    """A local dataset as the model card names it: the data folder's name (environment
    variables in the configured path expanded) and its files, e.g. `sst2 (train.tsv, dev.tsv)`,
    not a path of the machine that trained it."""
    path = data.get("path")
    if not path:
        return data.get("name")
    expanded = os.path.expandvars(str(path))
    name = Path(expanded).name if "$" not in expanded else str(path)
    files = [data[key] for key in ("train_file", "validation_file", "test_file") if data.get(key)]
    return f"{name} ({', '.join(files)})" if files else name
