"""Student training: one path for the `ce` baseline and every distilled student.

`distill(teacher, task, transfer=...)` is the library's entry point: objects in, an
`RNNStudent` out. `train_student` is the same training for the pipeline, which reads the teacher
from its folder and writes the student to the run. transformers' `Trainer` owns the loop
(schedules, length-grouped batches, evaluation, best-model selection, checkpoints);
`DistillationTrainer.compute_loss` swaps in the objective from `distilrnn.losses`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from distilrnn.batching import pad_batch, run_batched
from distilrnn.config import StudentSettings
from distilrnn.config_io import student_settings
from distilrnn.errors import ConfigError, DataError, StudentError
from distilrnn.losses import objective_loss
from distilrnn.run import save_predictions
from distilrnn.student import RNNStudent
from distilrnn.student.build import build_student, start_from
from distilrnn.teacher import Teacher
from distilrnn.training import (
    FiniteTrainingCallback,
    accuracy_metrics,
    last_complete_checkpoint,
    non_finite_parameters,
    selection_arguments,
    send_logs_to,
    tokenize,
)

logger = logging.getLogger(__name__)


class StudentCollator:
    """Right-pads `input_ids` and stacks labels and teacher logits into tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_batch([f["input_ids"] for f in features], self.pad_token_id)
        batch = {
            "input_ids": torch.from_numpy(input_ids),  # (batch, longest) int64
            "attention_mask": torch.from_numpy(attention_mask),
        }
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        if "teacher_logits" in features[0]:
            batch["teacher_logits"] = torch.tensor(
                np.array([f["teacher_logits"] for f in features]), dtype=torch.float32
            )
        return batch


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is a `distilrnn.losses` objective."""

    def __init__(self, *args: Any, settings: StudentSettings, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.settings = settings

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = model(inputs["input_ids"], inputs["attention_mask"])
        loss = objective_loss(
            self.settings.objective,
            logits,
            labels=inputs.get("labels"),
            teacher_logits=inputs.get("teacher_logits"),
            temperature=self.settings.temperature,
            alpha=self.settings.alpha,
        )
        return (loss, {"logits": logits}) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        # The stock sampler reads lengths item by item (about 25 s per million texts with
        # datasets' lazy columns); one Arrow read gives them as a plain list at once.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if "length" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=dataset.data.column("length").to_pylist())


def student_arguments(
    settings: StudentSettings, seed: int, work_dir: Path, device: str
) -> TrainingArguments:
    return selection_arguments(
        work_dir,
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        eval_batch_size=256,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        eval_steps=settings.eval_steps,
        seed=seed,
        device=device,
        report_to=settings.report_to,
        max_grad_norm=settings.max_grad_norm,
        remove_unused_columns=False,  # the student's forward does not name teacher_logits
        label_names=["labels"],
    )


def _prepare(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    dataset = tokenize(dataset, tokenizer, max_length)
    dataset = dataset.map(
        lambda b: {"length": [len(i) for i in b["input_ids"]]}, batched=True, desc="measuring"
    )
    keep = [
        c for c in ("input_ids", "length", "label", "teacher_logits") if c in dataset.column_names
    ]
    dataset = dataset.select_columns(keep)
    return dataset.rename_column("label", "labels") if "label" in keep else dataset


@torch.inference_mode()
def logits_of_ids(
    model: RNNStudent, input_ids: Sequence[Sequence[int]], pad_token_id: int, batch_size: int = 256
) -> np.ndarray:
    """Logits `(n, num_labels)` for token id lists, in their order (`distilrnn.batching`)."""
    model.eval()
    device = next(model.parameters()).device

    def call(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
        return logits.float().cpu().numpy()

    return run_batched(
        input_ids, call, model.config.num_labels, pad_id=pad_token_id, batch_size=batch_size
    )


def student_logits(
    model: RNNStudent, dataset: Dataset, pad_token_id: int, batch_size: int = 256
) -> np.ndarray:
    """Logits `(n, num_labels)` for a tokenised dataset, in its order."""
    return logits_of_ids(model, dataset["input_ids"], pad_token_id, batch_size)


def fit_student(
    settings: StudentSettings,
    seed: int,
    train: Dataset,
    task: Any,
    teacher: Teacher | Path,
    tokenizer: PreTrainedTokenizerBase,
    work_dir: Path,
    device: str = "cpu",
    init: RNNStudent | Path | None = None,
    logging_dir: Path | None = None,
    name: str = "student",
) -> tuple[RNNStudent, dict[str, Any], dict[str, np.ndarray]]:
    """Train one student on `train` (text, label [, teacher_logits]); keep the best by
    validation accuracy. A fresh student from the teacher's embedding by default; with `init`,
    that finished student (or its folder) is the starting point (`start_from`).

    Returns the student, its metrics (validation / test accuracy, parameter counts, training
    time, learning curves) and its validation / test logits. With `report_to` set, the
    Trainer's logs (e.g. TensorBoard event files) go to `logging_dir`. A killed training given
    the same `work_dir` resumes from its last complete checkpoint. A training that diverges
    (NaN / inf loss or weights) raises `StudentError` naming `name` (the variant), the seed and
    the step; non-finite weights or logits are never returned.
    """
    if settings.objective != "ce" and "teacher_logits" not in train.column_names:
        raise StudentError(f"objective {settings.objective!r} needs teacher logits")
    torch.manual_seed(seed)
    train_set = _prepare(train, tokenizer, settings.max_length)
    if init is None:
        model = build_student(settings, teacher, task.num_labels, tokenizer.pad_token_id)
    else:
        model = start_from(init, settings, task.num_labels, train_set)
    evaluation = {
        s: _prepare(task.splits[s], tokenizer, settings.max_length) for s in ("validation", "test")
    }
    trainer = DistillationTrainer(
        model=model,
        args=student_arguments(settings, seed, work_dir, device),
        train_dataset=train_set,
        eval_dataset=evaluation["validation"],
        data_collator=StudentCollator(tokenizer.pad_token_id),
        compute_metrics=accuracy_metrics,
        settings=settings,
        callbacks=[FiniteTrainingCallback(f"student {name} seed {seed}", StudentError)],
    )
    if logging_dir is not None:
        send_logs_to(trainer, logging_dir)
    last = last_complete_checkpoint(work_dir)
    if last:
        logger.info("student %s seed %d: resuming from %s", name, seed, last.name)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - started
    model = trainer.model
    bad = non_finite_parameters(model)
    if bad:
        raise StudentError(
            f"student {name} seed {seed}: non-finite weights after step "
            f"{trainer.state.global_step} ({', '.join(bad[:3])}); lower learning_rate"
        )
    metrics: dict[str, Any] = {
        "settings": asdict(settings),
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / settings.epochs,
        "train_runtime": result.metrics.get("train_runtime"),
        "train_examples": len(train_set),
        "parameters": model.parameter_counts(),
        "log_history": trainer.state.log_history,
    }
    predictions = {}
    for split, dataset in evaluation.items():
        predictions[split] = student_logits(model, dataset, tokenizer.pad_token_id)
        if not np.isfinite(predictions[split]).all():
            raise StudentError(
                f"student {name} seed {seed}: non-finite {split} logits after step "
                f"{trainer.state.global_step}; lower learning_rate"
            )
        metrics[f"{split}_accuracy"] = float(
            (predictions[split].argmax(-1) == np.array(dataset["labels"])).mean()
        )
    logger.info(
        "student %s (%s) seed %d: validation %.4f, test %.4f",
        name,
        settings.rnn,
        seed,
        metrics["validation_accuracy"],
        metrics["test_accuracy"],
    )
    return model, metrics, predictions


def train_student(
    settings: StudentSettings,
    seed: int,
    train: Dataset,
    task: Any,
    teacher_dir: Path,
    output_dir: Path,
    work_dir: Path,
    device: str = "cpu",
    init_dir: Path | None = None,
    logging_dir: Path | None = None,
    name: str = "student",
) -> dict[str, Any]:
    """`fit_student` for the pipeline: the teacher from its folder; the student (safetensors,
    config, tokenizer, validation / test logits) saved to `output_dir`; its metrics returned.
    Checkpoints in `work_dir` make a killed training resume, and are removed at the end.
    `name` (the variant) names the student in logs and errors."""
    from distilrnn.teacher import load_tokenizer

    tokenizer = load_tokenizer(str(teacher_dir))
    model, metrics, predictions = fit_student(
        settings,
        seed,
        train,
        task,
        teacher_dir,
        tokenizer,
        work_dir,
        device,
        init_dir,
        logging_dir,
        name,
    )
    save_predictions(output_dir, predictions)
    model.save(output_dir)
    tokenizer.save_pretrained(str(output_dir))
    shutil.rmtree(work_dir, ignore_errors=True)
    return metrics


def distill(
    teacher: Teacher,
    task: Any,
    *,
    transfer: Sequence[str] | None = None,
    settings: StudentSettings | None = None,
    seed: int = 0,
    device: str = "cpu",
    init_from: RNNStudent | None = None,
    work_dir: str | Path | None = None,
    name: str = "student",
    **overrides: Any,
) -> RNNStudent:
    """Distil `teacher` into a recurrent student and return it.

    Args:
        teacher: a `distilrnn.Teacher` (fine-tuned classifier + tokenizer).
        task: a `distilrnn.Task`; its validation split chooses the best epoch and its test
            split is scored. Its training texts need labels only for the `ce` objective (or
            `alpha` > 0); without labels, validation and test are scored by agreement with the
            teacher, and `temperature="auto"` (fitted on validation labels) is 1.
        transfer: the texts the teacher labels and the student learns from (e.g. the output of
            `distilrnn.augment`); default: the task's training texts.
        settings: a `StudentSettings`; `overrides` are any of its fields (`objective="kl"`,
            `rnn="gru"`, `epochs=3`, `temperature="auto"`, ...).
        init_from: a finished student to start from (see `student.init_from`).
        work_dir: where checkpoints go (default: a temporary folder, removed afterwards), and
            TensorBoard event files under `work_dir/logs` (`report_to="tensorboard"`).
        name: the student's name in logs and errors (a training that diverges raises
            `StudentError` naming it, the seed and the step).

    Returns:
        The student, carrying `tokenizer`, `label_names` and `metrics`.
    """
    settings = student_settings(settings, **overrides)
    if "tensorboard" in settings.report_to and not work_dir:
        raise ConfigError("report_to: tensorboard needs a work_dir to keep its event files")
    teacher.check_fits(task)
    # agreement with the teacher cannot calibrate it: its own argmax drives T to the bound
    gold_validation = min(task.splits["validation"]["label"], default=-1) >= 0
    task = _with_teacher_labels_where_missing(task, teacher, device)
    if settings.objective == "ce":
        train = task.splits["train"]
        if min(train["label"], default=-1) < 0:
            raise DataError("the ce objective trains on labels: the task's training split has none")
    else:
        train = _labelled_transfer(teacher, task, transfer, device)
    if settings.temperature == "auto":
        temperature = 1.0
        if settings.objective == "kl" and not gold_validation:
            logger.info('temperature "auto": no validation labels to fit it on; using 1.0')
        elif settings.objective == "kl":
            from distilrnn.calibration import calibrate

            validation = task.splits["validation"]
            logits = teacher.logits(list(validation["text"]), device=device)
            temperature = calibrate(logits, np.asarray(validation["label"]))["temperature"]
        settings = replace(settings, temperature=temperature)
    with tempfile.TemporaryDirectory() as scratch:
        model, metrics, _ = fit_student(
            settings,
            seed,
            train,
            task,
            teacher,
            teacher.tokenizer,
            Path(work_dir) if work_dir else Path(scratch),
            device,
            init_from,
            Path(work_dir) / "logs" if work_dir else None,
            name,
        )
    model.tokenizer = teacher.tokenizer
    model.label_names = list(task.label_names or teacher.label_names)
    model.metrics = {**metrics, "seed": seed}
    return model


def _labelled_transfer(
    teacher: Teacher, task: Any, transfer: Sequence[str] | None, device: str
) -> Dataset:
    """The transfer texts with the teacher's logits, and the training labels on the rows that
    are the training texts (`distilrnn.run.TRANSFER_SET_RULE`), -1 elsewhere."""
    train = task.splits["train"]
    train_texts = list(train["text"])
    texts = list(transfer) if transfer is not None else train_texts
    if not texts:
        raise DataError("the transfer set is empty: give texts to distil on")
    labels = [-1] * len(texts)
    if texts[: len(train_texts)] == train_texts:
        labels[: len(train_texts)] = list(train["label"])
    logits = teacher.logits(texts, device=device, progress=len(texts) > 10_000)
    return Dataset.from_dict({"text": texts, "label": labels, "teacher_logits": list(logits)})


def _with_teacher_labels_where_missing(task: Any, teacher: Teacher, device: str) -> Any:
    """`task` with the teacher's predictions standing in for missing validation / test labels
    (scores then mean agreement with the teacher)."""
    from datasets import DatasetDict

    splits = dict(task.splits)
    changed = False
    for name in ("validation", "test"):
        split = splits[name]
        if len(split) and min(split["label"]) < 0:
            predicted = teacher.logits(list(split["text"]), device=device).argmax(-1)
            splits[name] = split.remove_columns("label").add_column("label", predicted.tolist())
            changed = True
    if not changed:
        return task
    logger.info("the task's validation / test splits have no labels: scoring agreement")
    return type(task)(DatasetDict(splits), task.label_names or teacher.label_names)
