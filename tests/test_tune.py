"""`distilrnn tune`: an Optuna search over a variant's student settings on the tiny fixtures,
in SQLite in the run folder and with two workers sharing one PostgreSQL study."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import tiny_run_overrides
from typer.testing import CliRunner

from distilrnn.cli import app
from distilrnn.config import load_config
from distilrnn.config_io import config_from_dict
from distilrnn.errors import ConfigError
from distilrnn.pipeline import Pipeline
from distilrnn.tune import STUDY_DB, TUNE_DIR, tune, variant_toml

POSTGRES_URL = "DISTILRNN_TEST_POSTGRES_URL"
SPACE = [
    "tune.space.learning_rate={low = 1e-3, high = 3e-2, log = true}",
    "tune.space.hidden_size=[8, 16]",
]


def _overrides(task_dir: Path, teacher_dir: Path, run_dir: Path) -> list[str]:
    return [*tiny_run_overrides(task_dir, teacher_dir, run_dir), *SPACE]


def _set(overrides: list[str]) -> list[str]:
    return [arg for text in overrides for arg in ("--set", text)]


def _printed_toml(stdout: str) -> str:
    """What `distilrnn tune` prints last: the best trial as TOML (the Trainer's logs before it)."""
    return stdout[stdout.index("# best of") :]


def test_tune_keeps_its_study_in_the_run_folder_and_prints_the_best_as_a_variant(
    tiny_teacher_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    overrides = _overrides(task_dir, tiny_teacher_dir, run_dir)
    args = ["tune", "--trials", "2", "--variant", "baseline-lstm", *_set(overrides)]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    assert (run_dir / TUNE_DIR / STUDY_DB).is_file()
    assert (run_dir / TUNE_DIR / "history-baseline-lstm.png").is_file()
    assert (run_dir / TUNE_DIR / "best-baseline-lstm.toml").read_text() in result.stdout
    table = tomllib.loads(_printed_toml(result.stdout))["variant"][0]
    assert table["name"] == "baseline-lstm-tuned"
    assert table["hidden_size"] in (8, 16) and 1e-3 <= table["learning_rate"] <= 3e-2
    config = config_from_dict({"variant": [table]})  # pastes into a config as it is
    assert config.student_for(config.variants[0]).hidden_size == table["hidden_size"]
    study = optuna.load_study(
        study_name="baseline-lstm", storage=f"sqlite:///{run_dir / TUNE_DIR / STUDY_DB}"
    )
    assert len(study.trials) == 2  # and a second call with the same count trains nothing more
    again = CliRunner().invoke(app, args, terminal_width=400)
    assert again.exit_code == 0, again.output
    assert len(optuna.load_study(study_name="baseline-lstm", storage=study._storage).trials) == 2


def test_report_shows_the_study_history(
    tiny_teacher_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    config = load_config(None, [*_overrides(task_dir, tiny_teacher_dir, run_dir), "tune.trials=1"])
    tune(config)
    Pipeline(config, variants=["baseline-lstm"]).run()
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Hyper-parameter search" in report
    assert "(tune/history-baseline-lstm.png)" in report


def test_a_poor_trial_is_pruned_at_an_evaluation(
    tiny_teacher_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        *tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir),
        "student.epochs=4",  # one evaluation an epoch: four chances to prune
        "tune.space.learning_rate={low = 1e-7, high = 3e-2, log = true}",
        "tune.startup_trials=2",
        "tune.warmup_evaluations=0",
        "tune.trials=3",
    ]
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # tune.storage: any database URL
    config = load_config(None, [*overrides, f'tune.storage="{storage}"'])
    # two good trials first, then one whose learning rate cannot move the student off its start
    study = optuna.create_study(study_name="baseline-lstm", storage=storage, direction="maximize")
    for learning_rate in (3e-2, 3e-2, 1e-7):
        study.enqueue_trial({"learning_rate": learning_rate})
    result = tune(config)
    states = {t["number"]: t["state"] for t in result.trials}
    assert states == {0: "complete", 1: "complete", 2: "pruned"}
    assert result.best_params == {"learning_rate": 3e-2}


def test_a_study_of_another_variant_is_refused(
    tiny_teacher_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="shared", storage=storage).set_user_attr("variant", "other")
    overrides = [*_overrides(task_dir, tiny_teacher_dir, tmp_path / "run"), "tune.study=shared"]
    config = load_config(None, [*overrides, f'tune.storage="{storage}"'])
    with pytest.raises(ConfigError, match="already searches variant 'other'"):
        tune(config)


def test_an_empty_search_space_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tune\.space is empty"):
        tune(load_config(None, [f'run_dir="{tmp_path / "run"}"']))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"seeds": [[0], [1]]}, "is not a student setting to search"),
        ({"rnn": {"low": 1, "high": 2}}, "is not a number setting"),
        ({"hidden_size": {"low": 8.5, "high": 16}}, "low must be a whole number"),
        ({"learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}, "a log range needs low > 0"),
        ({"input_dropout": {"low": 0.1, "high": 1.5}}, "tune.space.input_dropout: 1.5: student"),
        ({"num_layers": []}, "needs at least one choice"),
        ({"learning_rate": {"low": 1e-3, "top": 1e-2}}, "unknown key(s) top"),
    ],
)
def test_a_bad_search_space_is_a_config_error(space: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({"tune": {"space": space}})
    assert message in str(error.value)


def test_variant_toml_writes_values_toml_reads_back() -> None:
    values = {"rnn": 'g"ru', "learning_rate": 1.5e-05, "hidden_size": 64, "bidirectional": False}
    assert tomllib.loads(variant_toml("x", values, comment="c"))["variant"] == [
        {"name": "x", **values}
    ]


@pytest.mark.skipif(
    not os.environ.get(POSTGRES_URL),
    reason=f"{POSTGRES_URL} is not set (.ci/run starts PostgreSQL and sets it)",
)
def test_two_workers_share_one_postgres_study(
    tiny_teacher_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    url, trials = os.environ[POSTGRES_URL], 4
    study_name = f"test-{uuid.uuid4().hex[:12]}"
    overrides = _overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    Pipeline(load_config(None, overrides)).run(until="teacher")  # built once, then reused
    command = [sys.executable, "-c", "from distilrnn.cli import main; main()", "tune"]
    command += ["--trials", str(trials), "--storage", url, "--study", study_name, *_set(overrides)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
        for worker, (_, stderr) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, stderr
        study = optuna.load_study(study_name=study_name, storage=url)
        numbers = [t.number for t in study.trials]
        assert len(numbers) == len(set(numbers))
        finished = [t for t in study.trials if t.state.is_finished()]
        # each worker checks the count before a trial starts: two starting at the same instant
        # may each add one
        assert trials <= len(finished) <= trials + 1
        assert {tomllib.loads(_printed_toml(out))["variant"][0]["name"] for out, _ in outputs} == {
            "baseline-lstm-tuned"
        }
    finally:
        for worker in workers:
            worker.kill()
        optuna.delete_study(study_name=study_name, storage=url)
