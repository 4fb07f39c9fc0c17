"""Many students at once: `--jobs N` worker processes, and concurrent commands on one run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_run_overrides

from distilrnn.config_io import load_config
from distilrnn.errors import ConfigError, StudentError
from distilrnn.jobs import Job, plan_jobs, threads_per_job
from distilrnn.pipeline import Pipeline

TWO_VARIANTS = (
    'variant=[{name="base", objective="ce"}, {name="kl", objective="kl", temperature=2.0}]'
)
CHAIN = (
    'variant=[{name="wide", objective="kl", temperature=2.0}, '
    '{name="narrow", objective="kl", temperature=2.0, init_from="wide", '
    "embedding_projection=8, epochs=1}]"
)


def _overrides(task_dir, teacher_dir, run_dir, *extra):
    return [*tiny_run_overrides(task_dir, teacher_dir, run_dir), "student.epochs=1", *extra]


def _student_records(run_dir):
    """`{variant/seed: stage fingerprint}` of every finished student of `run_dir`."""
    return {
        f"{path.parent.parent.name}/{path.parent.name}": json.loads(path.read_text())["fingerprint"]
        for path in (run_dir / "students").glob("*/seed-*/stage.json")
    }


def test_plan_puts_an_init_from_parent_before_its_child_for_each_seed(
    task_dir, tiny_teacher_dir, tmp_path
):
    config = load_config(
        None, _overrides(task_dir, tiny_teacher_dir, tmp_path / "r", CHAIN, "student.seeds=[0, 1]")
    )
    planned = plan_jobs(config, ["narrow"])  # the parent is trained although not selected
    assert planned == [
        Job("wide", 0),
        Job("narrow", 0, ("wide", 0)),
        Job("wide", 1),
        Job("narrow", 1, ("wide", 1)),
    ]


def test_threads_are_split_between_jobs_one_at_least():
    import torch

    assert threads_per_job(2, threads=3) == 3
    assert threads_per_job(10**6) == 1
    assert threads_per_job(1) == torch.get_num_threads()


def test_jobs_is_an_option_of_student_and_run_only():
    from typer.testing import CliRunner

    from distilrnn.cli import app

    runner = CliRunner()
    has_jobs = {
        command: "--jobs" in runner.invoke(app, [command, "--help"], terminal_width=200).output
        for command in ("student", "run", "label", "teacher")
    }
    assert has_jobs == {"student": True, "run": True, "label": False, "teacher": False}
    assert runner.invoke(app, ["student", "--jobs", "0"]).exit_code == 2


def test_jobs_below_one_is_a_config_error(task_dir, tiny_teacher_dir, tmp_path):
    config = load_config(None, _overrides(task_dir, tiny_teacher_dir, tmp_path / "r"))
    with pytest.raises(ConfigError, match="--jobs must be >= 1"):
        Pipeline(config, jobs=0)


def test_jobs_2_trains_every_student_as_one_by_one_does(task_dir, tiny_teacher_dir, tmp_path):
    one_by_one = Pipeline(
        load_config(None, _overrides(task_dir, tiny_teacher_dir, tmp_path / "a", TWO_VARIANTS))
    )
    one_by_one.run(until="student")
    parallel = Pipeline(
        load_config(None, _overrides(task_dir, tiny_teacher_dir, tmp_path / "b", TWO_VARIANTS)),
        jobs=2,
    )
    out = parallel.run(until="student")

    assert sorted(parallel.built) == sorted(one_by_one.built)
    assert [s.directory.parent.name for s in out.students] == ["base", "kl"]
    assert _student_records(tmp_path / "b") == _student_records(tmp_path / "a")
    assert len(_student_records(tmp_path / "b")) == 2
    again = Pipeline(parallel.config, jobs=2)
    again.run(until="student")
    assert again.built == []


def test_jobs_2_trains_an_init_from_parent_before_its_child(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    config = load_config(None, _overrides(task_dir, tiny_teacher_dir, run_dir, CHAIN))
    pipeline = Pipeline(config, variants=["narrow"], jobs=2)
    out = pipeline.run()  # evaluate and report read what the workers trained

    # the child's job starts only once its parent's has finished: built in that order
    assert pipeline.built[-2:] == ["student:wide/seed-0", "student:narrow/seed-0"]
    assert [s.directory.parent.name for s in out.students] == ["narrow"]
    assert out.report.is_file()
    parent = run_dir / "students" / "wide" / "seed-0" / "stage.json"
    child = run_dir / "students" / "narrow" / "seed-0" / "stage.json"
    assert parent.stat().st_mtime <= child.stat().st_mtime


def test_a_failing_worker_is_one_error_naming_its_variant_and_seed(
    task_dir, tiny_teacher_dir, tmp_path
):
    too_wide = CHAIN.replace("embedding_projection=8", "embedding_projection=64")
    config = load_config(None, _overrides(task_dir, tiny_teacher_dir, tmp_path / "run", too_wide))
    with pytest.raises(
        StudentError, match=r"^variant narrow, seed 0: student.embedding_projection = 64 is wider"
    ):
        Pipeline(config, jobs=2).run(until="student")


def test_two_concurrent_student_commands_on_one_run_folder_both_finish_uncorrupted(
    task_dir, tiny_teacher_dir, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = _overrides(task_dir, tiny_teacher_dir, run_dir, TWO_VARIANTS)
    Pipeline(load_config(None, overrides)).run(until="label")
    command = [str(Path(sys.executable).with_name("distilrnn")), "student"]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # both train every student (the first in two workers): one command builds each student,
    # the other waits for its lock and reuses it
    commands = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for args in ([*command, "--jobs", "2"], command)
    ]
    outputs = [c.communicate(timeout=600)[0].decode() for c in commands]
    assert [c.returncode for c in commands] == [0, 0], outputs

    again = Pipeline(load_config(None, overrides))  # every stage verifies against its manifest
    again.run(until="student")
    assert again.built == []
    assert sorted(_student_records(run_dir)) == ["base/seed-0", "kl/seed-0"]
    assert not list(run_dir.glob("students/*/*.tmp"))


def test_groups_split_on_the_objective_and_the_cell():
    from distilrnn.config import load_config
    from distilrnn.variants import group_variants

    config = load_config(
        None,
        [
            'variant=[{name="ce-lstm", objective="ce"}, {name="ce-gru", objective="ce", '
            'rnn="gru"}, {name="kl", objective="kl"}]'
        ],
    )
    assert group_variants(config, "baselines") == ["ce-lstm", "ce-gru"]
    assert group_variants(config, "baselines", rnn="gru") == ["ce-gru"]
    assert group_variants(config, "distilled") == ["kl"]


POOL_PARENT = """
import concurrent.futures, multiprocessing, os, time
from distilrnn.jobs import _start_worker
if __name__ == "__main__":
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
        initargs=(1, 30, os.getpid()))
    worker = pool.submit(os.getpid).result()
    pool.submit(time.sleep, 120)
    print(worker, flush=True)
    time.sleep(120)
"""


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path):
    import signal
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c", POOL_PARENT], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        worker = int(parent.stdout.readline())
        assert _running(worker)
        parent.send_signal(signal.SIGKILL)  # no handler of the parent's runs: the kernel acts
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(worker)
    finally:
        parent.kill()
