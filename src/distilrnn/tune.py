"""Hyper-parameter search over a variant's student settings with Optuna.

`tune(config)` runs trials until the study holds `tune.trials` of them: each draws values for
the settings named in `[tune.space]`, trains one student through the same `fit_student` as the
`student` stage (the data, teacher and label stages built once by the `Pipeline` and reused),
and scores it on the validation split by the task's primary metric (`task.metrics[0]`). Optuna's
`MedianPruner` stops a trial whose score at an evaluation falls below the median of earlier
trials at the same evaluation. The study lives in SQLite in the run folder (`tune/study.db`)
unless `tune.storage` names a database, which workers on several machines then share: each
`distilrnn tune` against the same storage and study adds trials until the study holds enough.

    result = tune(load_config("configs/sst2.toml", ["tune.trials=20"]))
    print(result.toml)          # the best trial as a [[variant]] table
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import optuna
from transformers import TrainerCallback

from distilrnn.atomic import write_atomically, write_json_atomic
from distilrnn.config import RunConfig, StudentSettings, TuneSettings, Variant
from distilrnn.config_io import student_settings
from distilrnn.errors import ConfigError, StudentError
from distilrnn.run import Run, check_name, training_rows

logger = logging.getLogger(__name__)

TUNE_DIR = "tune"
STUDY_DB = "study.db"
# states a trial counts in toward `tune.trials`: a failed trial (diverged, or a worker that
# stopped beating its heart) is retried by the next worker
COUNTED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


@dataclass
class TuneResult:
    """What a search found: the study's name and storage, its best trial, and the best trial's
    settings as a `[[variant]]` TOML table (`toml`)."""

    study: str
    storage: str
    metric: str
    best_value: float
    best_trial: int
    best_params: dict[str, Any]
    toml: str
    history_plot: Path
    trials: list[dict[str, Any]]


def tune_dir(run: Run) -> Path:
    """The run folder's tune/ folder: the SQLite study and the history plots."""
    return run.root / TUNE_DIR


def storage_url(settings: TuneSettings, run: Run) -> str:
    """`tune.storage`, or SQLite in the run folder."""
    if settings.storage:
        return settings.storage
    tune_dir(run).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(tune_dir(run) / STUDY_DB).resolve()}"


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Draw a value for each setting of `space` (checked by `config.check_search_dimension`):
    a list is categorical, a range of a whole-number setting an int range, else a float range."""
    values = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            values[name] = trial.suggest_categorical(name, spec)
            continue
        low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
        whole = all(isinstance(spec.get(k, 1), int) for k in ("low", "high", "step"))
        if whole and get_type_hints(StudentSettings)[name] is int:
            values[name] = trial.suggest_int(name, low, high, step=spec.get("step", 1), log=log)
        else:
            step = spec.get("step")
            values[name] = trial.suggest_float(
                name, float(low), float(high), step=None if step is None else float(step), log=log
            )
    return values


class PruningCallback(TrainerCallback):
    """Report each evaluation's primary metric to the trial (step = the evaluation's number,
    1, 2, ..., so trials with other batch sizes still line up) and stop a trial the pruner
    rules out."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.evaluations = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None:
            return
        self.evaluations += 1
        self.trial.report(float(value), self.evaluations)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"validation {self.metric} {value:.4f} at evaluation {self.evaluations}"
            )


def tune(config: RunConfig, device: str = "cpu") -> TuneResult:
    """Run the search `config.tune` describes until its study holds `tune.trials` trials;
    return the best. Shared stages (data, teacher, labels, calibration) come from the
    `Pipeline` as `distilrnn student` would build them."""
    from distilrnn.pipeline import Pipeline

    settings = config.tune
    if not settings.space:
        raise ConfigError("tune.space is empty: name the student settings to search")
    if not config.variants:
        raise ConfigError("tune: the config has no [[variant]] to start the trials from")
    variant = config.variant(settings.variant) if settings.variant else config.variants[0]
    study_name = check_name(settings.study or variant.name, "study name")
    pipeline = Pipeline(config, device=device, variants=[variant.name])
    base = config.student_for(variant)
    objective = _Objective(pipeline, variant, base, settings.space, study_name, device)
    run = pipeline.folder
    storage_text = storage_url(settings, run)
    with warnings.catch_warnings():  # the heartbeat is experimental, and what we want
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a worker that dies leaves a RUNNING trial; without a heartbeat for 90 s it is failed
        storage = optuna.storages.RDBStorage(storage_text, heartbeat_interval=30, grace_period=90)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",  # every metric of `distilrnn.metrics` is better higher
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=None if settings.seed < 0 else settings.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=settings.startup_trials,
            n_warmup_steps=settings.warmup_evaluations,
        ),
    )
    for key, value in (("variant", variant.name), ("metric", objective.metric)):
        known = study.user_attrs.get(key, value)
        if known != value:
            raise ConfigError(
                f"study {study_name!r} already searches {key} {known!r}, not {value!r}: "
                "choose another study name (--study)"
            )
        study.set_user_attr(key, value)

    def enough(study: optuna.Study) -> bool:
        return len(study.get_trials(deepcopy=False, states=COUNTED)) >= settings.trials

    def stop_when_enough(study: optuna.Study, trial: Any) -> None:
        if enough(study):
            study.stop()

    with warnings.catch_warnings():  # a dead worker's trial does not count
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if not enough(study):
        study.optimize(
            objective,
            n_trials=settings.trials,
            callbacks=[stop_when_enough],
            catch=(StudentError,),  # a diverging trial fails; the search goes on
        )
    return _result(study, storage_text, variant, objective.metric, run)


class _Objective:
    """One trial: the variant's settings with the trial's values, trained by `fit_student`."""

    def __init__(
        self,
        pipeline: Any,
        variant: Variant,
        base: StudentSettings,
        space: dict[str, Any],
        study: str,
        device: str,
    ):
        from distilrnn.teacher import load_tokenizer

        self.pipeline, self.variant, self.base, self.space = pipeline, variant, base, space
        self.device, self.study = device, study
        data, teacher = pipeline.data(), pipeline.teacher()
        self.task = data.value
        self.metric = self.task.metrics[0]
        self.teacher_dir = teacher.value.model_dir
        self.tokenizer = load_tokenizer(str(self.teacher_dir))
        self.seed = base.seeds[0]
        distils = base.objective != "ce" or any(v != "ce" for v in space.get("objective", []))
        self.labelled = pipeline.label().value if distils else None
        # the teacher's sentence vectors, when a trial can weigh the representation objective
        represents = base.repr_weight > 0 or any(
            float(v) > 0 for v in _dimension_ends(space.get("repr_weight", []))
        )
        self.states = pipeline.states().value if represents else None
        parent = base.init_from
        self.init_dir = (
            pipeline.student(pipeline.config.variant(parent), self.seed).value.directory
            if parent
            else None
        )

    def settings(self, values: dict[str, Any]) -> StudentSettings:
        settings = student_settings(self.base, **values)
        if settings.temperature == "auto":  # as the student stage: only `kl` reads it
            kl = settings.objective == "kl"
            temperature = self.pipeline.calibration().value if kl else 1.0
            settings = dataclasses.replace(settings, temperature=temperature)
        return settings

    def __call__(self, trial: optuna.Trial) -> float:
        from distilrnn.distillation import fit_student

        settings = self.settings(suggest(trial, self.space))
        train = (
            training_rows(self.labelled, len(self.task.splits["train"]), settings.transfer_set)
            if self.labelled is not None and settings.objective != "ce"
            else self.task.splits["train"]
        )
        work_dir = self.pipeline.folder.work_dir / TUNE_DIR / f"{self.study}-{trial.number}"
        shutil.rmtree(work_dir, ignore_errors=True)  # a trial never resumes another's checkpoint
        try:
            _, metrics, _ = fit_student(
                settings,
                self.seed,
                train,
                self.task,
                self.teacher_dir,
                self.tokenizer,
                work_dir,
                self.device,
                init=self.init_dir,
                name=f"{self.variant.name} trial {trial.number}",
                callbacks=[PruningCallback(trial, self.metric)],
                teacher_states=(
                    self.states[: len(train)]
                    if self.states is not None and settings.repr_weight > 0
                    else None
                ),
            )
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        trial.set_user_attr(f"test_{self.metric}", metrics.get(f"test_{self.metric}"))
        trial.set_user_attr("train_seconds", metrics["train_seconds"])
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return float(metrics[f"validation_{self.metric}"])


def _dimension_ends(spec: Any) -> list[Any]:
    """The values a search dimension can reach at its ends: a list's choices, a range's ends."""
    return [spec["low"], spec["high"]] if isinstance(spec, dict) else list(spec)


def _result(
    study: optuna.Study, storage: str, variant: Variant, metric: str, run: Run
) -> TuneResult:
    from distilrnn.report.plots import plot_study_history

    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "last_value": _last_value(t),
            "params": t.params,
            "user_attrs": t.user_attrs,
        }
        for t in study.get_trials(deepcopy=False)
    ]
    complete = [t for t in trials if t["state"] == "complete"]
    if not complete:
        raise StudentError(
            f"study {study.study_name}: no trial completed ({len(trials)} pruned or failed)"
        )
    best = study.best_trial
    folder = tune_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    history = folder / f"history-{study.study_name}.png"
    plot_study_history(trials, metric, history, title=f"study {study.study_name}")
    write_json_atomic(
        folder / f"history-{study.study_name}.json", {"metric": metric, "trials": trials}
    )
    toml = variant_toml(
        f"{variant.name}-tuned",
        {**variant.overrides, **best.params},
        comment=(
            f"best of {len(trials)} trials of study {study.study_name} (trial {best.number}): "
            f"validation {metric} {best.value:.4f}"
        ),
    )
    write_atomically(folder / f"best-{study.study_name}.toml", lambda tmp: tmp.write_text(toml))
    logger.info(
        "study %s: best validation %s %.4f (trial %d)",
        study.study_name,
        metric,
        best.value,
        best.number,
    )
    return TuneResult(
        study=study.study_name,
        storage=storage,
        metric=metric,
        best_value=float(best.value),
        best_trial=best.number,
        best_params=dict(best.params),
        toml=toml,
        history_plot=history,
        trials=trials,
    )


def _last_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """A finished trial's score; a pruned one's at its last evaluation."""
    if trial.value is not None:
        return trial.value
    steps = trial.intermediate_values
    return steps[max(steps)] if steps else None


def variant_toml(name: str, values: dict[str, Any], comment: str = "") -> str:
    """A `[[variant]]` table named `name` with `values` (TOML scalars and lists of them)."""
    lines = [f"# {comment}"] if comment else []
    lines += ["[[variant]]", f"name = {_toml_value(name)}"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as a TOML value")
