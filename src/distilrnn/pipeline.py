"""The pipeline: the library's stages with a run folder and caching around them.

Each stage calls the public API (`distilrnn.data`, `Teacher`, `augment`, `label_texts`,
`train_student`, `calibrate`, `collect_results`, `write_report`) and keeps its output in the run
folder (`distilrnn.run.Run`) under a fingerprint of its inputs (`distilrnn.stages`): a stage
whose inputs did not change is reused, one whose inputs changed is rebuilt.

    Pipeline(config).run(until="label")          # data, teacher, the transfer set's logits
    Pipeline(config, variants=["kl"]).run()       # everything, training only the `kl` students
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from distilrnn.atomic import write_json_atomic
from distilrnn.config import RunConfig, StudentSettings, TeacherConfig, Variant
from distilrnn.data import Task, data_files, load_task
from distilrnn.distributed import RankedLedger, is_main, rank_device, world_size
from distilrnn.ensemble import ENSEMBLE_SETTINGS, Member, ensemble_members
from distilrnn.errors import ConfigError
from distilrnn.run import (
    Run,
    StudentRecord,
    load_predictions,
    save_predictions,
)
from distilrnn.stage_builds import (
    build_augment,
    build_data,
    build_label,
    build_states,
    build_student,
    build_teacher,
    build_teacher_ensemble,
    label_settings,
    split_logits,
    states_settings,
)
from distilrnn.stages import (
    STAGES,
    Built,
    RunOutputs,
    file_digest,
    fingerprinted,
    folder_digest,
    legacy_fingerprints,
    once,
    student_stage,
)
from distilrnn.teacher import Teacher
from distilrnn.training import resolve_precision
from distilrnn.variants import needs_teacher_logits, needs_transfer_set, select

logger = logging.getLogger(__name__)


class Pipeline:
    """The stages of one run; each runs unless a finished copy with the same inputs is there."""

    def __init__(
        self,
        config: RunConfig,
        device: str = "cpu",
        force: tuple[str, ...] = (),
        variants: Sequence[str] = (),
        jobs: int = 1,
    ):
        """`variants` names the variants to train (default: all; `run(variants=...)` too). The
        transfer set and its logits are still those of the whole config, so a subset never
        relabels. `jobs` > 1 trains the students in that many worker processes
        (`distilrnn.jobs`)."""
        if jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {jobs}")
        if jobs > 1 and world_size() > 1:
            raise ConfigError(
                f"--jobs {jobs} with {world_size()} launched processes: use one or the other"
            )
        self.jobs = jobs
        self.variants = select(config, variants)
        unknown_stages = set(force) - set(STAGES)
        if unknown_stages:
            raise ConfigError(
                f"--force: unknown stage(s) {', '.join(sorted(unknown_stages))}; "
                f"stages: {', '.join(STAGES)}"
            )
        self.config = config
        self.folder = Run(config.run_dir)
        self.device = rank_device(device)  # launched as several processes, each its own GPU
        # launched as several processes, rank 0 decides and the others follow
        self.ledger = RankedLedger(self.folder, set(force))
        self._results: dict[tuple, Built] = {}  # what `once` methods returned, by call

    @property
    def run_dir(self) -> Path:
        return self.folder.root

    @property
    def reused(self) -> list[str]:
        """`stage:folder` of every stage reused so far."""
        return self.ledger.reused

    @property
    def built(self) -> list[str]:
        """`stage:folder` of every stage built so far."""
        return self.ledger.built

    # the whole chain ------------------------------------------------------------------------
    def run(self, until: str = "report", variants: Sequence[str] | None = None) -> RunOutputs:
        """Build every stage up to and including `until` (see `distilrnn.stages.STAGES`),
        reusing finished ones, training the students of `variants` (default: those the pipeline
        was made with). `augment` and `label` are built when asked for, or when a selected
        variant needs them; `evaluate` and `report` read the students trained or reused."""
        if variants is not None:
            self.variants = select(self.config, variants)
        if until not in STAGES:
            raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
        order = list(STAGES)
        wanted = set(order[: order.index(until) + 1])
        out = RunOutputs()
        data = self.data()
        out.task = data.value
        if "student" in wanted:
            self._check_variants_fit(data.value)
        if "teacher" in wanted:
            out.teacher = self.teacher().value
            ensemble = self.ensemble()  # the extra teachers, when the config names any
            out.ensemble = ensemble.value if ensemble else None
        if until == "calibration":
            out.temperature = self.calibration().value
        if until == "augment":
            out.transfer = self.augment().value
        if until == "label":
            out.labelled = self.label().value
        if until == "states":
            self.states()
        if "student" in wanted:
            labelled = self.labelled()
            out.labelled = labelled.value if labelled else None
            out.students = self.students()
        if not is_main():  # rank 0 writes the results and the report
            return out
        if "evaluate" in wanted:
            out.results = self.evaluate([s.directory for s in out.students])
        if "report" in wanted:
            out.report = self.report()
        return out

    def _check_variants_fit(self, task: Task) -> None:
        """Refuse, before anything trains, a variant whose objective the task cannot take."""
        from distilrnn.representations import check_fits

        for variant in self.variants:
            settings = self.config.student_for(variant)
            where = f"variant {variant.name}: "
            check_fits(settings.repr_weight, settings.pair_design, task.is_pair, where)
        if not task.is_regression:
            return
        for variant in self.variants:
            if self.config.student_for(variant).objective == "kl":
                raise ConfigError(
                    f"variant {variant.name}: objective kl distils class distributions; a "
                    "regression task distils the teacher's score with mse (ce is the squared "
                    "error on the gold score)"
                )

    # data -----------------------------------------------------------------------------------
    @once
    def data(self) -> Built:
        """The validated splits and label names."""
        settings = fingerprinted(self.config.data)
        files = [(str(p), file_digest(p)) for p in data_files(self.config.data) if p.is_file()]
        stage = self.ledger.stage("data", self.folder.data_dir, settings, files)
        stage.legacy = legacy_fingerprints("data", settings, files)
        if not self.ledger.done(stage):
            task = load_task(self.config.data)  # before the folder is made: a bad path leaves none
            self.ledger.build(stage, lambda: build_data(self, stage, task, settings, files))
        return Built(self.folder.task(), stage.fingerprint, stage.legacy)

    # teacher --------------------------------------------------------------------------------
    @once
    def teacher(self) -> Built:
        """The fine-tuned teacher (fine-tuned here unless `teacher.checkpoint`), with its
        validation / test logits saved beside it."""
        data = self.data()
        task: Task = data.value
        settings = self._teacher_settings(self.config.teacher)
        stage = self.ledger.stage("teacher", self.folder.teacher_dir, data, settings)
        if not self.ledger.done(stage):
            self.ledger.build(stage, lambda: build_teacher(self, stage, task, settings))
        return Built(self.folder.teacher(), stage.fingerprint, stage.legacy)

    def _teacher_settings(self, cfg: TeacherConfig) -> dict:
        """What a teacher stage's fingerprint covers. Not the ensemble's members: adding them
        leaves the main teacher (and each member) as it was."""
        settings = fingerprinted(cfg, drop=ENSEMBLE_SETTINGS)
        if cfg.checkpoint:  # no training: the teacher is what it is, only its evaluation is ours
            settings = {
                "checkpoint": cfg.checkpoint,
                "max_length": cfg.max_length,
                "eval_batch_size": cfg.eval_batch_size,
                "digest": folder_digest(Path(cfg.checkpoint)),
            }
        elif (precision := resolve_precision(cfg.precision, self.device)) != "fp32":
            settings["precision"] = precision  # fp32 (and `auto` on CPU) keep older fingerprints
        return settings

    @once
    def teacher_member(self, member: Member) -> Built:
        """An extra teacher of the ensemble (`teacher.ensemble_seeds` / `ensemble_checkpoints`):
        fingerprinted, built and reused as the main teacher is, in its own folder; the main
        teacher comes first, since a member is checked against it."""
        data, _ = self.data(), self.teacher()
        settings = self._teacher_settings(member.config(self.config.teacher))
        directory = self.folder.teacher_member_dir(member.name)
        stage = self.ledger.stage("teacher", directory, data, settings)
        if not self.ledger.done(stage):
            self.ledger.build(
                stage, lambda: build_teacher(self, stage, data.value, settings, member)
            )
        return Built(self.folder.teacher_member(member.name), stage.fingerprint, stage.legacy)

    def teacher_members(self) -> list[Built]:
        """The ensemble's extra teachers (none without `teacher.ensemble_*`)."""
        return [self.teacher_member(m) for m in ensemble_members(self.config.teacher)]

    @once
    def ensemble(self) -> Built | None:
        """The teacher ensemble (the main teacher and its extra members) with its combined
        validation / test logits and scores, or None when the config names no members."""
        members = ensemble_members(self.config.teacher)
        if not members:
            return None
        teacher, extra = self.teacher(), self.teacher_members()
        combine = self.config.label.ensemble
        settings = {"combine": combine, "members": [m.name for m in members]}
        directory = self.folder.teacher_ensemble_dir
        stage = self.ledger.stage("teacher", directory, [teacher, *extra], settings)
        if not self.ledger.done(stage):
            records = {"teacher": teacher.value}
            records.update(
                (self.folder.teacher_member_dir(m.name).name, b.value)
                for m, b in zip(members, extra, strict=True)
            )
            self.ledger.build(stage, lambda: build_teacher_ensemble(self, stage, records, settings))
        return Built(self.folder.teacher_ensemble(), stage.fingerprint, stage.legacy)

    def teacher_predictions(self) -> dict[str, np.ndarray]:
        """The teacher's validation / test logits, computed and saved first when missing (runs
        whose teacher stage predates `predictions.json`)."""
        record = self.folder.teacher()
        predictions = load_predictions(record.directory)
        if predictions is None:
            teacher = Teacher.from_pretrained(
                str(record.model_dir), max_length=self.config.teacher.max_length
            )
            predictions = split_logits(self, teacher, self.folder.task())
            save_predictions(record.directory, predictions)
        return predictions

    # calibration ----------------------------------------------------------------------------
    @once
    def calibration(self) -> Built:
        """The temperature minimising the teacher's validation NLL (Guo et al. 2017), for
        `temperature = "auto"`; fitted once per teacher, on the teacher ensemble's combined
        logits when there is one (what the students then learn)."""
        from distilrnn.calibration import calibrate

        teacher, ensemble = self.teacher(), self.ensemble()
        reads = [teacher] if ensemble is None else [teacher, ensemble]
        stage = self.ledger.stage("calibration", self.folder.calibration_dir, *reads)
        if not self.ledger.done(stage):
            if ensemble is None:
                logits = self.teacher_predictions()["validation"]
            else:
                logits = ensemble.value.predictions()["validation"]
            labels = np.asarray(self.folder.task().splits["validation"]["label"])
            scaled = calibrate(logits, labels)
            record = {"teacher": teacher.fingerprint}
            if ensemble is not None:
                scaled["source"] = "teacher ensemble"
                record["ensemble"] = ensemble.fingerprint

            def build() -> None:
                write_json_atomic(stage.directory / "calibration.json", scaled)
                stage.finish(record)

            self.ledger.build(stage, build)
        fitted = self.folder.calibration()
        logger.info(
            "%s: validation NLL is lowest at temperature %.3f",
            fitted.get("source", "teacher"),
            fitted["temperature"],
        )
        return Built(float(fitted["temperature"]), stage.fingerprint, stage.legacy)

    # transfer set and its logits ------------------------------------------------------------
    @once
    def augment(self) -> Built:
        """The transfer set: the training texts (with labels), then generated ones (label -1)."""
        cfg = self.config
        data = self.data()
        extra_file = cfg.augment.extra_text_file
        # how near an extra text may come to the held-out ones matters only with extra texts
        settings = fingerprinted(cfg.augment, drop=() if extra_file else ("extra_overlap",))
        extra = Path(os.path.expandvars(os.path.expanduser(extra_file))) if extra_file else None
        inputs = [
            data,
            cfg.teacher.checkpoint or cfg.teacher.model,
            file_digest(extra) if extra and extra.is_file() else str(extra),
        ]
        stage = self.ledger.stage("augment", self.folder.augment_dir, inputs, settings)
        if not self.ledger.done(stage):
            self.ledger.build(stage, lambda: build_augment(self, stage, data, settings, inputs))
        return Built(self.folder.transfer_set(), stage.fingerprint, stage.legacy)

    def transfer_texts(self) -> Built:
        """What the label stage labels: the transfer set if a student needs it, else train."""
        if needs_transfer_set(self.config):
            return self.augment()
        data = self.data()
        return Built(data.value.splits["train"], data.fingerprint, data.legacy)

    @once
    def label(self) -> Built:
        """Teacher logits for every text of the transfer set (or the training split)."""
        from distilrnn.labeling import load_labelled

        texts, teacher, ensemble = self.transfer_texts(), self.teacher(), self.ensemble()
        settings = label_settings(self)
        reads = [teacher, texts, settings] + ([ensemble] if ensemble else [])
        stage = self.ledger.stage("label", self.folder.labels_dir, *reads)
        shards = stage.directory / f"logits-{stage.fingerprint[:12]}"
        if not self.ledger.done(stage):
            self.ledger.build(
                stage, lambda: build_label(self, stage, shards, texts, teacher, ensemble)
            )
        elif not shards.is_dir():  # a record of an older run format: its folder keeps its name
            shards = next(iter(sorted(stage.directory.glob("logits-*"))), shards)
        return Built(load_labelled(shards), stage.fingerprint, stage.legacy)

    def labelled(self) -> Built | None:
        """The label stage's output when a selected variant (or one it starts from) distils."""
        return self.label() if needs_teacher_logits(self.config, self.variants) else None

    @once
    def states(self) -> Built:
        """The teacher's sentence vectors (`label.repr_layer`) of every text the label stage
        labels (`distilrnn.representations.SentenceVectors`), for `repr_weight` > 0."""
        from distilrnn.representations import SentenceVectors

        texts, teacher = self.transfer_texts(), self.teacher()
        settings = states_settings(self)
        directory = self.folder.states_dir
        stage = self.ledger.stage("states", directory, teacher, texts, settings)
        vectors = stage.directory / f"vectors-{stage.fingerprint[:12]}"
        if not self.ledger.done(stage):
            self.ledger.build(stage, lambda: build_states(self, stage, vectors, texts, teacher))
        cache = SentenceVectors.load(vectors, expected=len(texts.value))
        return Built(cache, stage.fingerprint, stage.legacy)

    # students -------------------------------------------------------------------------------
    def students(self) -> list[StudentRecord]:
        """Every selected variant, each seed (a variant's `init_from` parent first)."""
        if self.jobs > 1:
            from distilrnn.jobs import train_students

            return train_students(self, self.jobs)
        return [
            self.student(variant, seed).value
            for variant in self.variants
            for seed in self.config.student_for(variant).seeds
        ]

    @once
    def student(self, variant: Variant, seed: int) -> Built:
        """Train (or reuse) one student, after the student it starts from (`init_from`, same
        seed), whose fingerprint is then one of its inputs."""
        settings: StudentSettings = self.config.student_for(variant)
        parent = (
            self.student(self.config.variant(settings.init_from), seed)
            if settings.init_from
            else None
        )
        data, teacher = self.data(), self.teacher()
        labelled = self.label() if settings.objective != "ce" else None
        states = self.states() if settings.repr_weight > 0 else None
        values = fingerprinted(settings, drop=("seeds",))  # the seed is an input of its own
        inputs = [data, teacher, labelled] + ([states] if states else [])
        directory = self.folder.student_dir(variant.name, seed)
        self.ledger.check()
        stage = student_stage(directory, inputs, values, seed, parent)
        if not self.ledger.done(stage):
            self.ledger.build(
                stage,
                lambda: build_student(
                    self, stage, variant, seed, settings, parent, labelled, states
                ),
            )
        return Built(StudentRecord.read(directory), stage.fingerprint, stage.legacy)

    # results --------------------------------------------------------------------------------
    def evaluate(self, students: list[Path] | None = None) -> dict:
        """results.json / results.md from the teacher and `students` (default: every finished
        student of the run, in the config's variant order, variants no longer in it last)."""
        from distilrnn.evaluate import collect_results

        if students is None:
            order = {v.name: i for i, v in enumerate(self.config.variants)}
            students = sorted(
                self.folder.finished_students(),
                key=lambda d: (order.get(d.parent.name, len(order)), d.name),
            )
        return collect_results(self.config, self.folder, students)

    def report(self) -> Path:
        """report.md and its plots, from the finished stages (and any benchmark*.json)."""
        from distilrnn.report import write_report

        self.teacher_predictions()  # a teacher stage older than its saved logits gets them
        return write_report(
            self.run_dir, self.folder.benchmark_files(), title=f"distilrnn report: {self.run_dir}"
        )
