"""The teacher: fine-tune a transformers sequence classifier, or load and check a fine-tuned one.

transformers' `Trainer` owns the loop (dynamic padding, length-grouped batches, evaluation,
checkpoints, resume, best-model selection); this module only configures it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from safetensors import SafetensorError
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from distilrnn.config import TeacherConfig
from distilrnn.data import Task
from distilrnn.hub import resolve_model

logger = logging.getLogger(__name__)


class TeacherError(ValueError):
    """A teacher that does not fit the task, or cannot be loaded."""


def tokenize(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Add `input_ids` / `attention_mask` (unpadded) to a dataset with a `text` column."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return dataset.map(encode, batched=True, desc="tokenising")


def accuracy_metrics(prediction: Any) -> dict[str, float]:
    logits = (
        prediction.predictions[0]
        if isinstance(prediction.predictions, tuple)
        else (prediction.predictions)
    )
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def load_tokenizer(name: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)


def load_classifier(name: str, trust_remote_code: bool = False, **kwargs: Any) -> PreTrainedModel:
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            resolve_model(name), trust_remote_code=trust_remote_code, **kwargs
        )
    except (OSError, ValueError, SafetensorError) as error:
        raise TeacherError(f"cannot load the teacher {name!r}: {error}") from None


def check_fits(model: PreTrainedModel, label_names: list[str], source: str) -> None:
    """Raise unless the classifier's label count (and names, when it has real ones) fit."""
    num_labels = model.config.num_labels
    if num_labels != len(label_names):
        raise TeacherError(
            f"teacher {source} has {num_labels} labels but the task has {len(label_names)} "
            f"({', '.join(label_names)})"
        )
    id2label = {int(k): str(v) for k, v in (model.config.id2label or {}).items()}
    generic = all(name == f"LABEL_{i}" for i, name in id2label.items())
    if id2label and not generic:
        theirs = [id2label[i].lower() for i in range(num_labels)]
        ours = [name.lower() for name in label_names]
        if theirs != ours and not all(name.isdigit() for name in ours):
            raise TeacherError(
                f"teacher {source} labels {theirs} do not match the task's labels {ours}"
            )


def selection_arguments(
    output_dir: Path,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    eval_batch_size: int,
    warmup_ratio: float,
    weight_decay: float,
    eval_steps: int,
    seed: int,
    device: str = "cpu",
    **extra: object,
) -> TrainingArguments:
    """`Trainer` settings shared by teacher and students: evaluate and checkpoint every epoch
    (or every `eval_steps`), length-grouped batches, and the best validation accuracy kept."""
    strategy = "steps" if eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        warmup_steps=warmup_ratio,
        weight_decay=weight_decay,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=eval_steps or None,
        save_steps=eval_steps or None,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        logging_steps=50,
        seed=seed,
        report_to="none",
        use_cpu=device == "cpu",
        dataloader_pin_memory=False,
        **extra,
    )


def training_arguments(config: TeacherConfig, output_dir: Path, device: str) -> TrainingArguments:
    return selection_arguments(
        output_dir,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        eval_steps=config.eval_steps,
        seed=config.seed,
        device=device,
    )


def finetune(
    task: Task, config: TeacherConfig, work_dir: Path, model_dir: Path, device: str = "cpu"
) -> dict:
    """Fine-tune `config.model` on the task; keep the best checkpoint by validation accuracy.

    Checkpoints go to `work_dir` and a killed run resumes from the newest one; the best model
    and its tokenizer are saved to `model_dir`. Returns training metrics.
    """
    tokenizer = load_tokenizer(config.model, config.trust_remote_code)
    names = task.label_names
    model = load_classifier(
        config.model,
        config.trust_remote_code,
        num_labels=task.num_labels,
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    train = tokenize(task.splits["train"], tokenizer, config.max_length)
    validation = tokenize(task.splits["validation"], tokenizer, config.max_length)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, work_dir, device),
        train_dataset=train.remove_columns("text"),
        eval_dataset=validation.remove_columns("text"),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=accuracy_metrics,
    )
    last = get_last_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    if last:
        logger.info("resuming teacher fine-tuning from %s", last)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return {
        "train_seconds": seconds,
        "train_runtime": result.metrics.get("train_runtime"),
        "epochs": config.epochs,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_validation_accuracy": trainer.state.best_metric,
        "train_examples": len(train),
        "log_history": trainer.state.log_history,
    }


def load_teacher(
    name: str, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fine-tuned classifier and its tokenizer, in eval mode."""
    tokenizer = load_tokenizer(name, trust_remote_code)
    model = load_classifier(name, trust_remote_code)
    return model.eval(), tokenizer
