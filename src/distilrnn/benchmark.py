"""Teacher against student in one process: size, CPU latency, throughput and training time.

Both models read the same token ids (the teacher's tokenizer, truncated to `max_length`) in the
same batches, so the numbers compare the networks and not their preprocessing; only the model
calls are timed. Every speed-up is teacher time / student time. The numbers belong to the machine
that made them: quote them with `machine` and the command that produced them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from distilrnn.atomic import write_json_atomic
from distilrnn.config import ConfigError, RunConfig, Variant
from distilrnn.data import Task
from distilrnn.distill import StudentCollator
from distilrnn.evaluate import folder_bytes
from distilrnn.student import RNNStudent
from distilrnn.teacher import load_teacher

logger = logging.getLogger(__name__)

MODELS = ("teacher", "student")
Batch = dict[str, torch.Tensor]  # input_ids, attention_mask: (batch, seq) int64, right-padded
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
    """Batches of `batch_size` texts in the given order, each right-padded to its longest text."""
    collate = StudentCollator(pad_token_id)
    return [
        collate([{"input_ids": ids} for ids in token_ids[start : start + batch_size]])
        for start in range(0, len(token_ids), batch_size)
    ]


def time_calls(call: Call, batches: Sequence[Batch], warmup: int = 3) -> np.ndarray:
    """Seconds `call` takes on each batch (float array, one per batch), under
    `torch.inference_mode()`, after `warmup` untimed calls on the first batches."""
    seconds = np.zeros(len(batches))
    with torch.inference_mode():
        for batch in batches[:warmup]:
            call(batch["input_ids"], batch["attention_mask"])
        for index, batch in enumerate(batches):
            started = time.perf_counter()
            call(batch["input_ids"], batch["attention_mask"])
            seconds[index] = time.perf_counter() - started
    return seconds


def time_training(model: nn.Module, forward: ModelCall, batches: Sequence[Batch]) -> float:
    """Seconds for one pass of forward + backward + AdamW step over `batches`.

    Runs on a deep copy of `model` in train mode (its dropouts on), training only the parameters
    that require gradients (a student's frozen embedding stays out of the optimiser), after one
    untimed step that allocates the optimiser state.
    """
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])

    def step(batch: Batch) -> None:
        logits = forward(model, batch["input_ids"], batch["attention_mask"])
        # the targets do not change the cost, and a distillation loss costs about the same
        loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    started = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - started


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
            raise FileNotFoundError(f"{role} folder not found: {directory}")
    if not texts:
        raise ValueError("no texts to time: `texts` is empty")
    if not threads or min(threads) < 1:
        raise ValueError(f"threads must be one or more counts >= 1, got {list(threads)}")


def _load(teacher_dir: Path, student_dir: Path):
    teacher, tokenizer = load_teacher(str(teacher_dir))
    student = RNNStudent.load(student_dir)
    teacher_vocab = teacher.get_input_embeddings().num_embeddings
    if teacher_vocab != student.config.vocab_size:
        raise ValueError(
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
                latency = 1000 * time_calls(call, singles, warmup)
                throughput = texts / float(time_calls(call, batches, warmup).sum())
                speed[name]["latency_ms"][str(count)] = {
                    "p50": float(np.percentile(latency, 50)),
                    "p90": float(np.percentile(latency, 90)),
                    "mean": float(latency.mean()),
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
    `inputs`, `machine`.
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
    results["machine"] = {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    return results


def run_folders(run_dir: Path, variant: str, seed: int) -> dict[str, Path]:
    """The data, teacher and student folders of a finished run; a missing one raises
    FileNotFoundError naming it and the command that builds it."""
    folders = {
        "data": (run_dir / "data", "distilrnn data"),
        "teacher": (run_dir / "teacher" / "model", "distilrnn teacher"),
        "student": (
            run_dir / "students" / variant / f"seed-{seed}",
            f"distilrnn student --variant {variant}",
        ),
    }
    for name, (directory, command) in folders.items():
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{name} folder not found: {directory}; run `{command}` with this config first"
            )
    return {name: directory for name, (directory, _) in folders.items()}


def benchmark_run_dir(
    run_dir: Path, variant: str, seed: int, *, sample: int = 2000, **options: Any
) -> dict[str, Any]:
    """`benchmark_models` on a finished run: timed on the test texts, trained on the first
    `sample` training texts, the epoch being the whole training split. `options` go through."""
    folders = run_folders(Path(run_dir), variant, seed)
    task = Task.load(folders["data"])
    train_texts = list(task.splits["train"]["text"])
    results = benchmark_models(
        folders["teacher"],
        folders["student"],
        list(task.splits["test"]["text"]),
        train_texts,
        train_sample=sample,
        epoch_size=len(train_texts),
        **options,
    )
    results["run"] = {"run_dir": str(run_dir), "variant": variant, "seed": seed}
    results["student_name"] = variant
    results["student_rnn"] = json.loads((folders["student"] / "config.json").read_text())["rnn"]
    return results


def choose_student(
    config: RunConfig, variant: str | None = None, seed: int | None = None
) -> tuple[Variant, int]:
    """The named variant (default: the config's first) and seed (default: its first seed)."""
    if not config.variants:
        raise ConfigError("the config has no [[variant]] to benchmark")
    name = variant or config.variants[0].name
    chosen = next((v for v in config.variants if v.name == name), None)
    if chosen is None:
        names = ", ".join(v.name for v in config.variants)
        raise ConfigError(f"--student: the config has no variant {name!r}; it has {names}")
    return chosen, config.student_for(chosen).seeds[0] if seed is None else seed


def benchmark_run(
    config: RunConfig,
    variant: str | None = None,
    seed: int | None = None,
    *,
    sample: int = 2000,
    threads: Sequence[int] = (1, 2),
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark one student of the config's run against its teacher, with the config's
    `max_length` and training batch sizes; write `run_dir/benchmark-<variant>.json`."""
    chosen, seed = choose_student(config, variant, seed)
    run_dir = Path(config.run_dir)
    results = benchmark_run_dir(
        run_dir,
        chosen.name,
        seed,
        sample=sample,
        threads=threads,
        max_length=config.teacher.max_length,
        teacher_train_batch_size=config.teacher.batch_size,
        student_train_batch_size=config.student_for(chosen).batch_size,
        progress=progress,
    )
    write_json_atomic(run_dir / f"benchmark-{chosen.name}.json", results)
    return results


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def _rows(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Markdown table lines; the first `left` columns align left, the others right."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    return ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]


def _size_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name in MODELS:
        counts = results[name]["parameters"]
        sizes = [_millions(counts[key]) for key in ("total", "trainable", "embedding")]
        rows.append([name, *sizes, f"{results[name]['size_bytes'] / 1e6:.1f}"])
    return _rows(["model", "parameters", "trainable", "embedding", "size (MB)"], rows)


def _speed_table(results: dict[str, Any]) -> list[str]:
    ratios, rows = results["ratios"], []
    for count in results["teacher"]["latency_ms"]:
        for name in MODELS:
            latency = results[name]["latency_ms"][count]
            throughput = results[name]["throughput"][count]
            rows.append(
                [count, name, f"{latency['p50']:.2f}", f"{latency['p90']:.2f}", f"{throughput:.0f}"]
            )
        speedups = [
            f"{ratios['latency_p50'][count]:.1f}x",
            "",
            f"{ratios['throughput'][count]:.1f}x",
        ]
        rows.append([count, "speed-up", *speedups])
    header = ["threads", "model", "latency p50 (ms)", "latency p90 (ms)", "throughput (texts/s)"]
    return _rows(header, rows, left=2)


def _train_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name in MODELS:
        train = results[name]["train"]
        seconds = [f"{train['seconds_per_1000']:.2f}", f"{train['seconds_per_epoch']:.1f}"]
        rows.append([name, str(train["batch_size"]), *seconds])
    rows.append(["speed-up", "", "", f"{results['ratios']['train_epoch']:.1f}x"])
    epoch = f"s / epoch ({results['inputs']['epoch_size']} texts)"
    return _rows(["model", "batch", "s / 1000 texts", epoch], rows)


def markdown_table(results: dict[str, Any]) -> str:
    """The results as markdown: sizes, latency / throughput per thread count, training time."""
    inputs, machine = results["inputs"], results["machine"]
    lines = [*_size_table(results), "", *_speed_table(results)]
    if results["teacher"]["train"] is not None:
        lines += ["", *_train_table(results)]
    lines += [
        "",
        f"{inputs['texts']} texts of {inputs['mean_tokens']:.1f} tokens on average (at most "
        f"{inputs['max_length']}), throughput in batches of {inputs['batch_size']}; training on "
        f"{inputs['train_sample']} texts at {inputs['train_threads']} threads; "
        f"{machine['cpu_count']} CPUs, torch {machine['torch']}.",
    ]
    return "\n".join(lines) + "\n"
