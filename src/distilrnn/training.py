"""The `Trainer` settings teacher fine-tuning and student training share: tokenising a split,
the accuracy metric, evaluation and checkpoints every epoch with the best kept, where training
logs go (`report_to`), stopping a training that diverges (`FiniteTrainingCallback`), the
checkpoint a killed training resumes from (`last_complete_checkpoint`), and its seconds counted
across resumes (`TrainingClock`).

transformers' `Trainer` owns both loops (dynamic padding, length-grouped batches, evaluation,
checkpoints, resume, best-model selection, experiment tracking); this module only configures it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from safetensors import SafetensorError, safe_open
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback, is_tensorboard_available
from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from distilrnn import distributed
from distilrnn.atomic import write_json_atomic
from distilrnn.config import PRECISIONS
from distilrnn.errors import ConfigError, DistilrnnError
from distilrnn.inputs import PAIR_COLUMN, encode_student
from distilrnn.metrics import scores

logger = logging.getLogger(__name__)


def tokenize(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, design: str = "joint"
) -> Dataset:
    """Add `input_ids` / `attention_mask` (unpadded) to a dataset with a `text` column. A pair
    (`text_pair` column) is one sequence (`tokenizer(text, text_pair)`), or with `design =
    "siamese"` two: `input_ids` and `pair_input_ids` (`distilrnn.inputs.encode_student`)."""
    pair = PAIR_COLUMN in dataset.column_names

    def encode(batch: dict[str, list]) -> dict[str, list]:
        if pair and design == "siamese":
            return encode_student(
                tokenizer, batch["text"], batch[PAIR_COLUMN], max_length, "siamese"
            )
        pairs = batch[PAIR_COLUMN] if pair else None
        return tokenizer(batch["text"], pairs, truncation=True, max_length=max_length)

    return dataset.map(encode, batched=True, desc="tokenising")


def task_metrics(names: list[str], task_type: str) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for the Trainer scoring `names` (`distilrnn.metrics`)."""

    def compute(prediction: Any) -> dict[str, float]:
        logits = (
            prediction.predictions[0]
            if isinstance(prediction.predictions, tuple)
            else prediction.predictions
        )
        return scores(names, logits, prediction.label_ids, task_type)

    return compute


def accuracy_metrics(prediction: Any) -> dict[str, float]:
    return task_metrics(["accuracy"], "classification")(prediction)


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


# mixed precision ------------------------------------------------------------------------------
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: str) -> str:
    """The precision `precision` runs in on `device`: `fp32`, `bf16` or `fp16`. `auto` is bf16
    on a GPU that supports it, else fp16 on a GPU, and fp32 on CPU. fp16 on CPU (no autocast
    there) and bf16 on a GPU without it are `ConfigError`s."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: unknown {precision!r}; known: {', '.join(PRECISIONS)}")
    on_gpu = device.startswith("cuda")
    if precision == "auto":
        if not on_gpu:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not on_gpu:
        raise ConfigError(
            f'precision = "fp16" needs a GPU (device {device}); use "fp32", "bf16" or '
            '"auto" (fp32 on CPU)'
        )
    if precision == "bf16" and on_gpu and not torch.cuda.is_bf16_supported():
        raise ConfigError('precision = "bf16": this GPU has no bf16; use "fp16" or "auto"')
    return precision


def autocast(precision: str, device: str) -> Any:
    """`torch.autocast` in `precision` (resolved: fp32 / bf16 / fp16) on `device`; off for fp32."""
    return torch.autocast(
        device_type=torch.device(device).type,
        dtype=AUTOCAST_DTYPES.get(precision, torch.float32),
        enabled=precision in AUTOCAST_DTYPES,
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
    report_to: str = "none",
    metric: str = "accuracy",
    precision: str = "fp32",
    **extra: object,
) -> TrainingArguments:
    """`Trainer` settings shared by teacher and students: evaluate and checkpoint every epoch
    (or every `eval_steps`), length-grouped batches, and the best validation `metric` kept.
    `report_to` names where training logs go (`none`, `tensorboard`, ...); a TensorBoard
    folder is set on the `Trainer` with `send_logs_to`. `precision` (resolved,
    `resolve_precision`) turns on the Trainer's bf16 / fp16 mixed precision. Launched as several
    processes (`distilrnn.distributed`), the Trainer trains data-parallel (DDP) over gloo on CPU
    and nccl on GPU."""
    if distributed.world_size() > 1:
        extra.setdefault("ddp_backend", distributed.backend(device))
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
        metric_for_best_model=metric,
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        logging_steps=50,
        logging_nan_inf_filter=False,  # a diverged loss is logged as it is (FiniteTrainingCallback)
        seed=seed,
        report_to=reporting_integrations(report_to),
        use_cpu=device == "cpu",
        dataloader_pin_memory=False,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **extra,
    )


# divergence ----------------------------------------------------------------------------------
def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters of `model` holding a NaN or an infinity."""
    return [
        name
        for name, parameter in model.named_parameters()
        if not bool(torch.isfinite(parameter.detach()).all())
    ]


class FiniteTrainingCallback(TrainerCallback):
    """Stops a training that diverges: a NaN / inf logged loss, gradient norm or evaluation
    loss, or parameters that are no longer finite when the model is evaluated or saved, raise
    `error` naming `what` (e.g. `student kl seed 0`) and the global step. Evaluation comes before
    each save, so no non-finite checkpoint is kept; one found at save time is removed."""

    def __init__(self, what: str, error: type[DistilrnnError]):
        self.what = what
        self.error = error

    def _diverged(self, step: int, why: str) -> DistilrnnError:
        return self.error(
            f"{self.what} diverged by step {step}: {why}; lower learning_rate and run again"
        )

    def _check_logs(self, state: Any, logs: dict[str, Any] | None) -> None:
        for key in ("loss", "grad_norm", "eval_loss"):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise self._diverged(state.global_step, f"{key} is {value}")

    def _check_model(self, state: Any, model: torch.nn.Module | None) -> None:
        bad = non_finite_parameters(model) if model is not None else []
        if bad:
            shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
            raise self._diverged(state.global_step, f"non-finite weights in {shown}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._check_logs(state, logs)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._check_logs(state, metrics)
        self._check_model(state, kwargs.get("model"))

    def on_save(self, args, state, control, **kwargs):
        try:
            self._check_model(state, kwargs.get("model"))
        except DistilrnnError:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            shutil.rmtree(checkpoint, ignore_errors=True)
            raise

    def on_train_end(self, args, state, control, **kwargs):
        self._check_model(state, kwargs.get("model"))
        # with several ranks, each has loaded the best checkpoint before rank 0 goes on to
        # remove the checkpoints (the Trainer waits only before loading it)
        distributed.barrier()


class TrainingClock(TrainerCallback):
    """Seconds a training has run, counted across resumes: each checkpoint keeps the seconds run
    up to it (`training_seconds.json`, written after the Trainer's files), and a training
    resumed from one (`resumed_from`) counts on from them. `known` is False when the checkpoint
    resumed from has no such file (written before the clock, or lost): its seconds are not in
    `seconds` then."""

    FILE = "training_seconds.json"

    def __init__(self, resumed_from: Path | None = None):
        self.before, self.known = 0.0, True
        if resumed_from is not None:
            try:
                saved = json.loads((Path(resumed_from) / self.FILE).read_text(encoding="utf-8"))
                self.before = float(saved["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                self.known = False
            if not math.isfinite(self.before) or self.before < 0:
                self.before, self.known = 0.0, False
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds of training so far: before the resume, and since."""
        return self.before + time.perf_counter() - self.started

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if distributed.is_main() and checkpoint.is_dir():
            write_json_atomic(checkpoint / self.FILE, {"seconds": self.seconds})


# resuming ------------------------------------------------------------------------------------
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# `Trainer._save_checkpoint` writes the weights, then the optimizer / scheduler / RNG states,
# and `trainer_state.json` last; removing an old checkpoint deletes its files in any order.
TRAINER_STATE = "trainer_state.json"
REQUIRED = ("optimizer.pt",)


def _weights_complete(checkpoint: Path) -> bool:
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
    else:
        shards = {"model.safetensors"}
    for shard in shards:
        try:
            with safe_open(str(checkpoint / shard), "pt"):
                pass
        except (OSError, SafetensorError):
            return False
    return True


def checkpoint_complete(checkpoint: Path) -> bool:
    """Whether a Trainer checkpoint folder holds every file a resume reads, written whole:
    `trainer_state.json` (written last) parses, the weights' safetensors headers load and
    cover their files, and the optimizer state is there."""
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or "global_step" not in state:
        return False
    if any(not (checkpoint / name).is_file() for name in REQUIRED):
        return False
    return _weights_complete(checkpoint)


def last_complete_checkpoint(work_dir: Path) -> Path | None:
    """The newest `checkpoint-N` in `work_dir` that is complete (`checkpoint_complete`), or
    None. Newer incomplete ones (a kill while a checkpoint was written or removed) are logged
    and removed, so the resumed training writes its checkpoints afresh."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return None
    found = [
        (int(match.group(1)), path)
        for path in work_dir.iterdir()
        if path.is_dir() and (match := CHECKPOINT.match(path.name))
    ]
    for _, path in sorted(found, reverse=True):
        if checkpoint_complete(path):
            return path
        logger.warning("skipping incomplete checkpoint %s (removed)", path)
        shutil.rmtree(path, ignore_errors=True)
    return None
