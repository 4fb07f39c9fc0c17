"""Student training: one path for the `ce` baseline and every distilled student.

`distill(teacher, task, transfer=...)` is the library's entry point: objects in, an
`RNNStudent` out. `train_student` is the same training for the pipeline, which reads the teacher
from its folder and writes the student to the run. transformers' `Trainer` owns the loop
(schedules, length-grouped batches, evaluation, best-model selection, checkpoints);
`DistillationTrainer.compute_loss` swaps in the objective from `distilrnn.losses`, plus, with
`repr_weight` > 0, the representation loss against the teacher's sentence vectors
(`distilrnn.representations`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from distilrnn.batching import length_batches, pad_batch, run_batched
from distilrnn.config import StudentSettings
from distilrnn.config_io import student_settings
from distilrnn.errors import ConfigError, DataError, StudentError
from distilrnn.inputs import PAIR_COLUMN, SINGLE, Input, columns, split_inputs
from distilrnn.losses import objective_loss, representation_loss
from distilrnn.metrics import labelled_mask, missing_label, predictions
from distilrnn.representations import ProjectedStudent, check_fits, sentence_vectors
from distilrnn.run import save_predictions
from distilrnn.student import RNNStudent
from distilrnn.student.build import build_student, start_from
from distilrnn.teacher import Teacher
from distilrnn.training import (
    FiniteTrainingCallback,
    TrainingClock,
    last_complete_checkpoint,
    non_finite_parameters,
    selection_arguments,
    send_logs_to,
    task_metrics,
    tokenize,
)
from distilrnn.variants import encoder_name

logger = logging.getLogger(__name__)


class StudentCollator:
    """Right-pads `input_ids` (and a siamese student's `pair_input_ids`) and stacks labels
    (ids, or float scores for regression) and teacher logits into tensors. With
    `teacher_states` (`(n, teacher_hidden_size)`: an array or `SentenceVectors`), rows that
    carry a `state_row` get their teacher sentence vector as `teacher_states`, float32."""

    def __init__(self, pad_token_id: int, teacher_states: Any = None):
        self.pad_token_id = pad_token_id
        self.teacher_states = teacher_states

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_batch([f["input_ids"] for f in features], self.pad_token_id)
        batch = {
            "input_ids": torch.from_numpy(input_ids),  # (batch, longest) int64
            "attention_mask": torch.from_numpy(attention_mask),
        }
        if "pair_input_ids" in features[0]:
            pair_ids, pair_mask = pad_batch(
                [f["pair_input_ids"] for f in features], self.pad_token_id
            )
            batch["pair_input_ids"] = torch.from_numpy(pair_ids)
            batch["pair_attention_mask"] = torch.from_numpy(pair_mask)
        if "labels" in features[0]:
            labels = [f["labels"] for f in features]
            scores = isinstance(labels[0], float)
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if scores else torch.long)
        if "teacher_logits" in features[0]:
            batch["teacher_logits"] = torch.tensor(
                np.array([f["teacher_logits"] for f in features]), dtype=torch.float32
            )
        if self.teacher_states is not None and "state_row" in features[0]:
            rows = np.array([f["state_row"] for f in features], dtype=np.int64)
            states = np.asarray(self.teacher_states[rows], dtype=np.float32)
            batch["teacher_states"] = torch.from_numpy(states)  # (batch, teacher_hidden_size)
        return batch


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is a `distilrnn.losses` objective, plus `repr_weight` times the
    representation loss on batches that carry `teacher_states` (the model is then a
    `ProjectedStudent`). That term's mean is logged beside the loss: since the last log as
    `repr_loss`, over the whole training (of this process: since a resume) as
    `train_repr_loss`."""

    def __init__(self, *args: Any, settings: StudentSettings, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.settings = settings
        self._repr_sums: dict[str, Any] = {"repr_loss": 0.0, "train_repr_loss": 0.0}
        self._repr_steps = {"repr_loss": 0, "train_repr_loss": 0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        texts = (
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs.get("pair_input_ids"),
            inputs.get("pair_attention_mask"),
        )
        teacher_states = inputs.get("teacher_states")  # (batch, teacher_hidden_size) or None
        if teacher_states is None:
            logits = model(*texts)
        else:
            logits, projected = model(*texts, project=True)
        loss = objective_loss(
            self.settings.objective,
            logits,
            labels=inputs.get("labels"),
            teacher_logits=inputs.get("teacher_logits"),
            temperature=self.settings.temperature,
            alpha=self.settings.alpha,
        )
        if teacher_states is not None:
            term = representation_loss(self.settings.repr_loss, projected, teacher_states)
            if model.training:
                for key in self._repr_sums:
                    self._repr_sums[key] = self._repr_sums[key] + term.detach()
                    self._repr_steps[key] += 1
            loss = loss + self.settings.repr_weight * term
        return (loss, {"logits": logits}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for key, beside in (("repr_loss", "loss"), ("train_repr_loss", "train_loss")):
            if beside in logs and self._repr_steps[key]:
                logs = {**logs, key: float(self._repr_sums[key]) / self._repr_steps[key]}
                self._repr_sums[key], self._repr_steps[key] = 0.0, 0
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset=None):
        # The stock sampler reads lengths item by item (about 25 s per million texts with
        # datasets' lazy columns); one Arrow read gives them as a plain list at once.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if "length" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=dataset.data.column("length").to_pylist())


def student_arguments(
    settings: StudentSettings, seed: int, work_dir: Path, device: str, metric: str = "accuracy"
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
        metric=metric,
        max_grad_norm=settings.max_grad_norm,
        remove_unused_columns=False,  # the student's forward does not name teacher_logits
        label_names=["labels"],
    )


def _prepare(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, design: str = "joint"
) -> Dataset:
    dataset = tokenize(dataset, tokenizer, max_length, design)

    def measure(batch: dict[str, list]) -> dict[str, list]:
        lengths = [len(ids) for ids in batch["input_ids"]]
        if "pair_input_ids" in batch:  # siamese: each side pads apart; group by the longer
            lengths = [
                max(n, len(ids)) for n, ids in zip(lengths, batch["pair_input_ids"], strict=True)
            ]
        return {"length": lengths}

    dataset = dataset.map(measure, batched=True, desc="measuring")
    kept = ("input_ids", "pair_input_ids", "length", "label", "teacher_logits")
    keep = [c for c in kept if c in dataset.column_names]
    dataset = dataset.select_columns(keep)
    return dataset.rename_column("label", "labels") if "label" in keep else dataset


@torch.inference_mode()
def logits_of_ids(
    model: RNNStudent,
    input_ids: Sequence[Sequence[int]],
    pad_token_id: int,
    batch_size: int = 256,
    pair_input_ids: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Logits `(n, num_labels)` for token id lists (and a siamese student's second texts),
    in their order (`distilrnn.batching`)."""
    model.eval()
    device = next(model.parameters()).device

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    if pair_input_ids is None:

        def call(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return model(tensor(ids), tensor(mask)).float().cpu().numpy()

        return run_batched(
            input_ids, call, model.config.num_labels, pad_id=pad_token_id, batch_size=batch_size
        )
    out = np.zeros((len(input_ids), model.config.num_labels), dtype=np.float32)
    lengths = [max(len(a), len(b)) for a, b in zip(input_ids, pair_input_ids, strict=True)]
    for index in length_batches(lengths, batch_size):
        ids, mask = pad_batch([input_ids[i] for i in index], pad_token_id)
        pair_ids, pair_mask = pad_batch([pair_input_ids[i] for i in index], pad_token_id)
        logits = model(tensor(ids), tensor(mask), tensor(pair_ids), tensor(pair_mask))
        out[index] = logits.float().cpu().numpy()
    return out


def student_logits(
    model: RNNStudent, dataset: Dataset, pad_token_id: int, batch_size: int = 256
) -> np.ndarray:
    """Logits `(n, num_labels)` for a tokenised dataset, in its order."""
    pairs = dataset["pair_input_ids"] if "pair_input_ids" in dataset.column_names else None
    return logits_of_ids(model, dataset["input_ids"], pad_token_id, batch_size, pairs)


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
    callbacks: Sequence[TrainerCallback] = (),
    teacher_states: Any = None,
) -> tuple[RNNStudent, dict[str, Any], dict[str, np.ndarray]]:
    """Train one student on `train` (text, label [, teacher_logits]); keep the best by
    validation accuracy. A fresh student from the teacher's embedding by default; with `init`,
    that finished student (or its folder) is the starting point (`start_from`).

    With `repr_weight` > 0, `teacher_states` holds the teacher's sentence vector of each row of
    `train`, in its order (`(len(train), teacher_hidden_size)`: an array or a
    `distilrnn.representations.SentenceVectors`); the student trains with a projection onto
    them (`ProjectedStudent`) that is dropped afterwards.

    Returns the student, its metrics (validation / test accuracy, parameter counts, training
    time, learning curves) and its validation / test logits. With `report_to` set, the
    Trainer's logs (e.g. TensorBoard event files) go to `logging_dir`. A killed training given
    the same `work_dir` resumes from its last complete checkpoint. A training that diverges
    (NaN / inf loss or weights) raises `StudentError` naming `name` (the variant), the seed and
    the step; non-finite weights or logits are never returned. `callbacks` join the Trainer's
    (`distilrnn.tune` reports each evaluation to Optuna through one).
    """
    if settings.objective != "ce" and "teacher_logits" not in train.column_names:
        raise StudentError(f"objective {settings.objective!r} needs teacher logits")
    if task.is_regression and settings.objective == "kl":
        raise ConfigError(
            "student.objective: kl distils class distributions; a regression task distils the "
            "teacher's score with mse (and ce is the squared error on the gold score)"
        )
    represent = settings.repr_weight > 0
    if represent:
        check_fits(settings.repr_weight, settings.pair_design, task.is_pair)
        if teacher_states is None or len(teacher_states) != len(train):
            got = "none" if teacher_states is None else f"{len(teacher_states)} rows"
            raise StudentError(
                f"student.repr_weight > 0 needs the teacher's sentence vector of each of the "
                f"{len(train)} training rows (teacher_states); got {got}"
            )
    design = settings.pair_design if task.is_pair else SINGLE
    torch.manual_seed(seed)
    train_set = _prepare(train, tokenizer, settings.max_length, design)
    if init is None:
        model = build_student(
            settings,
            teacher,
            task.num_labels,
            tokenizer.pad_token_id,
            pair_design=design,
            task_type=task.task_type,
        )
    else:
        model = start_from(init, settings, task.num_labels, train_set)
    if represent:  # built after the student, so the seed draws the student as without it
        model = ProjectedStudent(model, int(teacher_states.shape[1]))
        train_set = train_set.add_column("state_row", np.arange(len(train_set)))
    evaluation = {
        s: _prepare(task.splits[s], tokenizer, settings.max_length, design)
        for s in ("validation", "test")
    }
    trainer = DistillationTrainer(
        model=model,
        args=student_arguments(settings, seed, work_dir, device, task.metrics[0]),
        train_dataset=train_set,
        eval_dataset=evaluation["validation"],
        data_collator=StudentCollator(
            tokenizer.pad_token_id, teacher_states if represent else None
        ),
        compute_metrics=task_metrics(task.metrics, task.task_type),
        settings=settings,
        callbacks=[
            FiniteTrainingCallback(f"student {name} seed {seed}", StudentError),
            *callbacks,
        ],
    )
    if logging_dir is not None:
        send_logs_to(trainer, logging_dir)
    last = last_complete_checkpoint(work_dir)
    if last:
        logger.info("student %s seed %d: resuming from %s", name, seed, last.name)
    clock = TrainingClock(last)
    trainer.add_callback(clock)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = clock.seconds
    model = trainer.model
    projection = model.projection if isinstance(model, ProjectedStudent) else None
    model = model.student if isinstance(model, ProjectedStudent) else model
    bad = non_finite_parameters(model)
    if bad:
        raise StudentError(
            f"student {name} seed {seed}: non-finite weights after step "
            f"{trainer.state.global_step} ({', '.join(bad[:3])}); lower learning_rate"
        )
    metrics: dict[str, Any] = {
        "settings": asdict(settings),
        "train_seconds": seconds,
        # resumed from a checkpoint without its seconds: only those from it on are counted
        **({} if clock.known or last is None else {"train_seconds_counted_from": last.name}),
        "seconds_per_epoch": seconds / settings.epochs,
        "train_runtime": result.metrics.get("train_runtime"),
        "train_examples": len(train_set),
        "parameters": model.parameter_counts(),
        "log_history": trainer.state.log_history,
    }
    if projection is not None:
        metrics["representation"] = {
            "teacher_hidden_size": projection.out_features,
            "projection_parameters": sum(p.numel() for p in projection.parameters()),
        }
    predictions = {}
    for split, dataset in evaluation.items():
        predictions[split] = student_logits(model, dataset, tokenizer.pad_token_id)
        if not np.isfinite(predictions[split]).all():
            raise StudentError(
                f"student {name} seed {seed}: non-finite {split} logits after step "
                f"{trainer.state.global_step}; lower learning_rate"
            )
    metrics.update(task.split_metrics(predictions))
    primary = task.metrics[0]
    logger.info(
        "student %s (%s) seed %d: validation %s %.4f, test %.4f",
        name,
        encoder_name(settings),
        seed,
        primary,
        metrics[f"validation_{primary}"],
        metrics[f"test_{primary}"],
    )
    return model, metrics, predictions


def train_student(
    settings: StudentSettings,
    seed: int,
    train: Dataset,
    task: Any,
    teacher_dir: Path,
    output_dir: Path | None,
    work_dir: Path,
    device: str = "cpu",
    init_dir: Path | None = None,
    logging_dir: Path | None = None,
    name: str = "student",
    teacher_states: Any = None,
) -> dict[str, Any]:
    """`fit_student` for the pipeline: the teacher from its folder; the student (safetensors,
    config, tokenizer, validation / test logits) saved to `output_dir`; its metrics returned.
    `teacher_states`: the sentence vectors of `train`'s rows, for `repr_weight` > 0.
    Checkpoints in `work_dir` make a killed training resume, and are removed at the end.
    `name` (the variant) names the student in logs and errors. `output_dir = None`: train
    only, saving and removing nothing (a rank of several whose rank 0 keeps the student)."""
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
        teacher_states=teacher_states,
    )
    if output_dir is None:
        return metrics
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
    repr_layer: int = -1,
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
        repr_layer: with `repr_weight` > 0, the teacher layer whose mean token states the
            student's sentence vector learns (`label.repr_layer`: -1 the last, 0 embeddings).

    Returns:
        The student, carrying `tokenizer`, `label_names` and `metrics`.
    """
    settings = student_settings(settings, **overrides)
    if "tensorboard" in settings.report_to and not work_dir:
        raise ConfigError("report_to: tensorboard needs a work_dir to keep its event files")
    teacher.check_fits(task)
    check_fits(settings.repr_weight, settings.pair_design, task.is_pair)
    # agreement with the teacher cannot calibrate it: its own argmax drives T to the bound
    validation_labels = task.splits["validation"]["label"]
    gold_validation = bool(labelled_mask(validation_labels, task.task_type).all())
    task = _with_teacher_labels_where_missing(task, teacher, device)
    if settings.objective == "ce":
        train = task.splits["train"]
        if not labelled_mask(train["label"], task.task_type).all():
            raise DataError("the ce objective trains on labels: the task's training split has none")
    else:
        train = _labelled_transfer(teacher, task, transfer, device)
    if settings.temperature == "auto":
        temperature = 1.0
        if settings.objective == "kl" and not gold_validation:
            logger.info('temperature "auto": no validation labels to fit it on; using 1.0')
        elif settings.objective == "kl":
            from distilrnn.calibration import calibrate

            validation = task.validation
            logits = teacher.logits(validation.inputs, device=device)
            temperature = calibrate(logits, np.asarray(validation.labels))["temperature"]
        settings = replace(settings, temperature=temperature)
    teacher_states = None
    if settings.repr_weight > 0:
        texts, pairs = columns(train)
        teacher_states = sentence_vectors(
            teacher, texts, repr_layer, text_pairs=pairs, device=device
        )
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
            teacher_states=teacher_states,
        )
    model.tokenizer = teacher.tokenizer
    model.label_names = list(task.label_names or teacher.label_names)
    model.metrics = {**metrics, "seed": seed}
    return model


def _labelled_transfer(
    teacher: Teacher, task: Any, transfer: Sequence[Input] | None, device: str
) -> Dataset:
    """The transfer texts (or pairs) with the teacher's logits, and the training labels on the
    rows that are the training texts (`distilrnn.run.TRANSFER_SET_RULE`), -1 (NaN for
    regression) elsewhere."""
    train_inputs = task.train.inputs
    inputs = list(transfer) if transfer is not None else train_inputs
    if not inputs:
        raise DataError("the transfer set is empty: give texts to distil on")
    try:
        texts, pairs = split_inputs(inputs)
    except ValueError as error:
        raise DataError(f"transfer: {error}") from None
    if (pairs is not None) != task.is_pair:
        kind = "(text, text_pair) pairs" if task.is_pair else "single texts"
        raise DataError(f"transfer: the task's examples are {kind}; give the same")
    labels = [missing_label(task.task_type)] * len(texts)
    if [tuple(x) if isinstance(x, list) else x for x in inputs[: len(train_inputs)]] == list(
        train_inputs
    ):
        labels[: len(train_inputs)] = list(task.splits["train"]["label"])
    logits = teacher.logits(texts, text_pairs=pairs, device=device, progress=len(texts) > 10_000)
    rows: dict[str, Any] = {"text": texts}
    if pairs is not None:
        rows[PAIR_COLUMN] = pairs
    return Dataset.from_dict({**rows, "label": labels, "teacher_logits": list(logits)})


def _with_teacher_labels_where_missing(task: Any, teacher: Teacher, device: str) -> Any:
    """`task` with the teacher's predictions standing in for missing validation / test labels
    (scores then mean agreement with the teacher)."""
    from datasets import DatasetDict

    splits = dict(task.splits)
    changed = False
    for name in ("validation", "test"):
        split = splits[name]
        if len(split) and not labelled_mask(split["label"], task.task_type).all():
            logits = teacher.logits(task.split(name).inputs, device=device)
            predicted = predictions(logits, task.task_type)
            splits[name] = split.remove_columns("label").add_column("label", predicted.tolist())
            changed = True
    if not changed:
        return task
    logger.info("the task's validation / test splits have no labels: scoring agreement")
    return replace(
        task, splits=DatasetDict(splits), label_names=task.label_names or teacher.label_names
    )
