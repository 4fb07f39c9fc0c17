"""Accuracy statistics over seeds, and whether two variants differ beyond the noise.

Two questions come up when comparing students:

- How much does a variant's accuracy move between seeds? `summarize` gives the mean, the sample
  standard deviation and a Student-t confidence interval of the mean over seeds.
- Is variant A better than variant B on this test set, or is the gap within what resampling the
  test examples would produce? `paired_bootstrap` answers it with the paired bootstrap over test
  examples (Koehn 2004; Berg-Kirkpatrick et al. 2012), `paired_bootstrap_metric` for any metric
  of `distilrnn.metrics` (F1, Pearson, Spearman), and `resolvable_difference` gives a rough idea
  of the smallest accuracy gap a test set of a given size can resolve at all.

Numpy and the standard library only: the Student-t and normal quantiles are computed here
(regularized incomplete beta function by continued fraction, inverted by bisection).
Accuracies are fractions in [0, 1] throughout, not percentage points.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from distilrnn import metrics

logger = logging.getLogger(__name__)

# Bound the bootstrap's index matrix (resamples x examples) to about this many entries per chunk.
_BOOTSTRAP_CHUNK_ENTRIES = 4_000_000


@dataclass
class Summary:
    """Mean, sample standard deviation and confidence interval of the mean of `n` values."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_probability(probability: float, name: str) -> None:
    if not 0.0 < probability < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {probability}")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz; Numerical Recipes)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of a Beta(a, b) variable at x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def normal_cdf(z: float) -> float:
    """P(Z <= z) for the standard normal distribution."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _invert_increasing(cdf: Callable[[float], float], probability: float) -> float:
    """The x with cdf(x) == probability, for a symmetric increasing CDF, by bisection."""
    if probability < 0.5:
        return -_invert_increasing(cdf, 1.0 - probability)
    low, high = 0.0, 1.0
    while cdf(high) < probability:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if cdf(middle) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def normal_quantile(probability: float) -> float:
    """z with P(Z <= z) = probability for the standard normal (e.g. 0.975 -> 1.95996)."""
    _check_probability(probability, "probability")
    return _invert_increasing(normal_cdf, probability)


def student_t_quantile(probability: float, df: float) -> float:
    """t with P(T <= t) = probability for Student's t with `df` degrees of freedom.

    E.g. probability 0.975 (a two-sided 95% interval): df 1 -> 12.706, df 4 -> 2.776,
    df 29 -> 2.045, df -> infinity -> 1.960.
    """
    _check_probability(probability, "probability")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if df > 1e7:  # the t distribution is the normal to well below float noise here
        return normal_quantile(probability)
    return _invert_increasing(lambda t: student_t_cdf(t, df), probability)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std (ddof=1) and Student-t confidence interval of the mean.

    values: one number per seed (e.g. test accuracies, fractions in [0, 1]), n >= 1.
    The interval is mean ± t_{(1+confidence)/2, n-1} · std / sqrt(n); with one value the std is 0
    and the interval collapses to (mean, mean) since nothing is known about the spread.
    """
    _check_probability(confidence, "confidence")
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    n = int(array.size)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    mean = float(array.mean())
    if n == 1:
        return Summary(mean=mean, std=0.0, ci_low=mean, ci_high=mean, n=1)
    std = float(array.std(ddof=1))
    half_width = student_t_quantile((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n)
    return Summary(mean=mean, std=std, ci_low=mean - half_width, ci_high=mean + half_width, n=n)


def _per_example_correct(correct: np.ndarray, name: str) -> np.ndarray:
    """(n_examples,) float64 fraction correct; (n_seeds, n_examples) is averaged over seeds."""
    array = np.asarray(correct, dtype=np.float64)
    if array.ndim == 2:
        array = array.mean(axis=0)
    elif array.ndim != 1:
        raise ValueError(f"{name} must have shape (n_examples,) or (n_seeds, n_examples)")
    return array


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, samples: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap test of the accuracy difference between systems A and B.

    Koehn (2004), "Statistical Significance Tests for Machine Translation Evaluation";
    Berg-Kirkpatrick et al. (2012), "An Empirical Investigation of Statistical Significance in NLP".
    The test examples are resampled with replacement, the same indices for both systems (paired),
    so the interval reflects test-set sampling noise, not seed noise.

    correct_a, correct_b: bool arrays (n_examples,), whether each system got each test example
        right; or (n_seeds, n_examples), in which case each example's correctness is first averaged
        over the seeds. Both must refer to the same test examples in the same order.
    samples: number of bootstrap resamples; seed: seeds `np.random.default_rng`.

    Returns {"difference": acc_a - acc_b (fraction, not points), "ci_low", "ci_high": 95%
    percentile interval of the resampled difference, "p_value": two-sided, twice the fraction of
    resampled differences on the other side of 0 (capped at 1), "significant": whether the interval
    excludes 0, "samples": samples}.
    """
    a = _per_example_correct(correct_a, "correct_a")
    b = _per_example_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b cover different examples: {a.shape} vs {b.shape}"
        )
    n = int(a.size)
    per_example = a - b  # (n_examples,) difference in correctness, in [-1, 1]
    differences = _resample(n, samples, seed, lambda indices: per_example[indices].mean(axis=1))
    return _bootstrap_result(float(per_example.mean()), differences, samples)


def _resample(
    n: int, samples: int, seed: int, statistic: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`statistic` of `samples` resamples of n examples: indices `(chunk, n)` -> `(chunk,)`."""
    if n == 0:
        raise ValueError("the paired bootstrap needs at least one example")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ENTRIES // n)
    differences = np.empty(samples, dtype=np.float64)  # (samples,) resampled a - b
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        differences[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    return differences


def _bootstrap_result(difference: float, differences: np.ndarray, samples: int) -> dict[str, Any]:
    """The observed difference, the resampled differences' 95 % interval and p-value."""
    ci_low, ci_high = (float(q) for q in np.quantile(differences, [0.025, 0.975]))
    other_side = np.mean(differences <= 0.0) if difference >= 0 else np.mean(differences >= 0.0)
    return {
        "difference": difference,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": float(min(1.0, 2.0 * other_side)),
        "significant": bool(ci_low > 0.0 or ci_high < 0.0),
        "samples": int(samples),
    }


def _combine_seeds(name: str, predicted: np.ndarray) -> np.ndarray:
    """(n_examples,) predictions from (n_examples,) or (n_seeds, n_examples) ones: the mean
    score over seeds for a regression metric, the majority label otherwise (ties to the lower
    label id, e.g. the negative class of f1)."""
    array = np.asarray(predicted)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"{name}: predictions must be (n_examples,) or (n_seeds, n_examples)")
    if metrics.METRIC_TASKS[name] == metrics.REGRESSION:
        return array.astype(np.float64).mean(axis=0)
    ids = array.astype(np.int64)
    votes = np.stack([(ids == label).sum(axis=0) for label in range(int(ids.max()) + 1)])
    return votes.argmax(axis=0)  # (n_examples,) argmax takes the lowest id on a tie


def paired_bootstrap_metric(
    name: str,
    predicted_a: np.ndarray,
    predicted_b: np.ndarray,
    labels: np.ndarray,
    samples: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap test of the difference in metric `name` between systems A and B.

    As `paired_bootstrap`, for any metric of `distilrnn.metrics`: the test examples (pairs of
    texts, for a pair task) are resampled with replacement, the same indices for both systems,
    and the metric is recomputed on each resample (`metrics.resampled`).

    predicted_a, predicted_b: predicted label ids or scores (`metrics.predictions`), (n_examples,)
        or (n_seeds, n_examples). With several seeds, `accuracy` averages each example's
        correctness over the seeds (exactly `paired_bootstrap`); a regression metric (pearson,
        spearman) scores each example's mean predicted score; any other classification metric
        (f1) scores the seeds' majority vote per example, ties going to the lower label id.
    labels: (n_examples,) gold label ids or scores.

    Returns `paired_bootstrap`'s keys, the difference being metric_a - metric_b (fractions or
    correlations, not points), plus "metric": name.
    """
    if name not in metrics.METRICS:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(metrics.METRICS)})")
    labels = np.asarray(labels)
    if name == "accuracy":
        correct_a = np.asarray(predicted_a) == labels
        result = paired_bootstrap(correct_a, np.asarray(predicted_b) == labels, samples, seed)
        return {**result, "metric": name}
    a, b = _combine_seeds(name, predicted_a), _combine_seeds(name, predicted_b)
    if not a.shape == b.shape == labels.shape:
        raise ValueError(
            f"predicted_a, predicted_b and labels cover different examples: "
            f"{a.shape}, {b.shape}, {labels.shape}"
        )
    metric = metrics.METRICS[name]
    differences = _resample(
        int(a.size),
        samples,
        seed,
        lambda indices: (
            metrics.resampled(name, a, labels, indices)
            - metrics.resampled(name, b, labels, indices)
        ),
    )
    difference = metric(a, labels) - metric(b, labels)
    return {**_bootstrap_result(float(difference), differences, samples), "metric": name}


def standard_error(n_examples: int, accuracy: float) -> float:
    """Standard error sqrt(p (1 - p) / n) of an accuracy p measured on n examples (fraction)."""
    if n_examples < 1:
        raise ValueError(f"n_examples must be positive, got {n_examples}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must lie in [0, 1], got {accuracy}")
    return math.sqrt(accuracy * (1.0 - accuracy) / n_examples)


def resolvable_difference(n_examples: int, accuracy: float, confidence: float = 0.95) -> float:
    """Roughly the smallest accuracy gap (fraction) a test set of n examples can resolve.

    z_{(1+confidence)/2} · sqrt(2 p (1 - p) / n): the half-width of a normal-approximation
    interval for the difference of two *independent* proportions near accuracy p. A rough guide
    only: paired comparisons on the same examples are usually sharper (the systems' errors are
    correlated), and the normal approximation is poor for small n or p near 0 or 1.
    E.g. n = 436, p = 0.87 -> 1.96 · sqrt(2 · 0.87 · 0.13 / 436) ≈ 0.0446 (4.5 points).
    """
    _check_probability(confidence, "confidence")
    z = normal_quantile((1.0 + confidence) / 2.0)
    return z * math.sqrt(2.0) * standard_error(n_examples, accuracy)
