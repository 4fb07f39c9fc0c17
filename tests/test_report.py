"""The report: statistics on synthetic predictions; report.md and its plots after a tiny run."""

import json
import re

import numpy as np
import pytest
from conftest import tiny_run_overrides

from distilrnn import calibration, stats
from distilrnn.config import load_config
from distilrnn.report import ReportData, analyse, baseline_of, correct, gap_closed, load_report_data
from distilrnn.report.plots import plot_reliability

LABELS = np.array([0, 1] * 20)  # 40 examples per split


def logits_with_accuracy(accuracy: float, seed: int) -> np.ndarray:
    """(40, 2) logits that get the first `accuracy` share of LABELS right, in shuffled order."""
    rng = np.random.default_rng(seed)
    right = rng.permutation(len(LABELS)) < round(accuracy * len(LABELS))
    predicted = np.where(right, LABELS, 1 - LABELS)
    return np.eye(2, dtype=np.float32)[predicted] * 3.0


def row(name, objective, rnn, val, test, seeds=3):
    """A results.json row and its per-seed logits, with the given mean accuracies."""
    logits = {
        "validation": [logits_with_accuracy(val, s) for s in range(seeds)],
        "test": [logits_with_accuracy(test, 100 + s) for s in range(seeds)],
    }
    summaries = {
        split: stats.summarize([float((lg.argmax(-1) == LABELS).mean()) for lg in logits[split]])
        for split in logits
    }
    entry = {
        "name": name,
        "objective": objective,
        "rnn": rnn,
        "seeds": seeds,
        "size_bytes": 1_000_000,
        "validation_accuracy": summaries["validation"].mean,
        "test_accuracy": summaries["test"].mean,
        "validation_summary": summaries["validation"].to_dict(),
        "test_summary": summaries["test"].to_dict(),
    }
    return entry, logits


def synthetic_data(*specs, record=None) -> ReportData:
    rows, logits = [], {}
    for spec in [("teacher", "fine-tuned", None, 0.95, 0.95, 1), *specs]:
        entry, entry_logits = row(*spec)
        rows.append(entry)
        logits[entry["name"]] = entry_logits
    labels = {"validation": LABELS, "test": LABELS}
    return ReportData(rows, labels, logits, calibration=record)


def test_gap_closed_is_zero_at_the_baseline_and_one_at_the_teacher():
    assert gap_closed(0.85, 0.85, 0.90) == pytest.approx(0.0)
    assert gap_closed(0.90, 0.85, 0.90) == pytest.approx(1.0)
    assert gap_closed(0.875, 0.85, 0.90) == pytest.approx(0.5)


def test_gap_closed_is_undefined_when_the_teacher_is_not_better():
    assert gap_closed(0.9, 0.9, 0.9) is None


def test_baseline_is_the_ce_variant_of_the_same_cell():
    rows = [{"name": "ce-gru", "objective": "ce", "rnn": "gru"}]
    rows.append({"name": "ce-lstm", "objective": "ce", "rnn": "lstm"})
    assert baseline_of({"name": "kd", "objective": "kl", "rnn": "lstm"}, rows)["name"] == "ce-lstm"


def test_correct_has_one_row_per_seed():
    table = correct([logits_with_accuracy(0.5, 0), logits_with_accuracy(1.0, 1)], LABELS)
    assert table.shape == (2, 40)
    assert table[1].all()
    assert table[0].mean() == pytest.approx(0.5)


def test_best_distilled_student_is_chosen_on_validation_not_test():
    data = synthetic_data(
        ("base", "ce", "lstm", 0.80, 0.80),
        ("good-on-validation", "kl", "lstm", 0.90, 0.825),
        ("good-on-test", "mse", "lstm", 0.825, 0.90),
    )
    analysis = analyse(data, samples=200)
    assert analysis["best_distilled"] == "good-on-validation"


def test_variants_are_compared_with_their_baseline_on_paired_test_examples():
    data = synthetic_data(("base", "ce", "lstm", 0.8, 0.8), ("kd", "kl", "lstm", 0.9, 0.9))
    (base, kd) = analyse(data, samples=200)["variants"]
    assert "against_baseline" not in base
    assert kd["baseline"] == "base"
    assert kd["against_baseline"]["difference"] == pytest.approx(0.1)
    assert kd["gap_closed"] == pytest.approx(
        (kd["test"]["mean"] - base["test"]["mean"]) / (0.95 - base["test"]["mean"])
    )


def test_report_uses_the_recorded_temperature_without_refitting(monkeypatch, tmp_path):
    def no_fit(*args, **kwargs):
        raise AssertionError("the report refitted the temperature")

    monkeypatch.setattr(calibration, "fit_temperature", no_fit)
    record = {
        "temperature": 1.7,
        "validation_nll": 0.5,
        "validation_nll_scaled": 0.4,
        "validation_ece": 0.1,
        "validation_ece_scaled": 0.05,
    }
    data = synthetic_data(("base", "ce", "lstm", 0.8, 0.8), record=record)
    confidence = analyse(data, samples=100)["teacher_confidence"]
    assert confidence["fitted_temperature"] == 1.7
    assert confidence["validation_ece_scaled"] == 0.05
    plot_reliability(data, tmp_path / "reliability.png", None)


def test_report_without_a_record_fits_the_temperature_once(monkeypatch, tmp_path):
    fits = []
    fit = calibration.fit_temperature
    monkeypatch.setattr(calibration, "fit_temperature", lambda *a: fits.append(1) or fit(*a))
    data = synthetic_data(("base", "ce", "lstm", 0.8, 0.8))
    analyse(data, samples=100)
    plot_reliability(data, tmp_path / "reliability.png", "base")
    assert len(fits) == 1


def test_report_data_without_results_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"results\.json"):
        load_report_data(tmp_path)


def test_run_writes_a_report_whose_plots_exist(task_dir, tiny_teacher_dir, tmp_path):
    from distilrnn.pipeline import Pipeline

    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides += [
        "student.seeds=[0, 1]",
        'variant=[{name="base", objective="ce"}, {name="soft", objective="kl", temperature=2.0}]',
    ]
    Pipeline(load_config(None, overrides)).run()
    run_dir = tmp_path / "run"
    text = (run_dir / "report.md").read_text()
    assert "| base | ce |" in text and "| soft | kl | 2 |" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"learning_curves.png", "reliability.png", "teacher_confidence.png"} <= set(images)
    for image in images:
        assert (run_dir / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis = json.loads((run_dir / "report.json").read_text())
    assert analysis["best_distilled"] == "soft"
    assert analysis["variants"][1]["seeds"] == 2
    assert set(analysis["variants"][1]["against_baseline"]) >= {"difference", "ci_low", "ci_high"}


def test_a_one_seed_interval_prints_as_not_available():
    from distilrnn.report.markdown import _interval

    one = {"mean": 0.8, "std": 0.0, "ci_low": 0.8, "ci_high": 0.8, "n": 1}
    assert _interval(one) == "n/a"
    three = {"mean": 0.8, "std": 0.01, "ci_low": 0.78, "ci_high": 0.82, "n": 3}
    assert _interval(three) != "n/a"
