"""Teacher against student in one process: size, CPU latency, throughput and training time.

Both models read the same token ids (the teacher's tokenizer, truncated to `max_length`) in the
same batches, so the numbers compare the networks and not their preprocessing; only the model
calls are timed (`distilrnn.timing`). Every speed-up is teacher time / student time. The numbers
belong to the machine that made them: quote them with `machine` and the command that produced
them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from distilrnn.atomic import write_json_atomic
from distilrnn.batching import pad_batch
from distilrnn.bench.tables import MODELS, machine
from distilrnn.config import BenchmarkSettings, RunConfig, Variant
from distilrnn.errors import ConfigError, DataError, MissingFileError, StudentError
from distilrnn.evaluate import folder_bytes
from distilrnn.run import Run
from distilrnn.student import RNNStudent
from distilrnn.teacher import load_teacher
from distilrnn.timing import percentiles_ms, time_calls
from distilrnn.variants import encoder_name

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # input_ids, attention_mask: (batch, seq) int64
Call = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ids, mask -> (batch, num_labels)
ModelCall = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def teacher_call(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Logits `(batch, num_labels)` of a transformers sequence classifier."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits


def student_call(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Logits `(batch, num_labels)` of an `RNNStudent`."""
    return model(input_ids, attention_mask)


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Run the block under `torch.set_num_threads(count)`; the previous count is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_batches(
    token_ids: Sequence[Sequence[int]], batch_size: int, pad_token_id: int
) -> list[Batch]:
    """Batches of `batch_size` texts in the given order (not sorted by length: the texts are
    timed as they come), each right-padded to its longest text."""
    batches = []
    for start in range(0, len(token_ids), batch_size):
        input_ids, attention_mask = pad_batch(token_ids[start : start + batch_size], pad_token_id)
        batches.append((torch.from_numpy(input_ids), torch.from_numpy(attention_mask)))
    return batches


def time_batches(call: Call, batches: Sequence[Batch], warmup: int = 3) -> np.ndarray:
    """Seconds `call` takes on each batch, `(len(batches),)`, under `torch.inference_mode()`,
    after `warmup` untimed calls on the first batches."""
    with torch.inference_mode():
        return time_calls(lambda batch: call(*batch), batches, warmup)


def time_training(model: nn.Module, forward: ModelCall, batches: Sequence[Batch]) -> float:
    """Seconds for one pass of forward + backward + AdamW step over `batches`.

    Runs on a deep copy of `model` in train mode (its dropouts on), training only the parameters
    that require gradients (a student's frozen embedding stays out of the optimiser), after one
    untimed step that allocates the optimiser state.
    """
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])

    def step(batch: Batch) -> None:
        logits = forward(model, *batch)
        # the targets do not change the cost, and a distillation loss costs about the same
        loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return float(time_calls(step, batches, warmup=1).sum())


def teacher_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts of the teacher; all are trainable, as it is fine-tuned in full."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return {"total": total, "trainable": total, "embedding": embedding}


def _check_inputs(
    teacher_dir: Path, student_dir: Path, texts: Sequence[str], threads: Sequence[int]
) -> None:
    for role, directory in (("teacher", teacher_dir), ("student", student_dir)):
        if not directory.is_dir():
            raise MissingFileError(f"{role} folder not found: {directory}")
    if not texts:
        raise DataError("no texts to time: `texts` is empty")
    if not threads or min(threads) < 1:
        raise ConfigError(f"threads must be one or more counts >= 1, got {list(threads)}")


def _load(teacher_dir: Path, student_dir: Path):
    teacher, tokenizer = load_teacher(str(teacher_dir))
    student = RNNStudent.load(student_dir)
    teacher_vocab = teacher.get_input_embeddings().num_embeddings
    if teacher_vocab != student.config.vocab_size:
        raise StudentError(
            f"the teacher in {teacher_dir} has {teacher_vocab} token ids but the student in "
            f"{student_dir} has {student.config.vocab_size}; they cannot read the same inputs"
        )
    return teacher.eval(), student.eval(), tokenizer


def _speed(
    calls: dict[str, Call],
    singles: list[Batch],
    batches: list[Batch],
    threads: Sequence[int],
    warmup: int,
    bar: tqdm,
) -> dict[str, dict[str, dict]]:
    """Latency (ms, one text a call) and throughput (texts/s) per model and thread count."""
    speed = {name: {"latency_ms": {}, "throughput": {}} for name in calls}
    texts = len(singles)
    for count in threads:
        with cpu_threads(count):
            for name, call in calls.items():  # models alternate, so drift hits both alike
                bar.set_postfix_str(f"{name}, {count} thread(s)")
                latency = time_batches(call, singles, warmup)
                throughput = texts / float(time_batches(call, batches, warmup).sum())
                speed[name]["latency_ms"][str(count)] = {
                    **percentiles_ms(latency),
                    "mean": float(latency.mean() * 1e3),
                }
                speed[name]["throughput"][str(count)] = throughput
                logger.info(
                    "%s, %d thread(s): p50 %.2f ms, %.0f texts/s",
                    name,
                    count,
                    speed[name]["latency_ms"][str(count)]["p50"],
                    throughput,
                )
                bar.update()
    return speed


def _training(
    models: dict[str, tuple[nn.Module, ModelCall, int]],
    token_ids: list[list[int]],
    pad_token_id: int,
    epoch_size: int,
    bar: tqdm,
) -> dict[str, dict[str, float]]:
    """Seconds per 1000 texts and per epoch of `epoch_size` texts, per model."""
    train = {}
    for name, (model, forward, batch_size) in models.items():
        bar.set_postfix_str(f"{name}, training")
        batches = make_batches(token_ids, batch_size, pad_token_id)
        per_1000 = 1000 * time_training(model, forward, batches) / len(token_ids)
        train[name] = {
            "batch_size": batch_size,
            "seconds_per_1000": per_1000,
            "seconds_per_epoch": per_1000 * epoch_size / 1000,
        }
        logger.info("%s: %.2f s per 1000 training texts", name, per_1000)
        bar.update()
    return train


def speedups(results: dict[str, Any]) -> dict[str, Any]:
    """Teacher time / student time: latency p50 and throughput per thread count, training."""
    teacher, student = results["teacher"], results["student"]
    counts = list(teacher["latency_ms"])
    train_epoch = None
    if teacher["train"] is not None:
        train_epoch = teacher["train"]["seconds_per_epoch"] / student["train"]["seconds_per_epoch"]
    return {
        "latency_p50": {
            n: teacher["latency_ms"][n]["p50"] / student["latency_ms"][n]["p50"] for n in counts
        },
        "throughput": {n: student["throughput"][n] / teacher["throughput"][n] for n in counts},
        "train_epoch": train_epoch,
    }


def benchmark_models(
    teacher_dir: Path,
    student_dir: Path,
    texts: Sequence[str],
    train_texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    threads: Sequence[int] = (1, 2),
    warmup: int = 3,
    train_sample: int = 2000,
    epoch_size: int | None = None,
    train_threads: int = 2,
    teacher_train_batch_size: int = 32,
    student_train_batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Time a teacher folder against a student folder on CPU, in this process.

    Latency is one text a call over `texts` (p50 / p90 / mean in ms); throughput is texts/s in
    batches of `batch_size` in the given order; both for each of `threads`. Training time is one
    forward + backward + AdamW pass over the first `train_sample` of `train_texts` at
    `train_threads` threads (`train_sample=0` skips it), extrapolated to `epoch_size` texts
    (default: all of `train_texts`). Returns a JSON-ready dict: `teacher`, `student`, `ratios`,
    `inputs`, `machine`, `student_rnn` (the student's cell, or `bag` / `cnn`: `encoder_name`).
    """
    teacher_dir, student_dir = Path(teacher_dir), Path(student_dir)
    _check_inputs(teacher_dir, student_dir, texts, threads)
    train_texts = list(train_texts[:train_sample])
    epoch = (epoch_size or len(train_texts)) if train_texts else None
    teacher, student, tokenizer = _load(teacher_dir, student_dir)
    pad = student.config.padding_idx  # the teacher tokenizer's pad id, the student was built so

    def encode(some: list[str]) -> list[list[int]]:
        return tokenizer(some, truncation=True, max_length=max_length)["input_ids"]

    token_ids = encode(list(texts))
    calls = {
        "teacher": functools.partial(teacher_call, teacher),
        "student": functools.partial(student_call, student),
    }
    steps = 2 * len(threads) + (2 if train_texts else 0)
    with tqdm(total=steps, desc="benchmark", disable=not progress) as bar:
        speed = _speed(
            calls,
            make_batches(token_ids, 1, pad),
            make_batches(token_ids, batch_size, pad),
            threads,
            warmup,
            bar,
        )
        train = dict.fromkeys(MODELS)
        if train_texts:
            with cpu_threads(train_threads):
                models = {
                    "teacher": (teacher, teacher_call, teacher_train_batch_size),
                    "student": (student, student_call, student_train_batch_size),
                }
                train = _training(models, encode(train_texts), pad, epoch, bar)
    results: dict[str, Any] = {
        "teacher": {
            "path": str(teacher_dir),
            "parameters": teacher_parameters(teacher),
            "size_bytes": folder_bytes(teacher_dir),
        },
        "student": {
            "path": str(student_dir),
            "parameters": student.parameter_counts(),
            "size_bytes": folder_bytes(student_dir),
        },
    }
    for name in MODELS:
        results[name].update(speed[name], train=train[name])
    results["ratios"] = speedups(results)
    results["inputs"] = {
        "texts": len(token_ids),
        "mean_tokens": float(np.mean([len(ids) for ids in token_ids])),
        "max_length": max_length,
        "batch_size": batch_size,
        "warmup": warmup,
        "train_sample": len(train_texts),
        "epoch_size": epoch,
        "train_threads": train_threads,
    }
    results["machine"] = machine("torch")
    results["student_rnn"] = encoder_name(student.config)  # lstm, gru, or bag / cnn
    return results


def benchmark_student(
    run: Run, variant: str, seed: int, *, sample: int = 2000, **options: Any
) -> dict[str, Any]:
    """`benchmark_models` on a student of a finished run: timed on the test texts, trained on
    the first `sample` training texts, the epoch being the whole training split. `options` go
    through. A missing stage raises naming the folder and the command that builds it."""
    task = run.task()
    student_dir = run.student_dir(variant, seed)
    needed = (
        (run.teacher_model_dir, "distilrnn teacher"),
        (student_dir, f"distilrnn student --variant {variant}"),
    )
    for directory, command in needed:
        if not directory.is_dir():
            raise MissingFileError(f"{directory} not found; run `{command}` with this config first")
    train_texts = list(task.splits["train"]["text"])
    results = benchmark_models(
        run.teacher_model_dir,
        student_dir,
        list(task.splits["test"]["text"]),
        train_texts,
        train_sample=sample,
        epoch_size=len(train_texts),
        **options,
    )
    results["run"] = {"run_dir": str(run.root), "variant": variant, "seed": seed}
    results["student_name"] = variant
    return results


def choose_student(config: RunConfig, variant: str = "", seed: int = -1) -> tuple[Variant, int]:
    """The named variant (empty: the config's first) and seed (-1: its first seed)."""
    if not config.variants:
        raise ConfigError("the config has no [[variant]] to benchmark")
    name = variant or config.variants[0].name
    chosen = next((v for v in config.variants if v.name == name), None)
    if chosen is None:
        names = ", ".join(v.name for v in config.variants)
        raise ConfigError(f"benchmark.student: the config has no variant {name!r}; it has {names}")
    return chosen, config.student_for(chosen).seeds[0] if seed < 0 else seed


def benchmark_run(
    config: RunConfig, settings: BenchmarkSettings | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Benchmark one student of the config's run against its teacher, with the config's
    `max_length` and training batch sizes; write the run's `benchmark-<variant>.json`.
    `settings` default to the config's `[benchmark]`."""
    settings = settings or config.benchmark
    chosen, seed = choose_student(config, settings.student, settings.seed)
    run = Run(config.run_dir)
    results = benchmark_student(
        run,
        chosen.name,
        seed,
        sample=settings.sample,
        threads=tuple(settings.threads),
        max_length=config.teacher.max_length,
        teacher_train_batch_size=config.teacher.batch_size,
        student_train_batch_size=config.student_for(chosen).batch_size,
        progress=progress,
    )
    write_json_atomic(run.benchmark_file(chosen.name), results)
    return results
