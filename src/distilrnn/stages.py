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

What a stage reuses is verified: `stage.json` holds a manifest of the folder's files (relative
path -> size and sha256; not `stage.json`, `logs/`, hidden or `.tmp` temporaries, nor `datasets`'
`cache-*.arrow`), written when the stage finishes. On reuse every file of the manifest must
still be there with its size and digest; a missing or changed file is named in a warning and
the stage is rebuilt, as is every stage that reads it (a student trained on a label stage that
was repaired is retrained). Each stage is hashed once per pipeline. Records without a manifest
(run format 1, and format-2 records written before manifests existed) are trusted as before.

Building is exclusive: the `Ledger` holds a per-stage lock (`Run.lock_file`, via `filelock`)
from the last completeness check to `finish`, so a second command on the same run folder waits
for the stage, then finds it finished and reuses it. A forced stage (`--force`) removes its
`.work` checkpoints before building, so a stale or half-written checkpoint never survives it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from distilrnn.atomic import write_json_atomic
from distilrnn.run import RUN_VERSION, STAGE_FILE

if TYPE_CHECKING:
    from datasets import Dataset

    from distilrnn.data import Task
    from distilrnn.run import StudentRecord, TeacherRecord

logger = logging.getLogger(__name__)

# The stages of a run, in order; `Pipeline.run(until=...)` stops after the one named.
# data -> teacher -> calibration -> augment -> label [-> states] -> student -> evaluate -> report
STAGES: dict[str, tuple[str, ...]] = {
    "data": (),
    "teacher": ("data",),
    "calibration": ("teacher",),  # the teacher's temperature, for `temperature = "auto"`
    "augment": ("data", "teacher"),  # only when a distilled student trains on the transfer set
    "label": ("teacher", "augment"),  # teacher logits on the transfer set (or the train split)
    "states": ("teacher", "augment"),  # the teacher's sentence vectors there, for repr_weight > 0
    "student": ("data", "teacher", "calibration", "label", "states"),  # per variant and seed
    "evaluate": ("student",),
    "report": ("evaluate",),
}

# settings each run format added, per section, with the value runs of the format before had
SETTINGS_ADDED_AFTER: dict[int, dict[str, dict[str, Any]]] = {
    1: {
        "student": {"embedding_projection": 0, "init_from": "", "train_layers": "all"},
        "data": {"header": True, "drop_empty": False, "validation_from_train": 0.0},
    },
    2: {
        "data": {"text_pair_column": "", "task_type": "auto", "metrics": []},
        "student": {"pair_design": "siamese"},
    },
    3: {  # students beyond the RNN, teacher ensembles, representation distillation
        "teacher": {"ensemble_seeds": [], "ensemble_checkpoints": []},
        "label": {"repr_layer": -1, "ensemble": "probabilities"},
        "student": {
            "repr_weight": 0.0,
            "repr_loss": "cosine",
            "encoder": "rnn",
            "kernel_size": 3,
        },
    },
    4: {"augment": {"extra_overlap": 0}},  # extra texts near a held-out text left out
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


def _in_manifest(relative: PurePosixPath) -> bool:
    """Whether a stage folder's file belongs in its manifest: not the record itself, the
    training logs, a temporary (hidden, `.tmp`) or a `datasets` cache file."""
    parts = relative.parts
    if relative.as_posix() == STAGE_FILE or parts[0] == "logs":
        return False
    if any(p.startswith(".") or p.endswith(".tmp") or ".tmp-" in p for p in parts):
        return False
    return not (relative.name.startswith("cache-") and relative.name.endswith(".arrow"))


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """`{relative path: {"size", "sha256"}}` of the files a stage folder's record vouches for."""
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = PurePosixPath(path.relative_to(directory).as_posix())
        if path.is_file() and not path.is_symlink() and _in_manifest(relative):
            files[relative.as_posix()] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    return files


def damaged_files(directory: Path, files: dict[str, dict[str, Any]]) -> dict[str, str]:
    """`{relative path: what is wrong}` for the files of a manifest missing or changed."""
    damaged = {}
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            damaged[name] = "missing"
        elif path.stat().st_size != entry.get("size"):
            damaged[name] = f"{path.stat().st_size} bytes, was {entry.get('size')}"
        elif file_digest(path) != entry.get("sha256"):
            damaged[name] = "content changed"
    return damaged


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
    inputs: Any = ()  # what the fingerprint covers; names the fingerprints of stages it reads
    damaged: list[str] = field(default_factory=list)  # files (relative) found missing or changed
    seen: str | None = None  # the record's text at the last check

    @property
    def label(self) -> str:
        """How logs name the stage: `teacher:teacher`, `student:<variant>/seed-<n>`."""
        folder = self.directory.name
        if self.directory.parent.parent.name == "students":
            folder = f"{self.directory.parent.name}/{folder}"
        return f"{self.name}:{folder}"

    @property
    def record_path(self) -> Path:
        return self.directory / STAGE_FILE

    def record_text(self) -> str | None:
        try:
            return self.record_path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def record(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.record_text() or "")
        except json.JSONDecodeError:
            return None
        return record if isinstance(record, dict) else None

    def is_complete(self) -> bool:
        """Finished with these inputs, and its files are those it finished with (when the
        record has a manifest). A record of an older format whose old fingerprint matches is
        upgraded in place (same artifact, new fingerprint)."""
        self.damaged = []
        self.seen = self.record_text()
        record = self.record()
        if record is None:
            return False
        version = record.get("run_version", 1)
        if version == RUN_VERSION:
            if record.get("fingerprint") != self.fingerprint:
                return False
        elif record.get("fingerprint") != self.legacy.get(version, self.fingerprint):
            return False
        files = record.get("manifest")
        if isinstance(files, dict):
            damaged = damaged_files(self.directory, files)
            self.damaged = list(damaged)
            if damaged:
                shown = ", ".join(f"{name} ({why})" for name, why in list(damaged.items())[:10])
                more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
                logger.warning(
                    "%s: %s is not what it finished with: %s%s; rebuilding it",
                    self.name,
                    self.directory,
                    shown,
                    more,
                )
                return False
        if version != RUN_VERSION:
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
        """Mark the folder finished: its fingerprint, settings and the manifest of its files."""
        write_json_atomic(
            self.record_path,
            {
                "fingerprint": self.fingerprint,
                "run_version": RUN_VERSION,
                "settings": settings,
                "manifest": manifest(self.directory),
            },
        )


def legacy_fingerprints(name: str, settings: dict[str, Any], *parts: Any) -> dict[int, str]:
    """The fingerprints older run formats gave a stage fingerprinted as `(name, settings,
    *parts)` whose section is `name`: its settings as each format knew them."""
    return {
        version: fingerprint(name, settings_of_version(name, settings, version), *parts)
        for version in SETTINGS_ADDED_AFTER
    }


def student_stage(
    directory: Path,
    inputs: list[Built | None],
    values: dict[str, Any],
    seed: int,
    parent: Built | None,
) -> Stage:
    """A student's stage: the stages it reads (data, teacher, labels, and the student it
    starts from), its settings and its seed; with the fingerprint each older run format gave
    it, over the settings that format knew and the fingerprints it gave the stages read."""

    def student_fingerprint(version: int | None) -> str:
        parts = [*inputs, parent] if parent is not None else inputs
        settings = values if version is None else settings_of_version("student", values, version)
        return fingerprint("student", resolve(parts, version), settings, seed)

    legacy = {version: student_fingerprint(version) for version in SETTINGS_ADDED_AFTER}
    reads = resolve((inputs, parent))
    return Stage("student", directory, student_fingerprint(None), legacy, inputs=reads)


def resolve(parts: Any, version: int | None = None) -> Any:
    """`parts` with each `Built` replaced by its fingerprint (by the one run format `version`
    gave it, when given); lists and tuples become lists."""
    if isinstance(parts, Built):
        return (
            parts.fingerprint if version is None else parts.legacy.get(version, parts.fingerprint)
        )
    if isinstance(parts, list | tuple):
        return [resolve(part, version) for part in parts]
    return parts


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
    ensemble: TeacherRecord | None = None  # the teacher ensemble's record, when one is configured
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
