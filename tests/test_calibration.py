"""Calibration metrics and temperature scaling on synthetic logits with known answers."""

import math

import numpy as np
import pytest

from distilrnn import runtime
from distilrnn.calibration import (
    calibrate,
    confidence_histogram,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_diagram,
    softmax,
)


def _two_class_logits(confidence: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(n, 2) logits whose softmax predicts `predicted` with max probability `confidence`."""
    margin = np.log(confidence / (1.0 - confidence))
    logits = np.zeros((confidence.size, 2))
    logits[np.arange(confidence.size), predicted] = margin
    return logits


def _calibrated_data() -> tuple[np.ndarray, np.ndarray]:
    """Within each confidence level c, exactly a fraction c of the examples are right."""
    confidence, labels = [], []
    for level in (0.55, 0.65, 0.75, 0.85, 0.95):
        right = round(level * 20)
        confidence += [level] * 20
        labels += [1] * right + [0] * (20 - right)  # the model always predicts class 1
    confidence = np.array(confidence)
    logits = _two_class_logits(confidence, np.ones(confidence.size, dtype=int))
    return logits.astype(np.float64), np.array(labels)


def _sampled_data(temperature: float, n: int = 20000, seed: int = 0):
    """Logits z (n, 4) and labels drawn from softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, 4))
    cumulative = softmax(logits, temperature).cumsum(axis=1)
    labels = (rng.random((n, 1)) > cumulative).sum(axis=1).clip(max=3)
    return logits.astype(np.float32), labels


def test_softmax_rows_sum_to_one_and_survive_huge_logits():
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=np.float32))
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0, 0] == pytest.approx(1.0)


def test_softmax_higher_temperature_is_flatter():
    logits = np.random.default_rng(0).normal(size=(50, 5))

    def entropy(temperature):
        p = softmax(logits, temperature)
        return float(-(p * np.log(p)).sum(axis=1).mean())

    assert entropy(0.5) < entropy(1.0) < entropy(2.0) < entropy(10.0) < math.log(5)


def test_ece_is_zero_when_accuracy_equals_confidence_in_every_bin():
    logits, labels = _calibrated_data()
    assert expected_calibration_error(logits, labels, bins=10) < 1e-6


def test_ece_of_overconfident_model_is_the_gap():
    confidence = np.full(1000, 0.99)
    logits = _two_class_logits(confidence, np.zeros(1000, dtype=int))
    labels = np.r_[np.zeros(700, dtype=int), np.ones(300, dtype=int)]  # 70% right
    assert expected_calibration_error(logits, labels) == pytest.approx(0.29, abs=1e-6)


def test_reliability_diagram_counts_sum_to_n_and_bins_match_data():
    logits, labels = _calibrated_data()
    diagram = reliability_diagram(logits, labels, bins=10)
    assert sum(diagram["counts"]) == labels.size
    assert len(diagram["edges"]) == 11 and diagram["edges"][0] == 0.0
    assert diagram["counts"][5] == 20  # confidence 0.55 lies in (0.5, 0.6]
    assert diagram["confidence"][5] == pytest.approx(0.55)
    assert diagram["accuracy"][5] == pytest.approx(0.55)
    assert diagram["accuracy"][0] is None and diagram["confidence"][0] is None


def test_confidence_histogram_spans_half_to_one_for_two_classes():
    logits = np.random.default_rng(1).normal(scale=2.0, size=(300, 2)).astype(np.float32)
    histogram = confidence_histogram(logits, bins=20)
    assert histogram["edges"][0] == pytest.approx(0.5)
    assert histogram["edges"][-1] == pytest.approx(1.0)
    assert len(histogram["edges"]) == 21
    assert sum(histogram["counts"]) == 300


def test_negative_log_likelihood_of_uniform_prediction_is_log_num_labels():
    logits = np.zeros((10, 3), dtype=np.float32)
    labels = np.arange(10) % 3
    assert negative_log_likelihood(logits, labels) == pytest.approx(math.log(3))


def test_fit_temperature_recovers_the_sampling_temperature():
    logits, labels = _sampled_data(temperature=2.5)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, abs=0.15)


def test_temperature_scaling_does_not_raise_nll():
    logits, labels = _sampled_data(temperature=2.5, n=5000, seed=1)
    temperature = fit_temperature(logits, labels)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(
        logits, labels, 1.0
    )


def test_temperature_scaling_lowers_ece_of_overconfident_logits():
    logits, labels = _sampled_data(temperature=2.5, n=5000, seed=2)
    temperature = fit_temperature(logits, labels)
    assert expected_calibration_error(logits, labels, temperature=temperature) < 0.5 * (
        expected_calibration_error(logits, labels)
    )


def test_fit_temperature_of_calibrated_logits_is_near_one():
    logits, labels = _sampled_data(temperature=1.0, seed=3)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.06)


def test_softmax_is_the_runtime_softmax_of_the_scaled_logits():
    logits = np.random.default_rng(4).normal(size=(20, 3)).astype(np.float32)
    np.testing.assert_array_equal(softmax(logits, 2.0), runtime.softmax(logits / 2.0))


def test_calibrate_records_the_fitted_temperature_and_its_scores():
    logits, labels = _sampled_data(temperature=2.5, n=5000, seed=4)
    record = calibrate(logits, labels)
    assert set(record) == {
        "temperature",
        "validation_nll",
        "validation_nll_scaled",
        "validation_ece",
        "validation_ece_scaled",
    }
    assert record["temperature"] == fit_temperature(logits, labels)
    assert record["validation_nll_scaled"] < record["validation_nll"]
    assert record["validation_ece_scaled"] == pytest.approx(
        expected_calibration_error(logits, labels, temperature=record["temperature"])
    )
