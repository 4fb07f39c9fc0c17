"""Stages declared once: their order, what each reads, and the record that marks one finished.

A stage's folder is finished when its `stage.json` names the fingerprint of the stage's inputs
(its resolved settings and the fingerprints of the stages it reads) and the run format it was
written in. `stage.json` is written last and atomically, so a killed stage never looks finished;
a stage whose inputs changed is rebuilt, one whose inputs did not is reused.

Run formats (`distilrnn.run.RUN_VERSION`): a fingerprint covers every setting of its section
that can change the result (a setting declared with `fingerprint=False`, such as `report_to`,
cannot). A record of an older format was fingerprinted over the settings that format knew;
`SETTINGS_ADDED_AFTER` says which settings each later format added and the value that older runs
implicitly had, so such a record is checked with the old formula and upgraded when it holds.
Adding a setting that changes results means: bump `RUN_VERSION`, and list it here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilrnn.atomic import write_json_atomic
from distilrnn.run import RUN_VERSION, STAGE_FILE

if TYPE_CHECKING:
    from datasets import Dataset

    from distilrnn.data import Task
    from distilrnn.run import Run, StudentRecord, TeacherRecord

logger = logging.getLogger(__name__)

# The stages of a run, in order; `Pipeline.run(until=...)` stops after the one named.
# data -> teacher -> calibration -> augment -> label -> student -> evaluate -> report
STAGES: dict[str, tuple[str, ...]] = {
    "data": (),
    "teacher": ("data",),
    "calibration": ("teacher",),  # the teacher's temperature, for `temperature = "auto"`
    "augment": ("data", "teacher"),  # only when a distilled student trains on the transfer set
    "label": ("teacher", "augment"),  # teacher logits on the transfer set (or the train split)
    "student": ("data", "teacher", "calibration", "label"),  # per variant and seed
    "evaluate": ("student",),
    "report": ("evaluate",),
}

# settings each run format added, per section, with the value runs of the format before had
SETTINGS_ADDED_AFTER: dict[int, dict[str, dict[str, Any]]] = {
    1: {"student": {"embedding_projection": 0, "init_from": "", "train_layers": "all"}},
}


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(path: Path) -> str:
    """Digest of a model folder's files (names and contents); a hub id is its own identity."""
    if not path.is_dir():
        return str(path)
    return fingerprint([(p.name, file_digest(p)) for p in sorted(path.iterdir()) if p.is_file()])


def fingerprinted(settings: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A settings dataclass as the dict its stage's fingerprint covers: every field but those
    declared with `fingerprint=False` and those in `drop`."""
    return {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if field.metadata.get("fingerprint", True) and field.name not in drop
    }


def settings_of_version(section: str, values: dict[str, Any], version: int) -> dict[str, Any]:
    """`values` as a record of run format `version` fingerprinted them: the settings added
    after that format are left out where they hold the value older runs implicitly had."""
    out = dict(values)
    for since, sections in SETTINGS_ADDED_AFTER.items():
        if since < version:
            continue
        for name, implicit in sections.get(section, {}).items():
            if out.get(name) == implicit:
                out.pop(name, None)
    return out


@dataclass
class Stage:
    """A stage's folder, the fingerprint of its inputs and, for records of older formats, the
    fingerprint those formats would have given them (`legacy`)."""

    name: str
    directory: Path
    fingerprint: str
    legacy: dict[int, str] = field(default_factory=dict)

    @property
    def record_path(self) -> Path:
        return self.directory / STAGE_FILE

    def record(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.record_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def is_complete(self) -> bool:
        """Finished with these inputs. A record of an older format whose old fingerprint
        matches is upgraded in place (same artifact, new fingerprint)."""
        record = self.record()
        if record is None:
            return False
        version = record.get("run_version", 1)
        if version == RUN_VERSION:
            return record.get("fingerprint") == self.fingerprint
        if record.get("fingerprint") != self.legacy.get(version, self.fingerprint):
            return False
        record.update(fingerprint=self.fingerprint, run_version=RUN_VERSION)
        write_json_atomic(self.record_path, record)
        logger.info(
            "%s: record of run format %d upgraded in %s", self.name, version, self.directory
        )
        return True

    def begin(self) -> None:
        """Mark the folder unfinished before (re)building it."""
        self.record_path.unlink(missing_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def finish(self, settings: Any) -> None:
        write_json_atomic(
            self.record_path,
            {"fingerprint": self.fingerprint, "run_version": RUN_VERSION, "settings": settings},
        )


class Ledger:
    """A pipeline's stage bookkeeping: which stages it built and which it reused, `--force`,
    and the run folder checked before the first stage reads it and marked (`Run.open`) before
    the first is built or reused, so a stage that fails before building anything (a bad data
    path) leaves no folder behind."""

    def __init__(self, folder: Run, force: set[str]):
        self.folder = folder
        self.force = force
        self.reused: list[str] = []
        self.built: list[str] = []
        self._checked = self._opened = False

    def check(self) -> None:
        if not self._checked:
            self.folder.check()
            self._checked = True

    def stage(self, name: str, directory: Path, *parts: Any) -> Stage:
        """The stage `name` in `directory`, fingerprinted over `parts`."""
        self.check()
        return Stage(name, directory, fingerprint(name, *parts))

    def done(self, stage: Stage) -> bool:
        """Whether `stage` is finished with these inputs (and not forced): then it is reused."""
        done = stage.is_complete() and stage.name not in self.force
        (self.reused if done else self.built).append(f"{stage.name}:{stage.directory.name}")
        if done:
            self._open()  # a reused first-format folder gets its marker
            logger.info("%s: reusing %s", stage.name, stage.directory)
        return done

    def begin(self, stage: Stage) -> None:
        """Mark the run folder, then `stage` unfinished, before building it."""
        self._open()
        stage.begin()

    def _open(self) -> None:
        self.check()
        if not self._opened:
            self.folder.open()
            self._opened = True


def student_stage(
    directory: Path, inputs: list[Any], values: dict[str, Any], seed: int, parent: Built | None
) -> Stage:
    """A student's stage: its inputs (data, teacher and label fingerprints, and the student it
    starts from), its settings and its seed; with the fingerprint each older run format gave
    it, the parent's of that format in place of the parent's own."""

    def student_fingerprint(values: dict[str, Any], parent_fingerprint: str | None) -> str:
        parts = [*inputs, parent_fingerprint] if parent_fingerprint is not None else inputs
        return fingerprint("student", parts, values, seed)

    legacy = {
        version: student_fingerprint(
            settings_of_version("student", values, version),
            parent and parent.legacy.get(version),
        )
        for version in SETTINGS_ADDED_AFTER
    }
    current = student_fingerprint(values, parent and parent.fingerprint)
    return Stage("student", directory, current, legacy)


@dataclass
class Built:
    """A stage's output with the fingerprint the stages after it read (and, for students, the
    fingerprints older run formats gave it, by format)."""

    value: Any
    fingerprint: str
    legacy: dict[int, str] = field(default_factory=dict)


@dataclass
class RunOutputs:
    """What `Pipeline.run` built or reused, up to the stage it was asked for."""

    task: Task | None = None
    teacher: TeacherRecord | None = None
    temperature: float | None = None
    transfer: Dataset | None = None
    labelled: Dataset | None = None
    students: list[StudentRecord] = field(default_factory=list)
    results: dict[str, Any] | None = None
    report: Path | None = None


def once(method: Callable[..., Built]) -> Callable[..., Built]:
    """A stage method that runs once per pipeline and argument list; later calls (a variant's
    parent asked for by several children, the teacher read by every stage) get its result."""

    @functools.wraps(method)
    def run_once(self: Any, *args: Any) -> Built:
        key = (method.__name__, *(getattr(a, "name", a) for a in args))
        if key not in self._results:
            self._results[key] = method(self, *args)
        return self._results[key]

    return run_once
