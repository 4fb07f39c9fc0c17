"""How confident is the teacher? Confidence on the training texts, calibration on validation.

Reads a finished run directory: the teacher's logits of the training texts (label stage) and the
teacher itself, which it runs over the validation half. Prints the share of over-confident
training predictions, expected calibration error (Guo et al. 2017) and the temperature that
minimises validation NLL, and writes everything as JSON.

    python benchmarks/teacher_confidence.py runs/sst2 --json docs/benchmarks/teacher_confidence.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from distilrnn import calibration
from distilrnn.data import Task
from distilrnn.labeling import load_labelled, predict_logits
from distilrnn.teacher import load_teacher


def training_logits(run_dir: Path, num_train: int) -> np.ndarray:
    """Teacher logits of the training texts: the first rows of the labelled (transfer) set."""
    (logits_dir,) = sorted((run_dir / "labels").glob("logits-*"))
    labelled = load_labelled(logits_dir).select(range(num_train))
    return np.asarray(labelled.with_format("numpy")["teacher_logits"], dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    task = Task.load(args.run_dir / "data")
    train_labels = np.asarray(task.splits["train"]["label"])
    train_logits = training_logits(args.run_dir, len(train_labels))
    model, tokenizer = load_teacher(str(args.run_dir / "teacher" / "model"))
    validation = task.splits["validation"]
    val_logits = predict_logits(model, tokenizer, list(validation["text"]), 256, args.max_length)
    val_labels = np.asarray(validation["label"])

    train_confidence = calibration.softmax(train_logits).max(-1)
    temperature = calibration.fit_temperature(val_logits, val_labels)
    results = {
        "train_texts": len(train_labels),
        "train_accuracy": float((train_logits.argmax(-1) == train_labels).mean()),
        "train_confidence_mean": float(train_confidence.mean()),
        "train_share_above_0.99": float((train_confidence > 0.99).mean()),
        "train_share_above_0.999": float((train_confidence > 0.999).mean()),
        "train_confidence_histogram": calibration.confidence_histogram(train_logits, bins=10),
        "validation_ece": calibration.expected_calibration_error(val_logits, val_labels),
        "validation_nll": calibration.negative_log_likelihood(val_logits, val_labels),
        "fitted_temperature": temperature,
        "validation_ece_scaled": calibration.expected_calibration_error(
            val_logits, val_labels, temperature=temperature
        ),
        "validation_nll_scaled": calibration.negative_log_likelihood(
            val_logits, val_labels, temperature=temperature
        ),
    }
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key:<28}{value:.4f}" if isinstance(value, float) else f"{key:<28}{value}")
    histogram = results["train_confidence_histogram"]
    for low, high, count in zip(
        histogram["edges"][:-1], histogram["edges"][1:], histogram["counts"], strict=True
    ):
        print(f"confidence {low:.2f}-{high:.2f}: {count}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
