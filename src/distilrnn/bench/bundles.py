"""Bundle bytes, accuracy and speed for each compression setting, against the teacher.

For one student of a finished run, exports a bundle per compression setting (none, prune,
quantize, prune+quantize; pruning keeps the tokens of the texts the student was trained on) and
measures its bytes and its accuracy on the test half. Then times, on the same test sentences,
`Predictor` on each bundle against the teacher run through onnxruntime (a bundle of its own, so
the same `Predictor` code runs it) and through torch (transformers tokenizer and model):
one-sentence latency (p50 / p90 over single calls, one thread) and throughput (batches of 64 in
test order, two threads, best of `repeats`). Tokenisation is included everywhere.

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes losing at most 0.5
points of test accuracy; one-sentence p50 latency under 1 ms on one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distilrnn.bench.models import cpu_threads
from distilrnn.bench.tables import machine, yes_no
from distilrnn.config import ExportSettings
from distilrnn.errors import ConfigError
from distilrnn.evaluate import folder_bytes
from distilrnn.export import export_student, export_teacher_bundle
from distilrnn.run import Run, StudentRecord
from distilrnn.runtime import Predictor, softmax
from distilrnn.timing import latency_ms, time_calls

logger = logging.getLogger(__name__)

SETTINGS = {
    "none": {"prune": False, "quantize": False},
    "prune": {"prune": True, "quantize": False},
    "quantize": {"prune": False, "quantize": True},
    "prune+quantize": {"prune": True, "quantize": True},
}
SIZE_TARGET = 1 / 20  # of the teacher's bytes
ACCURACY_TARGET_POINTS = -0.5  # change against the eager student
LATENCY_TARGET_MS = 1.0  # one sentence, p50, one thread
BATCH_SIZE = 64
Classify = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, num_labels) probabilities
TestSplit = tuple[list[str], list[int]]


def best_throughput(classify: Classify, texts: Sequence[str], repeats: int) -> float:
    """Texts per second over batches of `BATCH_SIZE` in the given order: the fastest of
    `repeats` passes, after one untimed pass."""
    batches = [texts[start : start + BATCH_SIZE] for start in range(0, len(texts), BATCH_SIZE)]

    def one_pass(_: object) -> None:
        for batch in batches:
            classify(batch)

    return len(texts) / float(time_calls(one_pass, [None] * repeats, warmup=1).min())


def torch_teacher(teacher_dir: Path, max_length: int) -> Classify:
    """The teacher in eager torch: transformers tokenizer, dynamic padding, softmax."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir)).eval()

    @torch.inference_mode()
    def classify(texts: Sequence[str]) -> np.ndarray:
        encoded = tokenizer(
            list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        logits = model(**encoded).logits
        return logits.softmax(dim=-1).numpy()

    return classify


def speed(
    name: str,
    runtime: str,
    make: Callable[[int], Classify],
    texts: Sequence[str],
    latency_texts: int,
    repeats: int,
) -> dict[str, Any]:
    """Latency (one sentence, one thread, over the first `latency_texts`) and throughput (batch
    64, two threads) of the classifier `make(threads)` returns; torch's thread count is set for
    both runtimes."""
    with cpu_threads(1):
        classify = make(1)
        latency = latency_ms(lambda text: classify([text]), texts[:latency_texts], warmup=10)
    with cpu_threads(2):
        texts_per_second = best_throughput(make(2), texts, repeats)
    return {
        "model": name,
        "runtime": runtime,
        "latency_ms": latency,
        "throughput_texts_per_s": texts_per_second,
    }


def predictor_maker(bundle_dir: Path) -> Callable[[int], Classify]:
    """`threads -> Predictor(bundle_dir).predict_proba`, batches of `BATCH_SIZE`."""

    def make(threads: int) -> Classify:
        return Predictor(bundle_dir, batch_size=BATCH_SIZE, threads=threads).predict_proba

    return make


def teacher_results(run: Run, work_dir: Path, test: TestSplit) -> dict[str, Any]:
    """The teacher's bytes and accuracy, and its onnxruntime bundle checked against torch."""
    teacher = run.teacher()
    max_length = int(teacher.settings.get("max_length", 128))
    bundle = export_teacher_bundle(
        teacher.model_dir, work_dir / "teacher", labels=run.label_names(), max_length=max_length
    )
    texts, gold = test
    onnx_logits = Predictor(work_dir / "teacher", batch_size=BATCH_SIZE, threads=2).logits(texts)
    torch_probabilities = torch_teacher(teacher.model_dir, max_length)(texts)
    return {
        "safetensors_bytes": folder_bytes(teacher.model_dir),
        "bundle_bytes": bundle["bundle_bytes"],
        "test_accuracy": teacher.test_accuracy,
        "onnx_test_accuracy": float((onnx_logits.argmax(-1) == np.asarray(gold)).mean()),
        "onnx_max_abs_probability_difference": float(
            np.abs(softmax(onnx_logits) - torch_probabilities).max()
        ),
        "max_length": max_length,
    }


def bundle_results(
    run: Run, student: StudentRecord, work_dir: Path, settings: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per compression setting: the bundle's bytes and test accuracy against the eager
    student's. Pruning keeps the tokens of the texts the student trained on."""
    rows = []
    for name in settings:
        summary = export_student(
            run.root,
            work_dir / name.replace("+", "-"),
            ExportSettings(
                prune_vocab="transfer" if SETTINGS[name]["prune"] else "",
                quantize=SETTINGS[name]["quantize"],
            ),
            variant=student.variant,
            seed=student.seed,
        )
        rows.append(
            {
                "setting": name,
                "bundle_dir": summary["bundle_dir"],
                "bundle_bytes": summary["bundle_bytes"],
                "model_bytes": summary["files"]["model.onnx"],
                "test_accuracy": summary["evaluation"]["accuracy"],
                "student_test_accuracy": summary["evaluation"]["student_test_accuracy"],
                "delta_points": summary["evaluation"]["delta_points"],
                "compression": summary["compression"],
            }
        )
    return rows


def check_targets(results: dict[str, Any]) -> None:
    """Mark each bundle row with its share of the teacher's bytes and the targets it meets."""
    teacher_bytes = results["teacher"]["safetensors_bytes"]
    latency = {row["model"]: row["latency_ms"]["p50"] for row in results["speed"]}
    for row in results["bundles"]:
        row["fraction_of_teacher_bytes"] = row["bundle_bytes"] / teacher_bytes
        delta = row["delta_points"]
        row["meets_size_target"] = row["fraction_of_teacher_bytes"] <= SIZE_TARGET
        row["meets_accuracy_target"] = delta is not None and delta >= ACCURACY_TARGET_POINTS
        row["meets_latency_target"] = latency[f"student ({row['setting']})"] < LATENCY_TARGET_MS


def benchmark_bundles(
    run: Run,
    variant: str,
    seed: int | None = None,
    *,
    work_dir: Path | None = None,
    settings: Sequence[str] = tuple(SETTINGS),
    latency_texts: int = 200,
    repeats: int = 3,
) -> dict[str, Any]:
    """Export `variant`'s student of `seed` (default: the lowest trained) under each of
    `settings` into `work_dir` (default: the run's `bundles/`), and time every bundle and the
    teacher (onnxruntime and torch) on the run's test half. Returns a JSON-ready dict: `run`,
    `teacher`, `bundles` (with the targets each meets), `speed`, `machine`."""
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown or not settings:
        raise ConfigError(f"settings: choose from {', '.join(SETTINGS)}, got {list(settings)}")
    if latency_texts < 1 or repeats < 1:
        raise ConfigError(f"latency_texts and repeats must be >= 1, got {latency_texts}, {repeats}")
    work_dir = Path(work_dir) if work_dir is not None else run.root / "bundles"
    student = StudentRecord.read(run.resolve_student(variant, seed))
    test = run.test_split()
    results: dict[str, Any] = {
        "run": {"run_dir": str(run.root), "variant": variant, "seed": student.seed},
        "teacher": teacher_results(run, work_dir, test),
        "bundles": bundle_results(run, student, work_dir, settings),
    }
    texts, timing = test[0], (latency_texts, repeats)
    results["speed"] = [
        speed(
            f"student ({row['setting']})",
            "onnxruntime",
            predictor_maker(Path(row["bundle_dir"])),
            texts,
            *timing,
        )
        for row in results["bundles"]
    ]
    teacher_dir, max_length = run.teacher_model_dir, results["teacher"]["max_length"]
    teacher_bundle = predictor_maker(work_dir / "teacher")
    results["speed"].append(speed("teacher", "onnxruntime", teacher_bundle, texts, *timing))
    results["speed"].append(
        speed("teacher", "torch", lambda _: torch_teacher(teacher_dir, max_length), texts, *timing)
    )
    check_targets(results)
    results["machine"] = machine("torch", "onnxruntime")
    return results


def bundles_markdown(results: dict[str, Any]) -> str:
    """`benchmark_bundles` results as markdown: a row per setting, then a row per timed model."""
    teacher = results["teacher"]
    run = results["run"]
    lines = [
        f"# Bundle benchmark: {run['run_dir']}, {run['variant']} seed {run['seed']}",
        "",
        f"Teacher: {teacher['safetensors_bytes']:,} bytes (safetensors), test accuracy "
        f"{100 * teacher['test_accuracy']:.2f} % (torch), "
        f"{100 * teacher['onnx_test_accuracy']:.2f} % (onnxruntime). Machine: "
        f"{results['machine']['cpu_count']} CPUs, {results['machine']['platform']}.",
        "",
        "| setting | bundle bytes | / teacher | test acc (%) | Δ points | size ≤ 1/20 | "
        "Δ ≥ -0.5 | p50 < 1 ms |",
        "|---|---:|---:|---:|---:|:-:|:-:|:-:|",
    ]
    for row in results["bundles"]:
        delta = "-" if row["delta_points"] is None else f"{row['delta_points']:+.2f}"
        lines.append(
            f"| {row['setting']} | {row['bundle_bytes']:,} | "
            f"{row['fraction_of_teacher_bytes']:.4f} | {100 * row['test_accuracy']:.2f} | "
            f"{delta} | {yes_no(row['meets_size_target'])} | "
            f"{yes_no(row['meets_accuracy_target'])} | {yes_no(row['meets_latency_target'])} |"
        )
    lines += [
        "",
        "| model | runtime | latency p50 (ms) | latency p90 (ms) | throughput (texts/s) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results["speed"]:
        lines.append(
            f"| {row['model']} | {row['runtime']} | {row['latency_ms']['p50']:.3f} | "
            f"{row['latency_ms']['p90']:.3f} | {row['throughput_texts_per_s']:.0f} |"
        )
    lines += [
        "",
        "Latency: one sentence per call, one thread; throughput: batches of 64, two threads. "
        "Tokenisation included.",
    ]
    return "\n".join(lines) + "\n"
