"""Seed statistics and significance tests at known values."""

import math

import numpy as np
import pytest

from distilrnn.stats import (
    normal_quantile,
    paired_bootstrap,
    resolvable_difference,
    standard_error,
    student_t_quantile,
    summarize,
)

# Two-sided 95% critical values t_{0.975, df} for df = 1..30 from a printed table.
T_TABLE_95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


@pytest.mark.parametrize(("df", "expected"), list(enumerate(T_TABLE_95, start=1)))
def test_student_t_quantile_matches_table_at_95_percent(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_student_t_quantile_at_other_levels():
    assert student_t_quantile(0.995, 1) == pytest.approx(63.657, abs=5e-3)
    assert student_t_quantile(0.9995, 2) == pytest.approx(31.599, abs=5e-3)


def test_student_t_quantile_is_antisymmetric_and_tends_to_normal():
    assert student_t_quantile(0.025, 7) == pytest.approx(-student_t_quantile(0.975, 7), abs=1e-9)
    assert student_t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)


def test_summarize_gives_known_mean_std_and_t_interval():
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5.0 / 3.0)
    half_width = 3.182446 * std / 2.0  # t_{0.975, 3} * std / sqrt(4)
    assert summary.n == 4
    assert summary.mean == pytest.approx(2.5)
    assert summary.std == pytest.approx(std)
    assert summary.ci_low == pytest.approx(2.5 - half_width, abs=1e-5)
    assert summary.ci_high == pytest.approx(2.5 + half_width, abs=1e-5)
    assert summary.to_dict()["ci_high"] == summary.ci_high


def test_summarize_of_one_value_has_zero_width_interval():
    summary = summarize([0.87])
    assert (summary.mean, summary.std, summary.ci_low, summary.ci_high, summary.n) == (
        0.87,
        0.0,
        0.87,
        0.87,
        1,
    )


def test_summarize_rejects_empty_input():
    with pytest.raises(ValueError):
        summarize([])


def _correct(n: int, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    correct = np.zeros(n, dtype=bool)
    correct[rng.choice(n, size=round(accuracy * n), replace=False)] = True
    return correct


def test_paired_bootstrap_of_identical_predictions_is_zero_and_not_significant():
    correct = _correct(500, 0.8, np.random.default_rng(1))
    result = paired_bootstrap(correct, correct.copy(), samples=2000)
    assert result["difference"] == 0.0
    assert result["ci_low"] == 0.0 and result["ci_high"] == 0.0
    assert result["p_value"] == 1.0
    assert result["significant"] is False
    assert result["samples"] == 2000


def test_paired_bootstrap_finds_clearly_better_system_significant():
    rng = np.random.default_rng(2)
    better, worse = _correct(500, 0.95, rng), _correct(500, 0.60, rng)
    result = paired_bootstrap(better, worse, samples=5000)
    assert result["difference"] == pytest.approx(0.35)
    assert result["significant"] is True
    assert 0.0 < result["ci_low"] < 0.35 < result["ci_high"]
    assert result["p_value"] < 0.001


def test_paired_bootstrap_sign_follows_argument_order():
    rng = np.random.default_rng(3)
    better, worse = _correct(500, 0.95, rng), _correct(500, 0.60, rng)
    result = paired_bootstrap(worse, better, samples=2000)
    assert result["difference"] == pytest.approx(-0.35)
    assert result["ci_high"] < 0.0 and result["significant"] is True


def test_paired_bootstrap_small_gap_is_not_significant():
    rng = np.random.default_rng(4)
    a = _correct(200, 0.80, rng)
    b = a.copy()
    b[np.flatnonzero(a)[:2]] = False  # B loses two examples A got right: a 1-point gap
    result = paired_bootstrap(a, b, samples=4000)
    assert result["difference"] == pytest.approx(0.01)
    assert result["significant"] is False
    assert result["p_value"] > 0.05


def test_paired_bootstrap_same_seed_gives_same_result_and_other_seed_differs():
    rng = np.random.default_rng(5)
    a, b = _correct(300, 0.85, rng), _correct(300, 0.80, rng)
    first = paired_bootstrap(a, b, samples=3000, seed=7)
    assert paired_bootstrap(a, b, samples=3000, seed=7) == first
    assert paired_bootstrap(a, b, samples=3000, seed=8)["ci_low"] != first["ci_low"]


def test_paired_bootstrap_averages_seeds_per_example():
    rng = np.random.default_rng(6)
    seeds_a = np.stack([_correct(400, 0.9, rng) for _ in range(3)])  # (n_seeds, n_examples)
    seeds_b = np.stack([_correct(400, 0.7, rng) for _ in range(3)])
    result = paired_bootstrap(seeds_a, seeds_b, samples=2000)
    assert result["difference"] == pytest.approx(seeds_a.mean() - seeds_b.mean())
    assert result["significant"] is True


def test_paired_bootstrap_rejects_different_example_counts():
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(10, dtype=bool), np.ones(11, dtype=bool))


def test_resolvable_difference_for_sst2_sized_test_set():
    # 1.96 * sqrt(2 * 0.87 * 0.13 / 436) = 0.04464
    assert resolvable_difference(436, 0.87) == pytest.approx(0.04464, abs=5e-5)
    assert standard_error(436, 0.87) == pytest.approx(math.sqrt(0.87 * 0.13 / 436))


def test_resolvable_difference_shrinks_with_more_examples():
    assert resolvable_difference(1744, 0.87) == pytest.approx(resolvable_difference(436, 0.87) / 2)
