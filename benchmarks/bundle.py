"""Bundle bytes, accuracy and speed for each compression setting, against the teacher.

For one student of a finished run, exports a bundle per compression setting (none, prune,
quantize, prune+quantize; pruning keeps the tokens of the transfer set the student was trained
on) and measures its bytes and its accuracy on the test half. Then times, on the same test
sentences, `Predictor` on each bundle against the teacher run through onnxruntime (a bundle of
its own, so the same `Predictor` code runs it) and through torch (transformers tokenizer and
model): one-sentence latency (p50 / p90 over single calls, one thread) and throughput (batches
of 64 in test order, two threads, best of `--repeats`). Tokenisation is included everywhere.
Writes JSON and a markdown table (same name, `.md`); the numbers belong to the machine that made
them.

    .venv/bin/python benchmarks/bundle.py runs/sst2 --variant distilled-gru --seed 0 \\
        --json docs/benchmarks/bundle.json

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes losing at most 0.5
points of test accuracy; one-sentence p50 latency under 1 ms on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch

from distilrnn.atomic import write_json_atomic
from distilrnn.data import Task
from distilrnn.export import export_bundle, export_teacher_bundle, latency_ms
from distilrnn.run_dir import resolve_student_dir, run_transfer_texts
from distilrnn.runtime import Predictor, softmax

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


def throughput(classify: Classify, texts: Sequence[str], repeats: int) -> float:
    """Texts per second over batches of `BATCH_SIZE` in the given order, best of `repeats`."""
    batches = [texts[start : start + BATCH_SIZE] for start in range(0, len(texts), BATCH_SIZE)]
    classify(batches[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            classify(batch)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


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
    name: str, runtime: str, make: Callable[[int], Classify], texts: Sequence[str], args
) -> dict[str, Any]:
    """Latency (one sentence, one thread) and throughput (batch 64, two threads) of the
    classifier `make(threads)` returns; torch's thread count is set for both runtimes."""
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        classify = make(1)
        latency = latency_ms(lambda text: classify([text]), texts[: args.latency_texts], warmup=10)
        torch.set_num_threads(2)
        texts_per_second = throughput(make(2), texts, args.repeats)
    finally:
        torch.set_num_threads(previous)
    return {
        "model": name,
        "runtime": runtime,
        "latency_ms": latency,
        "throughput_texts_per_s": texts_per_second,
    }


def predictor_maker(bundle_dir: Path) -> Callable[[int], Classify]:
    def make(threads: int) -> Classify:
        return Predictor(bundle_dir, batch_size=BATCH_SIZE, threads=threads).predict_proba

    return make


def teacher_results(run_dir: Path, work_dir: Path, test: tuple[list[str], list[int]], args):
    """The teacher's bytes and accuracy, and its onnxruntime bundle checked against torch."""
    teacher_dir = run_dir / "teacher" / "model"
    metrics = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    stage = json.loads((run_dir / "teacher" / "stage.json").read_text())
    max_length = int(stage["settings"].get("max_length", 128))
    labels = json.loads((run_dir / "data" / "labels.json").read_text())["names"]
    bundle = export_teacher_bundle(
        teacher_dir, work_dir / "teacher", labels=labels, max_length=max_length
    )
    texts, gold = test
    onnx_logits = Predictor(work_dir / "teacher", batch_size=BATCH_SIZE, threads=2).logits(texts)
    torch_probabilities = torch_teacher(teacher_dir, max_length)(texts)
    return {
        "safetensors_bytes": sum(p.stat().st_size for p in teacher_dir.glob("*.safetensors")),
        "bundle_bytes": bundle["bundle_bytes"],
        "test_accuracy": metrics["test_accuracy"],
        "onnx_test_accuracy": float((onnx_logits.argmax(-1) == np.asarray(gold)).mean()),
        "onnx_max_abs_probability_difference": float(
            np.abs(softmax(onnx_logits) - torch_probabilities).max()
        ),
        "max_length": max_length,
    }


def bundle_results(
    student_dir: Path, work_dir: Path, test: tuple[list[str], list[int]], transfer, args
) -> list[dict[str, Any]]:
    metrics = json.loads((student_dir / "metrics.json").read_text())
    rows = []
    for name in args.settings:
        setting = SETTINGS[name]
        summary = export_bundle(
            student_dir,
            work_dir / name.replace("+", "-"),
            prune_vocab_texts=transfer if setting["prune"] else None,
            quantize=setting["quantize"],
            metrics=metrics,
            evaluation=test,
            latency_texts=test[0][: args.latency_texts],
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
    teacher_bytes = results["teacher"]["safetensors_bytes"]
    latency = {row["model"]: row["latency_ms"]["p50"] for row in results["speed"]}
    for row in results["bundles"]:
        row["fraction_of_teacher_bytes"] = row["bundle_bytes"] / teacher_bytes
        delta = row["delta_points"]
        row["meets_size_target"] = row["fraction_of_teacher_bytes"] <= SIZE_TARGET
        row["meets_accuracy_target"] = delta is not None and delta >= ACCURACY_TARGET_POINTS
        row["meets_latency_target"] = latency[f"student ({row['setting']})"] < LATENCY_TARGET_MS


def markdown(results: dict[str, Any]) -> str:
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
            f"{delta} | {_mark(row['meets_size_target'])} | "
            f"{_mark(row['meets_accuracy_target'])} | {_mark(row['meets_latency_target'])} |"
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


def _mark(value: bool) -> str:
    return "yes" if value else "no"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="A finished run directory.")
    parser.add_argument("--variant", required=True, help="The student variant.")
    parser.add_argument("--seed", type=int, help="Its seed (default: the lowest trained).")
    parser.add_argument("--json", type=Path, help="Results file (default: RUN/bundles.json).")
    parser.add_argument(
        "--work-dir", type=Path, help="Where the bundles go (default: RUN/bundles)."
    )
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), metavar="SETTING"
    )
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    parser.add_argument("--repeats", type=int, default=3, help="Throughput passes (best kept).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    run_dir = args.run_dir
    work_dir = args.work_dir or run_dir / "bundles"
    student_dir = resolve_student_dir(run_dir, args.variant, args.seed)
    student_metrics = json.loads((student_dir / "metrics.json").read_text())
    test_split = Task.load(run_dir / "data").splits["test"]
    test = (list(test_split["text"]), list(test_split["label"]))
    transfer = (
        run_transfer_texts(run_dir, student_metrics)
        if any(SETTINGS[name]["prune"] for name in args.settings)
        else None
    )
    results: dict[str, Any] = {
        "run": {"run_dir": str(run_dir), "variant": args.variant, "seed": student_metrics["seed"]},
        "command": " ".join(
            ["python benchmarks/bundle.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "teacher": teacher_results(run_dir, work_dir, test, args),
        "bundles": bundle_results(student_dir, work_dir, test, transfer, args),
    }
    texts = test[0]
    results["speed"] = [
        speed(
            f"student ({row['setting']})",
            "onnxruntime",
            predictor_maker(Path(row["bundle_dir"])),
            texts,
            args,
        )
        for row in results["bundles"]
    ]
    teacher_dir = run_dir / "teacher" / "model"
    max_length = results["teacher"]["max_length"]
    results["speed"].append(
        speed("teacher", "onnxruntime", predictor_maker(work_dir / "teacher"), texts, args)
    )
    results["speed"].append(
        speed("teacher", "torch", lambda _: torch_teacher(teacher_dir, max_length), texts, args)
    )
    check_targets(results)
    results["machine"] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    json_path = args.json or run_dir / "bundles.json"
    write_json_atomic(json_path, results)
    json_path.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
