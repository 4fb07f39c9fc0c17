"""How confident is the teacher? Confidence on the training texts, calibration on validation.

Reads a finished run: the teacher's logits of the training texts (the first rows of the labelled
transfer set, `TRANSFER_SET_RULE`) and the teacher itself, which it runs over the validation
half: the share of over-confident training predictions, expected calibration error (Guo et al.
2017) and the temperature that minimises validation NLL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distilrnn import calibration
from distilrnn.errors import RunFolderError
from distilrnn.labeling import predict_logits
from distilrnn.run import Run
from distilrnn.teacher import load_teacher

EVAL_BATCH_SIZE = 256


def teacher_confidence(run: Run, max_length: int = 128) -> dict[str, Any]:
    """Confidence of the teacher on the run's training texts (accuracy, mean confidence, share
    above 0.99 / 0.999, a 10-bin histogram) and its calibration on validation (ECE, NLL, fitted
    temperature, and both after scaling), as a JSON-ready dict."""
    task = run.task()
    train_labels = np.asarray(task.splits["train"]["label"])
    train_logits = run.training_logits()
    if train_logits is None:
        raise RunFolderError(f"no finished label stage in {run.labels_dir}: run `distilrnn label`")
    model, tokenizer = load_teacher(str(run.teacher_model_dir))
    validation = task.splits["validation"]
    val_logits = predict_logits(
        model, tokenizer, list(validation["text"]), EVAL_BATCH_SIZE, max_length
    )
    val_labels = np.asarray(validation["label"])

    train_confidence = calibration.softmax(train_logits).max(-1)
    temperature = calibration.fit_temperature(val_logits, val_labels)
    return {
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


def confidence_text(results: dict[str, Any]) -> str:
    """`teacher_confidence` results as aligned text: one line per number, then the histogram."""
    lines = [
        f"{key:<28}{value:.4f}" if isinstance(value, float) else f"{key:<28}{value}"
        for key, value in results.items()
        if not isinstance(value, dict)
    ]
    histogram = results["train_confidence_histogram"]
    for low, high, count in zip(
        histogram["edges"][:-1], histogram["edges"][1:], histogram["counts"], strict=True
    ):
        lines.append(f"confidence {low:.2f}-{high:.2f}: {count}")
    return "\n".join(lines) + "\n"
