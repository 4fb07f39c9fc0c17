"""The `Ledger`: a pipeline's stage bookkeeping (built and reused stages, `--force`, the stages
repaired, the per-stage file locks, and when the run folder is checked and marked), over the
stages of `distilrnn.stages`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from distilrnn.stages import SETTINGS_ADDED_AFTER, Stage, fingerprint, resolve

if TYPE_CHECKING:
    from distilrnn.run import Run

# the stages' log, where the Ledger has always logged
logger = logging.getLogger("distilrnn.stages")


class Ledger:
    """A pipeline's stage bookkeeping: which stages it built and which it reused, `--force`,
    the stages repaired (rebuilt because their files were damaged; stages reading them are
    rebuilt too), and the run folder checked before the first stage reads it and marked
    (`Run.open`) before the first is built or reused, so a stage that fails before building
    anything (a bad data path) leaves no folder behind.

        if not ledger.done(stage):   # reused when finished, verified, not forced
            ledger.build(stage, make)  # under the stage's lock, checked again: `make` writes
                                       # the stage's files and calls `stage.finish(settings)`
    """

    def __init__(self, folder: Run, force: set[str]):
        self.folder = folder
        self.force = force
        self.reused: list[str] = []
        self.built: list[str] = []
        self.repaired: set[str] = set()  # fingerprints of stages rebuilt for damaged files
        self._stale: set[str] = set()  # ... and of those rebuilt because they read one
        self._checked = self._opened = False

    def check(self) -> None:
        if not self._checked:
            self.folder.check()
            self._checked = True

    def stage(self, name: str, directory: Path, *parts: Any) -> Stage:
        """The stage `name` in `directory`, fingerprinted over `parts`; a `Built` among them
        (a stage it reads) counts by its fingerprint, and for the fingerprint an older run
        format gave the stage, by the fingerprint that format gave the stage it reads."""
        self.check()
        current = resolve(parts)
        legacy = {v: fingerprint(name, *resolve(parts, v)) for v in SETTINGS_ADDED_AFTER}
        return Stage(name, directory, fingerprint(name, *current), legacy, inputs=current)

    def work_dir(self, stage: Stage) -> Path:
        """The folder of `stage`'s checkpoints while it builds (`.work/<stage>-<fingerprint>`)."""
        return self.folder.work_dir / f"{stage.name}-{stage.fingerprint[:12]}"

    def done(self, stage: Stage) -> bool:
        """Whether `stage` is finished with these inputs, its files verified, no stage it reads
        repaired, and not forced: then it is reused."""
        done = stage.name not in self.force and self._complete(stage)
        (self.reused if done else self.built).append(stage.label)
        if done:
            self._open()  # a reused first-format folder gets its marker
            logger.info("%s: reusing %s", stage.name, stage.directory)
        return done

    def _complete(self, stage: Stage) -> bool:
        if _names_any(stage.inputs, self.repaired):
            logger.warning(
                "%s: rebuilding %s: a stage it reads was rebuilt", stage.name, stage.directory
            )
            self.repaired.add(stage.fingerprint)
            self._stale.add(stage.fingerprint)
            return False
        complete = stage.is_complete()
        if stage.damaged:
            self.repaired.add(stage.fingerprint)
        return complete

    def build(self, stage: Stage, make: Callable[[], None]) -> None:
        """Run `make` (which writes the stage's files and calls `stage.finish`) holding the
        stage's lock, unless another command finished the stage meanwhile (`building`)."""
        with self.building(stage) as build:
            if build:
                make()

    @contextlib.contextmanager
    def building(self, stage: Stage) -> Iterator[bool]:
        """Hold `stage`'s lock (waiting while another command holds it), then check it again:
        True (build it; the folder marked unfinished, a forced stage's checkpoints removed)
        unless another command finished it meanwhile, when it is reused (False)."""
        self._open()
        lock = FileLock(str(self.folder.lock_file(stage.directory)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.info(
                "%s: waiting for %s (built by another process; its lock is held by another "
                "command)",
                stage.name,
                stage.directory,
            )
            lock.acquire()
        try:
            forced = stage.name in self.force
            stale = stage.fingerprint in self._stale
            if not (forced or stale) and stage.record_text() != stage.seen and stage.is_complete():
                entry = stage.label
                self.built.remove(entry)
                self.reused.append(entry)
                logger.info("%s: reusing %s, built by another command", stage.name, stage.directory)
                yield False
                return
            if forced:
                shutil.rmtree(self.work_dir(stage), ignore_errors=True)
            stage.begin()
            yield True
        finally:
            lock.release()

    def _open(self) -> None:
        self.check()
        if not self._opened:
            self.folder.open()
            self._opened = True


def _names_any(parts: Any, fingerprints: set[str]) -> bool:
    """Whether `parts` (strings, lists, tuples, dicts) hold one of `fingerprints`."""
    if not fingerprints:
        return False
    if isinstance(parts, str):
        return parts in fingerprints
    if isinstance(parts, dict):
        return any(_names_any(v, fingerprints) for v in parts.values())
    if isinstance(parts, (list, tuple)):
        return any(_names_any(v, fingerprints) for v in parts)
    return False
