"""The teacher's confidence: calibration metrics and temperature scaling (Guo et al. 2017).

Guo et al. (2017), "On Calibration of Modern Neural Networks": a classifier is calibrated when,
among the examples it predicts with confidence c (its max softmax probability), a fraction c is
right. Fine-tuned transformers tend to be over-confident; since distillation transfers the
teacher's softmax (Hinton et al. 2015), it is worth knowing how much to trust it, and which
temperature would make it honest on held-out data.

Inputs are numpy arrays: logits (n, num_labels) (float32 as stored by the labeling stage; computed
here in float64) and integer labels (n,). Confidences and accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from distilrnn import runtime

logger = logging.getLogger(__name__)

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618..., golden-section step ratio


def _as_logits(logits: np.ndarray) -> np.ndarray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, num_labels >= 2), got {array.shape}")
    return array


def _as_labels(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1]}), got {array.min()}..{array.max()}"
        )
    return array.astype(np.int64)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def _log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(n, num_labels) float64 log-softmax of logits / temperature, max-shifted for stability."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities softmax(logits / temperature), shape (n, num_labels), float64.

    The one softmax (`distilrnn.runtime.softmax`) of the scaled logits. Higher temperature ->
    flatter.
    """
    _check_temperature(temperature)
    return runtime.softmax(_as_logits(logits) / temperature)


def _confidence_and_correct(
    logits: np.ndarray, labels: np.ndarray, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) max-softmax confidence and (n,) whether the argmax prediction equals the label."""
    probabilities = softmax(logits, temperature)
    labels = _as_labels(labels, probabilities)
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == labels


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n,) bin of each value for bins (edges[i], edges[i + 1]] as in Guo et al.; the first bin
    also takes edges[0], and values a float's width outside the range go to the end bins."""
    return np.clip(np.searchsorted(edges, values, side="left") - 1, 0, len(edges) - 2)


def _binned(
    confidence: np.ndarray, correct: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (bins,): example counts, summed confidence, summed correctness."""
    index = _bin_index(confidence, edges)
    bins = len(edges) - 1
    counts = np.bincount(index, minlength=bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    correct_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    return counts, confidence_sum, correct_sum


def _check_bins(bins: int) -> None:
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")


def confidence_histogram(
    logits: np.ndarray, bins: int = 20, temperature: float = 1.0
) -> dict[str, list[Any]]:
    """Histogram of the max-softmax confidence, {"edges": (bins + 1,), "counts": (bins,)}.

    The confidence of a num_labels-way classifier lies in [1 / num_labels, 1] (in [0.5, 1] for two
    classes), so the equal-width edges span that range rather than [0, 1].
    """
    _check_bins(bins)
    logits = _as_logits(logits)
    confidence = softmax(logits, temperature).max(axis=1)
    edges = np.linspace(1.0 / logits.shape[1], 1.0, bins + 1)
    counts = np.bincount(_bin_index(confidence, edges), minlength=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}


def reliability_diagram(
    logits: np.ndarray, labels: np.ndarray, bins: int = 15, temperature: float = 1.0
) -> dict[str, list[Any]]:
    """Per equal-width confidence bin over [0, 1] (Guo et al. 2017, Fig. 1).

    Returns {"edges": (bins + 1,), "counts": (bins,), "confidence": (bins,) mean confidence,
    "accuracy": (bins,) fraction correct}; mean confidence and accuracy are None for empty bins
    (JSON-friendly). A calibrated model has accuracy == confidence in every bin.
    """
    _check_bins(bins)
    confidence, correct = _confidence_and_correct(logits, labels, temperature)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, confidence_sum, correct_sum = _binned(confidence, correct, edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "confidence": [
            float(s / c) if c else None for s, c in zip(confidence_sum, counts, strict=True)
        ],
        "accuracy": [float(s / c) if c else None for s, c in zip(correct_sum, counts, strict=True)],
    }


def expected_calibration_error(
    logits: np.ndarray, labels: np.ndarray, bins: int = 15, temperature: float = 1.0
) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width bins on [0, 1].

    Guo et al. (2017), Eq. 3; a fraction in [0, 1] (0 = calibrated), not percentage points.
    """
    _check_bins(bins)
    confidence, correct = _confidence_and_correct(logits, labels, temperature)
    if confidence.size == 0:
        raise ValueError("expected_calibration_error needs at least one example")
    edges = np.linspace(0.0, 1.0, bins + 1)
    _, confidence_sum, correct_sum = _binned(confidence, correct, edges)
    # sum_b (n_b / n) |acc_b - conf_b| = sum_b |correct_sum_b - confidence_sum_b| / n
    return float(np.abs(correct_sum - confidence_sum).sum() / confidence.size)


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0
) -> float:
    """Mean negative log-likelihood (nats per example) of the labels under softmax(logits / T)."""
    _check_temperature(temperature)
    logits = _as_logits(logits)
    labels = _as_labels(labels, logits)
    if labels.size == 0:
        raise ValueError("negative_log_likelihood needs at least one example")
    log_probabilities = _log_softmax(logits, temperature)
    return float(-log_probabilities[np.arange(labels.size), labels].mean())


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    bounds: tuple[float, float] = (0.05, 20.0),
    tolerance: float = 1e-6,
) -> float:
    """Temperature T minimising the mean NLL of softmax(logits / T) on held-out data.

    Temperature scaling (Guo et al. 2017, §4.2): one scalar, fitted on validation logits, which
    leaves the argmax (and so accuracy) unchanged. The NLL is convex in the inverse temperature
    1/T (log-sum-exp of a linear function minus a linear function), hence unimodal in log T, so a
    golden-section search on log T over `bounds` finds the global minimum within the bounds.
    tolerance: width of the final bracket in log T. Returns T rounded to 4 decimals.
    """
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    logits = _as_logits(logits)
    labels = _as_labels(labels, logits)

    def nll(log_temperature: float) -> float:
        return negative_log_likelihood(logits, labels, math.exp(log_temperature))

    a, b = math.log(low), math.log(high)
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    f_c, f_d = nll(c), nll(d)
    while b - a > tolerance:
        if f_c <= f_d:  # the minimum lies in [a, d]
            b, d, f_d = d, c, f_c
            c = b - _GOLDEN * (b - a)
            f_c = nll(c)
        else:  # the minimum lies in [c, b]
            a, c, f_c = c, d, f_d
            d = a + _GOLDEN * (b - a)
            f_d = nll(d)
    temperature = math.exp((a + b) / 2.0)
    if min(temperature / low, high / temperature) < 1.0 + 1e-3:
        logger.warning(
            "fitted temperature %.4g is at the search bound %s; the NLL keeps falling beyond it "
            "(e.g. separable validation logits)",
            temperature,
            bounds,
        )
    return round(temperature, 4)


def calibrate(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The fitted temperature of validation logits (n, num_labels) with labels (n,), and the
    NLL (nats per example) and ECE (a fraction) before and after scaling by it.

    Returns {"temperature", "validation_nll", "validation_nll_scaled", "validation_ece",
    "validation_ece_scaled"}: what the calibration stage records and the report reads.
    """
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": temperature,
        "validation_nll": negative_log_likelihood(logits, labels),
        "validation_nll_scaled": negative_log_likelihood(logits, labels, temperature),
        "validation_ece": expected_calibration_error(logits, labels),
        "validation_ece_scaled": expected_calibration_error(
            logits, labels, temperature=temperature
        ),
    }
