"""The `Trainer` settings teacher fine-tuning and student training share: tokenising a split,
the accuracy metric, evaluation and checkpoints every epoch with the best kept, and where
training logs go (`report_to`).

transformers' `Trainer` owns both loops (dynamic padding, length-grouped batches, evaluation,
checkpoints, resume, best-model selection, experiment tracking); this module only configures it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments
from transformers.integrations import TensorBoardCallback, is_tensorboard_available
from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from distilrnn.errors import ConfigError


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


def reporting_integrations(report_to: str) -> list[str] | str:
    """`report_to` (`none`, `all`, or integration names separated by commas) as `Trainer`
    takes it, checked: an unknown name or a missing tensorboard is a `ConfigError`."""
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    if names in ([], ["none"]):
        return []
    if names == ["all"]:
        return "all"
    unknown = [name for name in names if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        known = ", ".join(["none", "all", *INTEGRATION_TO_CALLBACK])
        raise ConfigError(f"report_to: unknown {', '.join(unknown)}; known: {known}")
    if "tensorboard" in names and not is_tensorboard_available():
        raise ConfigError("report_to: tensorboard needs the tensorboard package installed")
    return names


def send_logs_to(trainer: Trainer, logging_dir: Path) -> None:
    """Have `trainer` write its TensorBoard event files (when it reports to tensorboard) under
    `logging_dir`. transformers 5 has no `logging_dir` argument: its callback otherwise writes
    under the checkpoint folder, which a finished stage removes."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(logging_dir)


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
    report_to: str = "none",
    **extra: object,
) -> TrainingArguments:
    """`Trainer` settings shared by teacher and students: evaluate and checkpoint every epoch
    (or every `eval_steps`), length-grouped batches, and the best validation accuracy kept.
    `report_to` names where training logs go (`none`, `tensorboard`, ...); a TensorBoard
    folder is set on the `Trainer` with `send_logs_to`."""
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
        report_to=reporting_integrations(report_to),
        use_cpu=device == "cpu",
        dataloader_pin_memory=False,
        **extra,
    )
