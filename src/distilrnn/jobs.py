"""Train independent students (variant x seed) in worker processes: `student --jobs N`.

Small RNNs scale poorly across threads, so on a few cores N one-thread processes train more
students an hour than one N-thread process. The parent builds the stages every student reads
(data, teacher, calibration, labels) once; each worker then runs the pipeline's own per-student
code, so the `Ledger`'s per-stage locks keep it safe beside other commands training students of
the same run folder (another terminal, a SLURM array task). A student whose `init_from` parent
is not finished waits for it: a job is started only once its parent's job has finished.

    records = train_students(pipeline, jobs=2)   # what `pipeline.students()` returns
"""

from __future__ import annotations

import concurrent.futures as futures
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass, field

from distilrnn.config import RunConfig
from distilrnn.errors import DistilrnnError
from distilrnn.run import StudentRecord
from distilrnn.variants import chain

logger = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies


@dataclass(frozen=True)
class Job:
    """One student to train: a variant and a seed, after the job of `parent` (its init_from)."""

    variant: str
    seed: int
    parent: tuple[str, int] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.variant, self.seed)


@dataclass
class Outcome:
    """What a worker reports: its student's ledger entries, and the stages it repaired."""

    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    repaired: set[str] = field(default_factory=set)


def plan_jobs(config: RunConfig, variants: list[str]) -> list[Job]:
    """The jobs for `variants` (each seed) and every variant they start from (`init_from`, the
    same seed), each once, a parent before its children; otherwise in the config's order."""
    jobs: dict[tuple[str, int], Job] = {}
    for name in variants:
        for seed in config.student_for(config.variant(name)).seeds:
            for ancestor in reversed(chain(config, name)):  # the root of the chain first
                parent = config.student_for(config.variant(ancestor)).init_from
                job = Job(ancestor, seed, (parent, seed) if parent else None)
                jobs.setdefault(job.key, job)
    return list(jobs.values())


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """The threads each of `jobs` workers gets: the parent's torch threads split evenly (at
    least one), unless `threads` is given."""
    if threads is not None:
        return max(1, threads)
    import torch

    return max(1, torch.get_num_threads() // jobs)


def train_students(pipeline, jobs: int, threads: int | None = None) -> list[StudentRecord]:
    """Train `pipeline`'s selected students (each seed, and the `init_from` parents they need)
    in `jobs` worker processes of `threads` threads each (default: `threads_per_job`); the
    records of the selected students, in `pipeline.students()`'s order. A worker's failure is
    raised once the running jobs have finished, naming the variant and seed."""
    config: RunConfig = pipeline.config
    selected = [v.name for v in pipeline.variants]
    planned = plan_jobs(config, selected)
    _build_shared_stages(pipeline, planned)
    threads = threads_per_job(jobs, threads)
    logger.info(
        "student: %d students in %d worker processes, %d thread(s) each",
        len(planned),
        jobs,
        threads,
    )
    _run_jobs(pipeline, planned, jobs, threads)
    return [
        StudentRecord.read(pipeline.folder.student_dir(name, seed))
        for name in selected
        for seed in config.student_for(config.variant(name)).seeds
    ]


def _build_shared_stages(pipeline, planned: list[Job]) -> None:
    """The stages the students read, built (or reused) here, once, before any worker starts."""
    config = pipeline.config
    pipeline.data(), pipeline.teacher()
    for job in planned:
        settings = config.student_for(config.variant(job.variant))
        if settings.objective != "ce":
            pipeline.label()
        if settings.objective == "kl" and settings.temperature == "auto":
            pipeline.calibration()
        if settings.repr_weight > 0:
            pipeline.states()


def _run_jobs(pipeline, planned: list[Job], jobs: int, threads: int) -> None:
    """Run `planned` in a pool of `jobs` processes, each job once its parent's has finished;
    merge what each worker built and reused into `pipeline.ledger`."""
    ledger = pipeline.ledger
    force = tuple(sorted(ledger.force & {"student"}))
    level = logging.getLogger().getEffectiveLevel()
    waiting = list(planned)
    finished: set[tuple[str, int]] = set()
    running: dict[futures.Future, Job] = {}
    failures: list[tuple[Job, BaseException]] = []
    context = multiprocessing.get_context("spawn")  # no forked torch / tokenizer thread state
    with futures.ProcessPoolExecutor(
        max(1, min(jobs, len(planned))),
        mp_context=context,
        initializer=_start_worker,
        initargs=(threads, level, os.getpid()),
    ) as pool:
        while waiting or running:
            if not failures:
                for job in [j for j in waiting if j.parent is None or j.parent in finished]:
                    waiting.remove(job)
                    args = (pipeline.config, pipeline.device, force, job, set(ledger.repaired))
                    running[pool.submit(_train_job, *args)] = job
            if not running:
                break  # what is left waits on a parent that failed
            done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as error:  # raised below, once the running jobs end
                    failures.append((job, error))
                    continue
                finished.add(job.key)
                ledger.built += outcome.built
                ledger.reused += outcome.reused
                ledger.repaired |= outcome.repaired
    if failures:
        _raise_failure(failures)


def _raise_failure(failures: list[tuple[Job, BaseException]]) -> None:
    """The first failure, naming its variant and seed: a `DistilrnnError` as the same class
    (one line on the CLI), anything else (a bug) with its worker's traceback attached."""
    job, error = failures[0]
    where = f"variant {job.variant}, seed {job.seed}"
    others = f" ({len(failures) - 1} other job(s) failed too)" if len(failures) > 1 else ""
    if isinstance(error, DistilrnnError):
        try:
            wrapped = type(error)(f"{where}: {error}{others}")
        except TypeError:  # a subclass with another constructor keeps its own message
            raise error from None
        raise wrapped from None
    raise RuntimeError(f"{where}: the worker failed{others}") from error


def _start_worker(threads: int, level: int, parent: int | None = None) -> None:
    """A worker's set-up: it ends with its `parent` process (`_end_with_parent`), `threads`
    threads for torch and the libraries under it (set before torch is imported here), and
    logging at the parent's level, each line naming the process."""
    if parent is not None:
        _end_with_parent(parent)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="[%(processName)s] %(message)s", force=True)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _end_with_parent(parent: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the process that started it ends,
    killed included (`prctl(PR_SET_PDEATHSIG)`): `kill <pid>` of `distilrnn student --jobs N`
    then stops its students too instead of leaving them training on. Elsewhere nothing (a
    worker there ends when the pool finds its parent gone)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _train_job(
    config: RunConfig, device: str, force: tuple[str, ...], job: Job, repaired: set[str]
) -> Outcome:
    """Train (or reuse) one student in a worker, under the Ledger's stage lock. The shared
    stages and the parent student are finished by now and only reused here (never forced, which
    would rebuild them once per worker); `force` and the stages repaired so far apply to this
    student alone, as they would in one process."""
    from distilrnn.pipeline import Pipeline

    pipeline = Pipeline(config, device=device, variants=[job.variant])
    variant = config.variant(job.variant)
    logger.info("student: %s seed %d starting", job.variant, job.seed)
    pipeline.data(), pipeline.teacher()
    if job.parent:
        pipeline.student(config.variant(job.parent[0]), job.parent[1])
    settings = config.student_for(variant)
    if settings.objective != "ce":
        pipeline.label()
    if settings.objective == "kl" and settings.temperature == "auto":
        pipeline.calibration()
    ledger = pipeline.ledger
    before = len(ledger.built), len(ledger.reused)
    ledger.force = set(force)
    ledger.repaired |= repaired
    pipeline.student(variant, job.seed)
    return Outcome(ledger.built[before[0] :], ledger.reused[before[1] :], set(ledger.repaired))
