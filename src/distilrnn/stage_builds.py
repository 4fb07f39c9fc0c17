"""What each stage of the pipeline builds, once `distilrnn.pipeline.Pipeline` has decided it
must: the data splits, the teacher and its logits, the transfer set, its labels, a student.
Each function writes the stage's files into its folder and finishes its record last.

Launched as several processes (`distilrnn.distributed`), the teacher, label and student builders
run on every rank (training data-parallel, labelling each rank's shards); only rank 0 writes
the stage's files, metrics and record, and the others then find the stage finished."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset

from distilrnn import distributed
from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.config import StudentSettings, Variant
from distilrnn.data import Task
from distilrnn.ensemble import (
    ENSEMBLE_SETTINGS,
    Member,
    TeacherEnsemble,
    check_member,
    split_predictions,
    vocabulary_problem,
)
from distilrnn.errors import ConfigError
from distilrnn.inputs import PAIR_COLUMN, columns
from distilrnn.metrics import missing_label
from distilrnn.run import (
    METRICS_NAME,
    TeacherRecord,
    load_predictions,
    save_predictions,
    training_rows,
)
from distilrnn.stages import (
    Built,
    Stage,
    fingerprint,
    fingerprinted,
    resolve,
)
from distilrnn.teacher import Teacher, finetune, load_tokenizer

if TYPE_CHECKING:
    from distilrnn.pipeline import Pipeline

logger = logging.getLogger("distilrnn.pipeline")


def build_data(pipeline: Pipeline, stage: Stage, task: Task, settings: dict, files: list) -> None:
    task.save(stage.directory)
    sizes = {split: len(task.splits[split]) for split in task.splits}
    write_json_atomic(stage.directory / METRICS_NAME, {"sizes": sizes})
    stage.finish({"data": settings, "files": files})
    logger.info("data: %s examples, labels %s", sizes, task.label_names)


def build_teacher(
    pipeline: Pipeline, stage: Stage, task: Task, settings: dict, member: Member | None = None
) -> None:
    """Fine-tune (or load and check) the main teacher, or with `member` an extra member of the
    teacher ensemble (checked against the task and the main teacher), and save it with its
    validation / test logits and metrics in the stage's folder."""
    cfg = pipeline.config.teacher if member is None else member.config(pipeline.config.teacher)
    if not distributed.is_main():  # train with rank 0 (DDP), which keeps the model
        if not cfg.checkpoint:
            Teacher.finetune(
                cfg.model,
                task,
                output_dir=pipeline.ledger.work_dir(stage),
                device=pipeline.device,
                **fingerprinted(cfg, drop=("model", "checkpoint", *ENSEMBLE_SETTINGS)),
                report_to="none",
                precision=cfg.precision,
            )
        return
    metrics: dict[str, Any] = {}
    model_dir = TeacherRecord(stage.directory, {}).model_dir
    if cfg.checkpoint:
        teacher = Teacher.from_pretrained(
            cfg.checkpoint,
            trust_remote_code=cfg.trust_remote_code,
            max_length=cfg.max_length,
        )
        if member is None:
            teacher.check_fits(task)
    else:
        work_dir = pipeline.ledger.work_dir(stage)
        tmp = stage.directory / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        metrics = finetune(
            task, cfg, work_dir, tmp, pipeline.device, logging_dir=stage.directory / "logs"
        )
        replace_directory(tmp, model_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        teacher = Teacher.from_pretrained(str(model_dir), max_length=cfg.max_length)
    if member is not None:
        main = pipeline.teacher().value.model_dir
        reference = Teacher.from_pretrained(str(main), max_length=cfg.max_length)
        check_member(teacher, reference, task, member.setting)
    predictions = split_logits(pipeline, teacher, task)
    metrics.update(task.split_metrics(predictions))
    if cfg.checkpoint:
        teacher.save_pretrained(model_dir)
    save_predictions(stage.directory, predictions)
    write_json_atomic(stage.directory / METRICS_NAME, metrics)
    stage.finish(settings)
    primary = task.metrics[0]
    logger.info(
        "%s: validation %s %.4f, test %.4f",
        "teacher" if member is None else f"teacher {member.name}",
        primary,
        metrics[f"validation_{primary}"],
        metrics[f"test_{primary}"],
    )


def build_teacher_ensemble(
    pipeline: Pipeline, stage: Stage, members: dict[str, TeacherRecord], settings: dict
) -> None:
    """The teacher ensemble's record: its members' validation / test logits combined
    (`label.ensemble`), scored, with each member's scores; members whose tokenizer vocabulary
    is not the main teacher's (`teacher`, the first) are refused."""
    if not distributed.is_main():
        return
    task: Task = pipeline.data().value
    main, *others = members.values()
    reference = load_tokenizer(str(main.model_dir))
    for member in others:
        problem = vocabulary_problem(load_tokenizer(str(member.model_dir)), reference)
        if problem:
            setting = "checkpoints" if member.settings.get("checkpoint") else "seeds"
            raise ConfigError(
                f"teacher.ensemble_{setting}: {member.name} ({member.directory.name}) cannot "
                f"join the ensemble: {problem}"
            )
    member_predictions = [pipeline.teacher_predictions()] + [
        load_predictions(member.directory) for member in others
    ]
    combine = pipeline.config.label.ensemble
    predictions = split_predictions(member_predictions, combine)
    metrics = task.split_metrics(predictions)
    scored = [f"{split}_{name}" for split in ("validation", "test") for name in task.metrics]
    metrics.update(
        combine=combine,
        members=[
            {
                "folder": folder,
                "name": member.name,
                "seed": None if member.settings.get("checkpoint") else member.settings.get("seed"),
                "train_seconds": member.metrics.get("train_seconds"),
                **task.split_metrics(p),
            }
            for (folder, member), p in zip(members.items(), member_predictions, strict=True)
        ],
    )
    save_predictions(stage.directory, predictions)
    write_json_atomic(stage.directory / METRICS_NAME, metrics)
    stage.finish(settings)
    logger.info(
        "teacher ensemble of %d (%s): %s",
        len(members),
        combine,
        ", ".join(f"{key} {metrics[key]:.4f}" for key in scored),
    )


def split_logits(pipeline: Pipeline, teacher: Teacher, task: Task) -> dict[str, np.ndarray]:
    """The teacher's logits `{split: (n, num_labels)}` on the validation and test halves."""
    return {
        split: teacher.logits(
            task.split(split).inputs,
            batch_size=pipeline.config.teacher.eval_batch_size,
            max_tokens=0,
            device=pipeline.device,
        )
        for split in ("validation", "test")
    }


def build_augment(
    pipeline: Pipeline, stage: Stage, data: Built, settings: dict, inputs: list
) -> None:
    from distilrnn.augmentation import augment
    from distilrnn.teacher import load_tokenizer

    cfg = pipeline.config
    task: Task = data.value
    train = task.splits["train"]
    texts, pairs = columns(train)
    started = time.perf_counter()
    produced = augment(
        texts,
        text_pairs=pairs,
        tokenizer=load_tokenizer(str(pipeline.teacher().value.model_dir)),
        settings=cfg.augment,
        cache_dir=pipeline.folder.work_dir / "pos-tags",
        held_out=[
            text
            for name, split in task.splits.items()
            if name != "train" and pairs is None
            for text in columns(split)[0]
        ],
    )
    seconds = time.perf_counter() - started
    generated = len(produced) - len(train)
    # the rows that are the training texts keep their labels (TRANSFER_SET_RULE)
    labels = list(train["label"]) + [missing_label(task.task_type)] * generated
    rows: dict[str, list] = {}
    if pairs is None:
        rows["text"] = list(produced)
    else:
        rows["text"], rows[PAIR_COLUMN] = (list(side) for side in zip(*produced, strict=True))
    transfer = Dataset.from_dict({**rows, "label": labels}, train.features)
    tmp = stage.directory / "transfer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    transfer.save_to_disk(str(tmp))
    replace_directory(tmp, pipeline.folder.transfer_dir)
    metrics = {
        "train_texts": len(train),
        "generated_texts": generated,
        "transfer_texts": len(transfer),
        "seconds": seconds,
    }
    write_json_atomic(stage.directory / METRICS_NAME, metrics)
    stage.finish({"augment": settings, "inputs": resolve(inputs)})
    logger.info(
        "augment: %d training + %d generated texts in %.0f s",
        len(train),
        generated,
        seconds,
    )


def build_label(
    pipeline: Pipeline,
    stage: Stage,
    shards: Path,
    texts: Built,
    teacher: Built,
    ensemble: Built | None = None,
) -> None:
    """Label the texts' missing shards (a damaged shard is dropped first and labelled
    again; the others are kept), with the teacher, or the teacher ensemble's combined logits
    when there is one. Each teacher's own logits are kept in `member_caches` and read back
    where a teacher has labelled a shard before (cleared when the stage is forced)."""
    from distilrnn.labeling import label_with_teacher
    from distilrnn.training import resolve_precision

    cfg = pipeline.config
    settings = label_settings(pipeline)
    if distributed.is_main():
        for damaged in stage.damaged:
            parts = Path(damaged).parts
            if parts[:2] == (shards.name, "shards") and len(parts) > 3:
                shutil.rmtree(shards / "shards" / parts[2], ignore_errors=True)
        for stale in stage.directory.glob("logits-*"):
            if stale != shards:
                shutil.rmtree(stale)
    distributed.barrier()  # the shards left are sound before any rank looks for its own
    precision = resolve_precision(cfg.label.precision, pipeline.device)
    started = time.perf_counter()
    readers = [teacher, *(pipeline.teacher_members() if ensemble is not None else [])]
    caches = member_caches(pipeline, readers, texts, settings)
    if distributed.is_main() and stage.name in pipeline.ledger.force:
        for cache in caches:  # a forced relabel runs every teacher again
            shutil.rmtree(cache, ignore_errors=True)
    distributed.barrier()
    if ensemble is not None:
        labeller: Teacher | TeacherEnsemble = TeacherEnsemble.from_pretrained(
            [reader.value.model_dir for reader in readers],
            combine=cfg.label.ensemble,
            max_length=cfg.teacher.max_length,
        )
    else:
        labeller = Teacher.from_pretrained(
            str(teacher.value.model_dir), max_length=cfg.teacher.max_length
        )
    label_with_teacher(
        labeller,
        texts.value,
        shards,
        batch_size=cfg.label.batch_size,
        shard_size=cfg.label.shard_size,
        device=pipeline.device,
        max_tokens=cfg.label.max_tokens,
        precision=precision,
        member_caches=caches,
    )
    if not distributed.is_main():
        return
    seconds = time.perf_counter() - started
    write_json_atomic(
        stage.directory / METRICS_NAME,
        {"texts": len(texts.value), "seconds_this_run": seconds},
    )
    stage.finish(settings)


def member_caches(
    pipeline: Pipeline, teachers: list[Built], texts: Built, settings: dict[str, Any]
) -> list[Path]:
    """Where each teacher keeps its own logits of `texts` labelled with `settings`
    (`distilrnn.labeling.label_with_teacher`): `.work/member-logits/<fingerprint>`, one folder
    per teacher, texts and settings, so that a single teacher's labels serve the ensemble that
    later includes it, and an ensemble's the ensemble that gains or drops a member."""
    root = pipeline.folder.work_dir / "member-logits"
    return [
        root / fingerprint("member-logits", t.fingerprint, texts.fingerprint, settings)[:16]
        for t in teachers
    ]


def label_settings(pipeline: Pipeline) -> dict[str, Any]:
    """What the label stage's fingerprint covers: the teacher's `max_length` and the label
    settings, with the precision labelling runs in when it is not fp32 (`auto` on CPU is).
    `label.ensemble` is left out: the teacher ensemble's stage, which the label stage reads
    when there is one, covers it, and without members it changes nothing."""
    from distilrnn.training import resolve_precision

    cfg = pipeline.config
    label = fingerprinted(cfg.label, drop=("ensemble", "repr_layer"))  # repr_layer: `states`
    settings = {"max_length": cfg.teacher.max_length, "label": label}
    precision = resolve_precision(cfg.label.precision, pipeline.device)
    if precision != "fp32":
        settings["precision"] = precision
    return settings


def build_states(
    pipeline: Pipeline, stage: Stage, vectors: Path, texts: Built, teacher: Built
) -> None:
    """The teacher's sentence vectors (`label.repr_layer`) of the texts the label stage
    labels, in float16 shards (`distilrnn.representations`): a damaged shard is dropped first
    and computed again, the others are kept. Rank 0 computes them while the others wait."""
    from distilrnn.representations import write_sentence_vectors
    from distilrnn.training import resolve_precision

    cfg = pipeline.config
    for damaged in stage.damaged:
        path = stage.directory / damaged
        if path.parent == vectors:
            path.unlink(missing_ok=True)
    for stale in stage.directory.glob("vectors-*"):
        if stale != vectors:
            shutil.rmtree(stale)
    model = Teacher.from_pretrained(str(teacher.value.model_dir), max_length=cfg.teacher.max_length)
    started = time.perf_counter()
    cache = write_sentence_vectors(
        model,
        texts.value,
        vectors,
        cfg.label.repr_layer,
        shard_size=cfg.label.shard_size,
        batch_size=cfg.label.batch_size,
        max_tokens=cfg.label.max_tokens,
        device=pipeline.device,
        precision=resolve_precision(cfg.label.precision, pipeline.device),
    )
    seconds = time.perf_counter() - started
    metrics = {
        "texts": len(cache),
        "layer": cfg.label.repr_layer,
        "hidden_size": cache.width,
        "bytes_per_text": cache.width * 2,  # float16
        "bytes": cache.nbytes,
        "seconds_this_run": seconds,
    }
    write_json_atomic(stage.directory / METRICS_NAME, metrics)
    stage.finish(states_settings(pipeline))
    logger.info(
        "states: %d sentence vectors of teacher layer %d, %d wide (%.1f MB) in %.0f s",
        len(cache),
        cfg.label.repr_layer,
        cache.width,
        cache.nbytes / 1e6,
        seconds,
    )


def states_settings(pipeline: Pipeline) -> dict[str, Any]:
    """What the states stage's fingerprint covers: the layer, the teacher's `max_length`, the
    label settings that batch and shard the teacher's pass, and the precision it runs in when
    it is not fp32."""
    from distilrnn.training import resolve_precision

    cfg = pipeline.config
    names = ("repr_layer", "batch_size", "max_tokens", "shard_size")
    settings: dict[str, Any] = {"max_length": cfg.teacher.max_length}
    settings.update({name: getattr(cfg.label, name) for name in names})
    precision = resolve_precision(cfg.label.precision, pipeline.device)
    if precision != "fp32":
        settings["precision"] = precision
    return settings


def build_student(
    pipeline: Pipeline,
    stage: Stage,
    variant: Variant,
    seed: int,
    settings: StudentSettings,
    parent: Built | None,
    labelled: Built | None,
    states: Built | None = None,
) -> None:
    from distilrnn.distillation import train_student

    data, teacher, directory = pipeline.data(), pipeline.teacher(), stage.directory
    values = fingerprinted(settings, drop=("seeds",))
    if settings.temperature == "auto":  # only `kl` reads the temperature
        temperature = pipeline.calibration().value if settings.objective == "kl" else 1.0
        settings = dataclasses.replace(settings, temperature=temperature)
    task: Task = data.value
    train = (
        training_rows(labelled.value, len(task.splits["train"]), settings.transfer_set)
        if labelled
        else task.splits["train"]
    )
    main = distributed.is_main()  # other ranks train with rank 0 (DDP), which keeps the student
    tmp = directory.with_name(directory.name + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    metrics = train_student(
        settings,
        seed,
        train,
        task,
        teacher.value.model_dir,
        tmp if main else None,
        pipeline.ledger.work_dir(stage),
        pipeline.device,
        init_dir=parent.value.directory if parent else None,
        logging_dir=tmp / "logs" if main else None,
        name=variant.name,
        # the training rows are the first rows of the texts labelled (TRANSFER_SET_RULE)
        teacher_states=states.value[: len(train)] if states else None,
    )
    if not main:
        return
    metrics.update(variant=variant.name, seed=seed)
    write_json_atomic(tmp / METRICS_NAME, metrics)
    replace_directory(tmp, directory)
    stage.finish(values)
