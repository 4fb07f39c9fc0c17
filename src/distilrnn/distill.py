"""Student training: one path for the `ce` baseline and every distilled student.

transformers' `Trainer` owns the loop (schedules, length-grouped batches, evaluation, best-model
selection, checkpoints); `DistillationTrainer.compute_loss` swaps in the objective from
`distilrnn.losses`.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from distilrnn.config import SHAPE_FIELDS, StudentSettings
from distilrnn.data import Task
from distilrnn.evaluate import save_predictions
from distilrnn.losses import objective_loss
from distilrnn.student import RNNStudent, StudentConfig
from distilrnn.student.factorize import (
    factorize_embedding,
    first_layer_input_names,
    frequency_weights,
)
from distilrnn.teacher import accuracy_metrics, selection_arguments, tokenize

logger = logging.getLogger(__name__)

DROPOUT_FIELDS = (
    "embedding_dropout",
    "input_dropout",
    "hidden_dropout",
    "weight_dropout",
    "head_dropout",
)
ARCHITECTURE_FIELDS = SHAPE_FIELDS + DROPOUT_FIELDS


class StudentCollator:
    """Right-pads `input_ids` and stacks labels and teacher logits into tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            attention_mask[row, : len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
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


def pca_project(weight: torch.Tensor, components: int) -> torch.Tensor:
    """Project embedding rows onto their top principal components.

    Args:
        weight: `(vocab_size, embedding_dim)` embedding matrix.
        components: output width, 1 <= components <= embedding_dim.

    Returns:
        `(vocab_size, components)`: the mean-centred rows in the basis of the leading right
        singular vectors, highest variance first.
    """
    if not 1 <= components <= weight.shape[1]:
        raise ValueError(
            f"student.embedding_projection: {components} components asked of a "
            f"{weight.shape[1]}-wide embedding; use 1 to {weight.shape[1]}, or 0 for none"
        )
    centred = weight.double() - weight.double().mean(dim=0, keepdim=True)
    _, singular, basis = torch.linalg.svd(centred, full_matrices=False)  # basis (dim, dim)
    kept = float((singular[:components] ** 2).sum() / (singular**2).sum())
    logger.info(
        "embedding projection: %d components keep %.1f %% of the variance", components, 100 * kept
    )
    return (centred @ basis[:components].T).to(weight.dtype)  # (vocab_size, components)


def build_student(
    settings: StudentSettings, teacher_dir: Path, num_labels: int, pad_token_id: int
) -> RNNStudent:
    """A fresh student with the teacher's word embeddings (unless `embeddings = "random"`),
    projected onto their principal components when `embedding_projection` is set."""
    teacher = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir))
    embedding = teacher.get_input_embeddings().weight.detach().clone()  # (vocab, embedding_dim)
    if settings.embedding_projection:
        embedding = pca_project(embedding, settings.embedding_projection)  # (vocab, projection)
    config = StudentConfig(
        vocab_size=embedding.shape[0],
        embedding_dim=embedding.shape[1],
        num_labels=num_labels,
        padding_idx=pad_token_id,
        freeze_embeddings=settings.embeddings == "frozen",
        **{name: getattr(settings, name) for name in ARCHITECTURE_FIELDS},
    )
    return RNNStudent(config, None if settings.embeddings == "random" else embedding)


def dataset_token_counts(dataset: Dataset, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in a tokenised dataset's `input_ids`: `(vocab_size,)`
    (`distilrnn.export.token_counts` does the same for raw texts and a tokenizer)."""
    import pyarrow.compute as pc

    counts = np.zeros(vocab_size, dtype=np.int64)
    for table in dataset.select_columns(["input_ids"]).with_format("arrow").iter(65536):
        ids = pc.list_flatten(table.column("input_ids")).to_numpy()
        counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]
    return counts


def start_from(
    init_dir: Path, settings: StudentSettings, num_labels: int, train_set: Dataset
) -> RNNStudent:
    """The finished student in `init_dir` as the starting point of a student with `settings`:
    its weights; this student's dropouts and embedding freezing; its embedding factorised to
    `embedding_projection` columns (weighted by √(token count in `train_set`) + 1) if set."""
    parent = RNNStudent.load(init_dir)
    config = parent.config
    for name in SHAPE_FIELDS:
        if getattr(config, name) != getattr(settings, name):
            raise ValueError(
                f"student.init_from: the student in {init_dir} has {name} = "
                f"{getattr(config, name)!r}, this variant {getattr(settings, name)!r}"
            )
    if config.num_labels != num_labels:
        raise ValueError(
            f"student.init_from: the student in {init_dir} has {config.num_labels} outputs, "
            f"the task {num_labels} labels"
        )
    model = parent
    width = settings.embedding_projection
    if width and width != config.embedding_dim:
        if width > config.embedding_dim:
            raise ValueError(
                f"student.embedding_projection = {width} is wider than the "
                f"{config.embedding_dim}-wide embedding of the student in {init_dir}"
            )
        counts = dataset_token_counts(train_set, config.vocab_size)
        model = factorize_embedding(parent, width, frequency_weights(counts))
    regularised = StudentConfig.from_dict(
        {
            **model.config.to_dict(),
            **{name: getattr(settings, name) for name in DROPOUT_FIELDS},
            "freeze_embeddings": settings.embeddings == "frozen",
        }
    )
    student = RNNStudent(regularised)
    student.load_state_dict(model.state_dict(), strict=True)
    if settings.train_layers == "first":
        trained = {
            name.replace("weight_ih", suffix)
            for name in first_layer_input_names(regularised)
            for suffix in ("weight_ih", "bias_ih")
        }
        for name, parameter in student.named_parameters():
            parameter.requires_grad_(name in trained)
    return student


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
def student_logits(
    model: RNNStudent, dataset: Dataset, pad_token_id: int, batch_size: int = 256
) -> np.ndarray:
    """Logits (n, num_labels) for a tokenised dataset, in its order, length-sorted batches."""
    model.eval()
    collate = StudentCollator(pad_token_id)
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    input_ids = dataset["input_ids"]
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = collate([{"input_ids": input_ids[i]} for i in index])
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        out[index] = logits.float().cpu().numpy()
    return out


def train_student(
    settings: StudentSettings,
    seed: int,
    train: Dataset,
    task: Task,
    teacher_dir: Path,
    output_dir: Path,
    work_dir: Path,
    device: str = "cpu",
    init_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one student on `train` (text, label [, teacher_logits]); keep the best by validation.

    A fresh student by default; with `init_dir`, the finished student there is the starting
    point (`start_from`).

    Saves the student (safetensors + config) and the tokenizer to `output_dir` and returns its
    metrics: validation / test accuracy, parameter counts, training time, learning curves.
    """
    if settings.objective != "ce" and "teacher_logits" not in train.column_names:
        raise ValueError(f"objective {settings.objective!r} needs teacher logits in the train set")
    tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    torch.manual_seed(seed)
    train_set = _prepare(train, tokenizer, settings.max_length)
    if init_dir is None:
        model = build_student(settings, teacher_dir, task.num_labels, tokenizer.pad_token_id)
    else:
        model = start_from(init_dir, settings, task.num_labels, train_set)
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
    )
    last = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    model = trainer.model
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
        metrics[f"{split}_accuracy"] = float(
            (predictions[split].argmax(-1) == np.array(dataset["labels"])).mean()
        )
    save_predictions(output_dir, predictions)
    model.save(output_dir)
    tokenizer.save_pretrained(str(output_dir))
    shutil.rmtree(work_dir, ignore_errors=True)
    logger.info(
        "student %s seed %d: validation %.4f, test %.4f",
        settings.rnn,
        seed,
        metrics["validation_accuracy"],
        metrics["test_accuracy"],
    )
    return metrics
