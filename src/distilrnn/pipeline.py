"""Stages, the run directory, and caching by content hash.

A stage's directory is complete when its `stage.json` names the fingerprint of the stage's
inputs (its resolved settings and the fingerprints of the stages it reads). `stage.json` is
written last and atomically, so a killed stage never looks complete; a stage whose inputs
changed is rebuilt, one whose inputs did not is reused.

    run_dir/
      data/                 splits/ (Arrow), labels.json
      teacher/              model/ (transformers checkpoint), metrics.json
      labels/               logits-<fingerprint>/shards/ teacher logits beside the texts
      students/<variant>/seed-<n>/   model.safetensors, config.json, metrics.json
      results.json, results.md
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.config import ConfigError, RunConfig, StudentSettings, Variant
from distilrnn.data import Task, data_files, load_task
from distilrnn.evaluate import load_predictions, save_predictions
from distilrnn.labeling import label_texts, load_labelled, predict_logits
from distilrnn.teacher import check_fits, finetune, load_classifier, load_teacher

logger = logging.getLogger(__name__)

STAGE_FILE = "stage.json"


# Student settings added after runs existed, with the value that means "as before": left out of
# the fingerprint at that value, so adding a setting does not make every finished student stale.
LATER_STUDENT_SETTINGS = {"embedding_projection": 0, "init_from": "", "train_layers": "all"}


def student_fingerprint_settings(settings: StudentSettings) -> dict[str, Any]:
    """The settings a student's fingerprint covers: all but the seeds (the seed is an input of
    its own) and the later settings at their neutral value."""
    values = dataclasses.asdict(settings)
    values.pop("seeds")
    for name, neutral in LATER_STUDENT_SETTINGS.items():
        if values.get(name) == neutral:
            del values[name]
    return values


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
    """Digest of a model folder's files (names and contents), for already fine-tuned teachers."""
    if not path.is_dir():
        return str(path)  # a hub id: its name is its identity
    return fingerprint([(p.name, file_digest(p)) for p in sorted(path.iterdir()) if p.is_file()])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass
class Stage:
    """A stage's directory and the fingerprint of its inputs."""

    directory: Path
    fingerprint: str

    def is_complete(self) -> bool:
        record = self.directory / STAGE_FILE
        if not record.is_file():
            return False
        try:
            return read_json(record).get("fingerprint") == self.fingerprint
        except (json.JSONDecodeError, OSError):
            return False

    def begin(self) -> None:
        """Mark the directory incomplete before rebuilding it."""
        (self.directory / STAGE_FILE).unlink(missing_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def finish(self, settings: Any) -> None:
        write_json_atomic(
            self.directory / STAGE_FILE, {"fingerprint": self.fingerprint, "settings": settings}
        )


class PieceCounter:
    """Subword pieces per word under a tokenizer (picklable, for augmentation workers)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, word: str) -> int:
        return max(1, len(self.tokenizer.tokenize(word)))


class Pipeline:
    """The stages of one run; each method runs its stage unless a complete copy is there."""

    def __init__(
        self,
        config: RunConfig,
        device: str = "cpu",
        force: tuple[str, ...] = (),
        only: tuple[str, ...] = (),
    ):
        """`only` names the variants to train (default: all). The transfer set and its logits
        are still those of the whole config, so training a subset never relabels."""
        unknown = set(only) - {v.name for v in config.variants}
        if unknown:
            raise ConfigError(f"--variant: unknown variant(s) {', '.join(sorted(unknown))}")
        self.config = config
        self.only = set(only)
        self.run_dir = Path(config.run_dir)
        self.device = device
        self.force = set(force)
        self.reused: list[str] = []
        self.built: list[str] = []

    def _stage(self, name: str, directory: Path, *parts: Any) -> tuple[Stage, bool]:
        stage = Stage(directory, fingerprint(name, *parts))
        done = stage.is_complete() and name not in self.force
        (self.reused if done else self.built).append(f"{name}:{directory.name}")
        if done:
            logger.info("%s: reusing %s", name, directory)
        return stage, done

    # data -------------------------------------------------------------------------------
    def data(self) -> tuple[Task, str]:
        settings = dataclasses.asdict(self.config.data)
        files = [(str(p), file_digest(p)) for p in data_files(self.config.data) if p.is_file()]
        stage, done = self._stage("data", self.run_dir / "data", settings, files)
        if done:
            return Task.load(stage.directory), stage.fingerprint
        task = load_task(self.config.data)
        stage.begin()
        tmp = stage.directory / "splits.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        task.splits.save_to_disk(str(tmp))
        replace_directory(tmp, stage.directory / "splits")
        write_json_atomic(stage.directory / "labels.json", {"names": task.label_names})
        sizes = {split: len(task.splits[split]) for split in task.splits}
        write_json_atomic(stage.directory / "metrics.json", {"sizes": sizes})
        stage.finish({"data": settings, "files": files})
        logger.info("data: %s examples, labels %s", sizes, task.label_names)
        return Task.load(stage.directory), stage.fingerprint

    # teacher ----------------------------------------------------------------------------
    def teacher(self, task: Task, data_fp: str) -> tuple[Path, str]:
        """The fine-tuned teacher's folder (fine-tuned here unless `teacher.checkpoint`)."""
        cfg = self.config.teacher
        settings = dataclasses.asdict(cfg)
        if cfg.checkpoint:  # no training: the teacher is what it is, only its evaluation is ours
            settings = {
                "checkpoint": cfg.checkpoint,
                "max_length": cfg.max_length,
                "eval_batch_size": cfg.eval_batch_size,
                "digest": folder_digest(Path(cfg.checkpoint)),
            }
        stage, done = self._stage("teacher", self.run_dir / "teacher", data_fp, settings)
        model_dir = stage.directory / "model"
        if done:
            return model_dir, stage.fingerprint
        stage.begin()
        metrics: dict[str, Any] = {}
        if cfg.checkpoint:
            model = load_classifier(cfg.checkpoint, cfg.trust_remote_code)
            check_fits(model, task.label_names, cfg.checkpoint)
            source = cfg.checkpoint
        else:
            work_dir = self.run_dir / ".work" / f"teacher-{stage.fingerprint[:12]}"
            tmp = stage.directory / "model.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            metrics = finetune(task, cfg, work_dir, tmp, self.device)
            replace_directory(tmp, model_dir)
            shutil.rmtree(work_dir, ignore_errors=True)
            source = str(model_dir)
        model, tokenizer = load_teacher(source, cfg.trust_remote_code)
        predictions = self._split_logits(model, tokenizer, task)
        for split, logits in predictions.items():
            labels = np.asarray(task.splits[split]["label"])
            metrics[f"{split}_accuracy"] = float((logits.argmax(-1) == labels).mean())
        if cfg.checkpoint:
            model.save_pretrained(str(model_dir))
            tokenizer.save_pretrained(str(model_dir))
        save_predictions(stage.directory, predictions)
        write_json_atomic(stage.directory / "metrics.json", metrics)
        stage.finish(settings)
        logger.info(
            "teacher: validation %.4f, test %.4f",
            metrics["validation_accuracy"],
            metrics["test_accuracy"],
        )
        return model_dir, stage.fingerprint

    # label ------------------------------------------------------------------------------
    def augment(self, task: Task, data_fp: str, teacher_dir: Path) -> tuple[Dataset, str]:
        """The transfer set: the training texts (with labels), then generated ones (label -1)."""
        cfg = self.config
        settings = dataclasses.asdict(cfg.augment)
        extra = Path(cfg.augment.extra_text_file) if cfg.augment.extra_text_file else None
        inputs = [
            data_fp,
            cfg.teacher.checkpoint or cfg.teacher.model,
            file_digest(extra) if extra and extra.is_file() else str(extra),
        ]
        stage, done = self._stage("augment", self.run_dir / "augment", inputs, settings)
        transfer_dir = stage.directory / "transfer"
        if not done:
            from transformers import AutoTokenizer

            from distilrnn.augment import build_transfer_set

            stage.begin()
            tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
            train = task.splits["train"]
            texts, labels = list(train["text"]), list(train["label"])
            started = time.perf_counter()
            generated = build_transfer_set(
                texts,
                cfg.augment,
                self.run_dir / ".work" / "pos-tags",
                tokenizer.mask_token,
                count_pieces=PieceCounter(tokenizer),
            )
            seconds = time.perf_counter() - started
            transfer = Dataset.from_dict(
                {
                    "text": texts + generated,
                    "label": labels + [-1] * len(generated),
                }
            )
            tmp = stage.directory / "transfer.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            transfer.save_to_disk(str(tmp))
            replace_directory(tmp, transfer_dir)
            metrics = {
                "train_texts": len(train),
                "generated_texts": len(generated),
                "transfer_texts": len(transfer),
                "seconds": seconds,
            }
            write_json_atomic(stage.directory / "metrics.json", metrics)
            stage.finish({"augment": settings, "inputs": inputs})
            logger.info(
                "augment: %d training + %d generated texts in %.0f s",
                len(train),
                len(generated),
                seconds,
            )
        return Dataset.load_from_disk(str(transfer_dir)), stage.fingerprint

    def label(
        self, texts: Dataset, texts_fp: str, teacher_dir: Path, teacher_fp: str
    ) -> tuple[Dataset, str]:
        """Teacher logits for every text of `texts` (the training split or the transfer set)."""
        cfg = self.config
        settings = {"max_length": cfg.teacher.max_length, "label": dataclasses.asdict(cfg.label)}
        stage, done = self._stage("label", self.run_dir / "labels", teacher_fp, texts_fp, settings)
        shards = stage.directory / f"logits-{stage.fingerprint[:12]}"
        if not done:
            stage.begin()
            for stale in stage.directory.glob("logits-*"):
                if stale != shards:
                    shutil.rmtree(stale)
            model, tokenizer = load_teacher(str(teacher_dir))
            started = time.perf_counter()
            label_texts(
                model,
                tokenizer,
                texts,
                shards,
                cfg.label.batch_size,
                cfg.label.shard_size,
                cfg.teacher.max_length,
                self.device,
                cfg.label.max_tokens,
            )
            seconds = time.perf_counter() - started
            write_json_atomic(
                stage.directory / "metrics.json", {"texts": len(texts), "seconds_this_run": seconds}
            )
            stage.finish(settings)
        return load_labelled(shards), stage.fingerprint

    # students ---------------------------------------------------------------------------
    def student(
        self,
        variant: Variant,
        seed: int,
        task: Task,
        teacher: tuple[Path, str],
        data_fp: str,
        labelled: tuple[Dataset, str] | None,
    ) -> tuple[Path, str]:
        """Train (or reuse) one student, after the student it starts from (`init_from`, same
        seed), whose fingerprint is then one of its inputs. Returns its folder and fingerprint."""
        from distilrnn.distill import train_student

        student_cfg: StudentSettings = self.config.student_for(variant)
        parent = None
        if student_cfg.init_from:
            parent_variant = self.config.variant(student_cfg.init_from)
            parent = self.student(parent_variant, seed, task, teacher, data_fp, labelled)
        transfer = None
        if student_cfg.objective != "ce":
            if labelled is None:
                raise ValueError(f"variant {variant.name!r} needs teacher logits")
            dataset, fp = labelled
            if student_cfg.transfer_set == "train" and len(dataset) > len(task.splits["train"]):
                # the transfer set starts with train
                dataset = dataset.select(range(len(task.splits["train"])))
            transfer = (dataset, fp)
        settings = student_fingerprint_settings(student_cfg)
        inputs = [data_fp, teacher[1], transfer[1] if transfer else None]
        if parent is not None:
            inputs.append(parent[1])
        directory = self.run_dir / "students" / variant.name / f"seed-{seed}"
        stage, done = self._stage("student", directory, inputs, settings, seed)
        if done:
            return directory, stage.fingerprint
        stage.begin()
        if student_cfg.temperature == "auto":  # only `kl` reads the temperature
            temperature = 1.0
            if student_cfg.objective == "kl":
                temperature = self.teacher_temperature(task, *teacher)
            student_cfg = dataclasses.replace(student_cfg, temperature=temperature)
        train = transfer[0] if transfer else task.splits["train"]
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        metrics = train_student(
            student_cfg,
            seed,
            train,
            task,
            teacher[0],
            tmp,
            self.run_dir / ".work" / f"student-{stage.fingerprint[:12]}",
            self.device,
            init_dir=parent[0] if parent else None,
        )
        metrics.update(variant=variant.name, seed=seed)
        write_json_atomic(tmp / "metrics.json", metrics)
        replace_directory(tmp, directory)
        stage.finish(settings)
        return directory, stage.fingerprint

    def _split_logits(self, model: Any, tokenizer: Any, task: Task) -> dict[str, np.ndarray]:
        """The teacher's logits `{split: (n, num_labels)}` on the validation and test halves."""
        cfg = self.config.teacher
        return {
            split: predict_logits(
                model,
                tokenizer,
                list(task.splits[split]["text"]),
                cfg.eval_batch_size,
                cfg.max_length,
                self.device,
            )
            for split in ("validation", "test")
        }

    def teacher_predictions(self, task: Task, teacher_dir: Path) -> dict[str, np.ndarray]:
        """The teacher's validation / test logits saved beside it, computed and saved first
        when missing (runs whose teacher stage predates `predictions.json`)."""
        predictions = load_predictions(teacher_dir.parent)
        if predictions is None:
            predictions = self._split_logits(*load_teacher(str(teacher_dir)), task)
            save_predictions(teacher_dir.parent, predictions)
        return predictions

    def teacher_temperature(self, task: Task, teacher_dir: Path, teacher_fp: str) -> float:
        """The temperature minimising the teacher's validation NLL (Guo et al. 2017).

        Fitted once per teacher and kept beside it in `calibration.json`.
        """
        from distilrnn import calibration

        path = teacher_dir.parent / "calibration.json"
        fitted = read_json(path) if path.is_file() else {}
        if fitted.get("teacher") == teacher_fp:
            return float(fitted["temperature"])
        logits = self.teacher_predictions(task, teacher_dir)["validation"]
        labels = np.asarray(task.splits["validation"]["label"])
        temperature = calibration.fit_temperature(logits, labels)
        write_json_atomic(
            path,
            {
                "teacher": teacher_fp,
                "temperature": temperature,
                "validation_nll": calibration.negative_log_likelihood(logits, labels),
                "validation_nll_scaled": calibration.negative_log_likelihood(
                    logits, labels, temperature=temperature
                ),
                "validation_ece": calibration.expected_calibration_error(logits, labels),
                "validation_ece_scaled": calibration.expected_calibration_error(
                    logits, labels, temperature=temperature
                ),
            },
        )
        logger.info("teacher: validation NLL is lowest at temperature %.3f", temperature)
        return temperature

    def students(
        self,
        task: Task,
        teacher: tuple[Path, str],
        data_fp: str,
        labelled: tuple[Dataset, str] | None,
    ) -> list[Path]:
        directories = []
        for variant in self.selected_variants():
            for seed in self.config.student_for(variant).seeds:
                directory, _ = self.student(variant, seed, task, teacher, data_fp, labelled)
                directories.append(directory)
        return directories

    def selected_variants(self) -> list[Variant]:
        return [v for v in self.config.variants if not self.only or v.name in self.only]

    def _with_parents(self, variants: list[Variant]) -> list[Variant]:
        """`variants` and every variant they start from (`init_from`), transitively."""
        out: list[Variant] = []
        pending = list(variants)
        while pending:
            variant = pending.pop(0)
            if variant in out:
                continue
            out.append(variant)
            parent = self.config.student_for(variant).init_from
            if parent:
                pending.append(self.config.variant(parent))
        return out

    def _distilled(self) -> list[StudentSettings]:
        settings = [self.config.student_for(v) for v in self.config.variants]
        return [s for s in settings if s.objective != "ce"]

    def needs_augment(self) -> bool:
        return any(s.transfer_set == "augmented" for s in self._distilled())

    def transfer_texts(self, task: Task, data_fp: str, teacher_dir: Path) -> tuple[Dataset, str]:
        """What the label stage labels: the transfer set if a student needs it, else train."""
        if self.needs_augment():
            return self.augment(task, data_fp, teacher_dir)
        return task.splits["train"], data_fp

    def labelled(self, task: Task, data_fp: str, teacher: tuple[Path, str]):
        selected = [
            self.config.student_for(v) for v in self._with_parents(self.selected_variants())
        ]
        if all(s.objective == "ce" for s in selected):
            return None
        return self.label(*self.transfer_texts(task, data_fp, teacher[0]), *teacher)

    # everything -------------------------------------------------------------------------
    def run(self) -> dict:
        from distilrnn.evaluate import collect_results

        task, data_fp = self.data()
        teacher = self.teacher(task, data_fp)
        labelled = self.labelled(task, data_fp, teacher)
        student_dirs = self.students(task, teacher, data_fp, labelled)
        results = collect_results(self.config, self.run_dir, teacher[0], student_dirs)
        self.report()
        return results

    def evaluate_finished(self) -> dict:
        """results.json / results.md from the teacher and every finished student folder, in
        the config's variant order (variants no longer in the config last)."""
        from distilrnn.evaluate import collect_results

        teacher_dir = self.run_dir / "teacher" / "model"
        if not (teacher_dir.parent / STAGE_FILE).is_file():
            raise FileNotFoundError(f"no finished teacher in {teacher_dir.parent}: run it first")
        finished = sorted(p.parent for p in (self.run_dir / "students").glob(f"*/*/{STAGE_FILE}"))
        order = {v.name: i for i, v in enumerate(self.config.variants)}
        student_dirs = sorted(
            finished, key=lambda d: (order.get(d.parent.name, len(order)), d.name)
        )
        return collect_results(self.config, self.run_dir, teacher_dir, student_dirs)

    def report(self) -> Path:
        """report.md and its plots, from the finished stages (and any benchmark*.json)."""
        from distilrnn.report import write_report

        self.teacher_predictions(
            Task.load(self.run_dir / "data"), self.run_dir / "teacher" / "model"
        )
        benchmarks = sorted(self.run_dir.glob("benchmark*.json"))
        return write_report(self.run_dir, benchmarks, title=f"distilrnn report: {self.run_dir}")
