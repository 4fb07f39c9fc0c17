"""The teacher: a transformers sequence classifier and its tokenizer, fine-tuned on a task or
loaded already fine-tuned, that gives the logits a student learns from.

transformers' `Trainer` owns the fine-tuning loop (dynamic padding, length-grouped batches,
evaluation, checkpoints, resume, best-model selection, experiment tracking through `report_to`);
this module only configures it.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from safetensors import SafetensorError
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from distilrnn.atomic import replace_directory
from distilrnn.config import TeacherConfig
from distilrnn.data import Split, Task
from distilrnn.errors import ConfigError, DataError, MissingFileError, TeacherError
from distilrnn.hub import resolve_model
from distilrnn.inputs import PAIR_COLUMN, Input, columns, split_inputs
from distilrnn.labeling import predict_logits
from distilrnn.metrics import CLASSIFICATION, REGRESSION, check_metrics, labelled_mask, scores
from distilrnn.training import (
    FiniteTrainingCallback,
    TrainingClock,
    last_complete_checkpoint,
    reporting_integrations,
    resolve_precision,
    selection_arguments,
    send_logs_to,
    task_metrics,
    tokenize,
)

logger = logging.getLogger(__name__)


def _model_source(name: str) -> str:
    """`resolve_model(name)`, and a local folder checked to hold a model (its config.json)."""
    source = resolve_model(name)
    if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
        raise MissingFileError(f"{source} holds no model: config.json not found")
    return source


def load_tokenizer(name: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    source = _model_source(name)
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise TeacherError(f"cannot load the tokenizer of {name!r}: {error}") from None


def load_classifier(name: str, trust_remote_code: bool = False, **kwargs: Any) -> PreTrainedModel:
    source = _model_source(name)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source, trust_remote_code=trust_remote_code, **kwargs
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


def training_arguments(
    config: TeacherConfig, output_dir: Path, device: str, metric: str = "accuracy"
) -> TrainingArguments:
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
        report_to=config.report_to,
        metric=metric,
        precision=resolve_precision(config.precision, device),
    )


def teacher_config(backbone: str, settings: dict[str, Any]) -> TeacherConfig:
    """A `TeacherConfig` fine-tuning `backbone` with `settings` (its other fields) on top."""
    known = [
        f.name for f in dataclasses.fields(TeacherConfig) if f.name not in {"model", "checkpoint"}
    ]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown teacher setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    config = TeacherConfig(model=backbone, **settings)
    reporting_integrations(config.report_to)  # fail before loading anything
    return config


# the teacher object ------------------------------------------------------------------------------
def _config_label_names(model: PreTrainedModel) -> list[str]:
    id2label = {int(k): str(v) for k, v in (model.config.id2label or {}).items()}
    return [id2label.get(i, str(i)) for i in range(model.config.num_labels)]


class Teacher:
    """A transformers sequence classifier and its tokenizer, in eval mode.

    `Teacher(model, tokenizer)` wraps objects in memory, `Teacher.from_pretrained(name)` loads a
    fine-tuned classifier (hub id or folder), `Teacher.finetune(backbone, task)` fine-tunes one.
    `label_names` default to the model's `id2label`; given, they are written into it, so
    `save_pretrained` keeps them. `metrics` holds the fine-tuning metrics (empty otherwise).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        label_names: Sequence[str] | None = None,
        max_length: int = 128,
        name: str | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = name or str(getattr(model.config, "name_or_path", "") or "teacher")
        self.metrics: dict[str, Any] = {}
        if label_names is not None:
            names = [str(n) for n in label_names]
            if len(names) != self.num_labels:
                raise TeacherError(
                    f"teacher {self.name} has {self.num_labels} labels but {len(names)} label "
                    f"names were given ({', '.join(names)})"
                )
            model.config.id2label = dict(enumerate(names))
            model.config.label2id = {n: i for i, n in enumerate(names)}
        self.label_names = _config_label_names(model)

    def __repr__(self) -> str:
        return f"Teacher({self.name!r}, labels={self.label_names})"

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def task_type(self) -> str:
        """`regression` for a one-output model (`problem_type = "regression"`), else
        `classification`."""
        regression = self.model.config.problem_type == "regression" or self.num_labels == 1
        return REGRESSION if regression else CLASSIFICATION

    @classmethod
    def from_pretrained(
        cls, name_or_dir: str | Path, *, trust_remote_code: bool = False, max_length: int = 128
    ) -> Teacher:
        """A fine-tuned classifier: a folder, a hub id, or a known hub id's offline copy."""
        model, tokenizer = load_teacher(str(name_or_dir), trust_remote_code)
        return cls(model, tokenizer, max_length=max_length, name=str(name_or_dir))

    @classmethod
    def finetune(
        cls,
        backbone: str | Path,
        task: Task,
        *,
        output_dir: str | Path | None = None,
        logging_dir: str | Path | None = None,
        device: str = "cpu",
        **settings: Any,
    ) -> Teacher:
        """Fine-tune `backbone` (hub id or folder) on `task`; keep the best checkpoint by
        validation accuracy. `settings` are `TeacherConfig` fields (`epochs`, `learning_rate`,
        `batch_size`, `max_length`, `report_to`, ...).

        Checkpoints go to `output_dir` (a temporary folder, removed after, when None); a killed
        run given the same `output_dir` resumes from its newest checkpoint. TensorBoard event
        files go to `logging_dir` (default: `output_dir/logs`).
        """
        config = teacher_config(str(backbone), settings)
        if output_dir is not None:
            logs = Path(logging_dir or Path(output_dir) / "logs")
            return _finetune(task, config, Path(output_dir), device, logs)
        if logging_dir is None and "tensorboard" in config.report_to:
            raise ConfigError(
                "report_to: tensorboard needs an output_dir or logging_dir to keep its event files"
            )
        with tempfile.TemporaryDirectory(prefix="distilrnn-teacher-") as work:
            return _finetune(task, config, Path(work), device, Path(logging_dir or work))

    def logits(
        self,
        texts: Sequence[Input],
        *,
        text_pairs: Sequence[str] | None = None,
        batch_size: int = 512,
        max_tokens: int = 8192,
        device: torch.device | str = "cpu",
        progress: bool | tqdm = False,
        precision: str = "fp32",
    ) -> np.ndarray:
        """Logits for `texts`, in their order: float32 `(len(texts), num_labels)` (a regression
        teacher's one column is its predicted score). `texts` are strings, or `(text, text_pair)`
        tuples for sentence pairs (or give the second texts as `text_pairs`); a pair is read as
        one sequence. Inputs run in length-sorted batches of at most `batch_size` inputs and
        `max_tokens` padded tokens. `progress`: True shows a bar, a `tqdm` bar is advanced.
        `precision` (fp32 / bf16 / fp16, resolved) runs the model under autocast."""
        if text_pairs is None:
            texts, text_pairs = split_inputs(texts)
        own_bar = progress is True
        bar = tqdm(total=len(texts), desc="teacher", unit="text") if own_bar else progress or None
        try:
            return predict_logits(
                self.model,
                self.tokenizer,
                texts,
                batch_size,
                self.max_length,
                device,
                bar,
                max_tokens,
                pairs=text_pairs,
                precision=precision,
            )
        finally:
            if own_bar:
                bar.close()

    def evaluate(
        self,
        data: Split | Dataset | tuple[Sequence[Input], Sequence[float]],
        *,
        metrics: Sequence[str] = (),
        batch_size: int = 128,
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """Scores on a labelled split (`task.test`), a `datasets.Dataset` with `text` [,
        `text_pair`] and `label`, or `(inputs, labels)`: `{"accuracy": ..., "examples": ...}`,
        or the given `metrics` (default: accuracy, or pearson and spearman for a regression
        teacher)."""
        return evaluate_teacher(self, data, metrics, batch_size, device)

    def embedding_weight(self) -> torch.Tensor:
        """A detached copy of the word-embedding matrix: `(vocab_size, embedding_dim)`."""
        return self.model.get_input_embeddings().weight.detach().clone()

    def save_pretrained(self, directory: str | Path) -> None:
        """Save the model and its tokenizer to `directory`, atomically (built beside it, then
        moved into place); `from_pretrained(directory)` loads them."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(str(tmp))
        self.tokenizer.save_pretrained(str(tmp))
        replace_directory(tmp, directory)

    def check_fits(self, task: Task) -> None:
        """Raise `TeacherError` unless this teacher's labels fit the task's (count, and names
        when both have real ones; for a task without names, every label id)."""
        if task.task_type != self.task_type:
            raise TeacherError(
                f"teacher {self.name} is a {self.task_type} model ({self.num_labels} outputs) "
                f"but the task is {task.task_type}"
            )
        if task.is_regression:
            return
        if task.label_names:
            check_fits(self.model, task.label_names, self.name)
            return
        top = max(max(task.splits[s]["label"], default=-1) for s in task.splits)
        if top >= self.num_labels:
            raise TeacherError(
                f"teacher {self.name} has {self.num_labels} labels but the task has label id {top}"
            )


def evaluate_teacher(
    teacher: Teacher | Any,
    data: Split | Dataset | tuple[Sequence[Input], Sequence[float]],
    metrics: Sequence[str] = (),
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """`Teacher.evaluate` for anything with a teacher's `logits`, `task_type` and `num_labels`
    (a `Teacher`, a `distilrnn.ensemble.TeacherEnsemble`)."""
    if isinstance(data, Split):
        texts, pairs, labels = data.texts, data.text_pairs, data.labels
    elif isinstance(data, Dataset):
        (texts, pairs), labels = columns(data), list(data["label"])
    else:
        (texts, pairs), labels = split_inputs(data[0]), data[1]
    if labels is None or not labelled_mask(labels, teacher.task_type).all():
        raise DataError("cannot evaluate the teacher on unlabelled texts")
    names = check_metrics(metrics, teacher.task_type, max(2, teacher.num_labels))
    logits = teacher.logits(texts, text_pairs=pairs, batch_size=batch_size, device=device)
    return {**scores(names, logits, labels, teacher.task_type), "examples": len(texts)}


# fine-tuning -------------------------------------------------------------------------------------
def _finetune(
    task: Task, config: TeacherConfig, work_dir: Path, device: str, logging_dir: Path
) -> Teacher:
    for split in ("train", "validation"):
        if task.split(split).labels is None:
            raise DataError(f"fine-tuning a teacher needs a labelled {split} split")
    tokenizer = load_tokenizer(config.model, config.trust_remote_code)
    names = task.label_names
    # the classification head is initialised as the model loads, before the Trainer seeds:
    # seed here, so the same settings give the same teacher in any process
    torch.manual_seed(config.seed)
    model = load_classifier(
        config.model,
        config.trust_remote_code,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        problem_type=("regression" if task.is_regression else "single_label_classification"),
        # a backbone saved with a head of another size (2 classes, fine-tuned for a score)
        # gets a fresh head: fine-tuning trains it anyway
        ignore_mismatched_sizes=True,
    )
    texts = [c for c in ("text", PAIR_COLUMN) if c in task.splits["train"].column_names]
    train = tokenize(task.splits["train"], tokenizer, config.max_length).remove_columns(texts)
    validation = tokenize(task.splits["validation"], tokenizer, config.max_length)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, work_dir, device, task.metrics[0]),
        train_dataset=train,
        eval_dataset=validation.remove_columns(texts),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=task_metrics(task.metrics, task.task_type),
        callbacks=[
            FiniteTrainingCallback(f"teacher {config.model} seed {config.seed}", TeacherError)
        ],
    )
    send_logs_to(trainer, logging_dir)
    last = last_complete_checkpoint(work_dir)
    if last:
        logger.info("resuming teacher fine-tuning from %s", last)
    clock = TrainingClock(last)
    trainer.add_callback(clock)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = clock.seconds
    teacher = Teacher(trainer.model, tokenizer, max_length=config.max_length, name=config.model)
    teacher.metrics = {
        "train_seconds": seconds,
        # resumed from a checkpoint without its seconds: only those from it on are counted
        **({} if clock.known or last is None else {"train_seconds_counted_from": last.name}),
        "train_runtime": result.metrics.get("train_runtime"),
        "epochs": config.epochs,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        f"best_validation_{task.metrics[0]}": trainer.state.best_metric,
        "train_examples": len(train),
        "log_history": trainer.state.log_history,
    }
    return teacher


def finetune(
    task: Task,
    config: TeacherConfig,
    work_dir: Path,
    model_dir: Path,
    device: str = "cpu",
    logging_dir: Path | None = None,
) -> dict:
    """Fine-tune `config.model` on the task (`Teacher.finetune` with checkpoints in `work_dir`)
    and save the best model with its tokenizer to `model_dir`. TensorBoard event files go to
    `logging_dir` (default `work_dir/logs`). Returns the training metrics."""
    teacher = _finetune(task, config, work_dir, device, logging_dir or work_dir / "logs")
    teacher.save_pretrained(model_dir)
    return teacher.metrics


def load_teacher(
    name: str, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fine-tuned classifier and its tokenizer, in eval mode."""
    tokenizer = load_tokenizer(name, trust_remote_code)
    model = load_classifier(name, trust_remote_code)
    return model.eval(), tokenizer
