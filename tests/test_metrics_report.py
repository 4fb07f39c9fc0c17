"""Metrics beyond accuracy in the results table, the report and the paired bootstrap: F1 for
pair classification (MRPC), Pearson and Spearman for regression (STS-B)."""

import numpy as np
import pytest
from rich.console import Console

from distilrnn import metrics, stats
from distilrnn.cli_tables import print_results, resolution_note
from distilrnn.evaluate import markdown_table, student_rows
from distilrnn.report import ReportData, analyse, gap_closed, render
from distilrnn.run import StudentRecord

RNG = np.random.default_rng(0)
SCORES = RNG.uniform(0, 5, size=200)  # gold similarity scores of 200 test pairs
BINARY = (np.arange(200) % 3 == 0).astype(int)  # gold labels, a third positive


def noisy(scores: np.ndarray, noise: float, seed: int) -> np.ndarray:
    return scores + np.random.default_rng(seed).normal(0, noise, size=scores.shape)


def test_pearson_bootstrap_of_identical_systems_is_zero_and_not_significant():
    predicted = noisy(SCORES, 1.0, 1)
    result = stats.paired_bootstrap_metric("pearson", predicted, predicted, SCORES, samples=300)
    assert result["difference"] == 0.0
    assert result["ci_low"] == result["ci_high"] == 0.0
    assert not result["significant"]
    assert result["metric"] == "pearson"


def test_pearson_bootstrap_finds_a_clearly_better_system_significant():
    good, bad = noisy(SCORES, 0.3, 1), noisy(SCORES, 3.0, 2)
    result = stats.paired_bootstrap_metric("pearson", good, bad, SCORES, samples=300)
    assert result["difference"] > 0.2
    assert result["significant"] and result["ci_low"] > 0


def test_spearman_bootstrap_finds_a_clearly_worse_system_significant():
    good, bad = noisy(SCORES, 0.3, 1), noisy(SCORES, 3.0, 2)
    result = stats.paired_bootstrap_metric("spearman", bad, good, SCORES, samples=200)
    assert result["significant"] and result["ci_high"] < 0


def test_regression_bootstrap_averages_the_seeds_scores_per_example():
    seeds = np.stack([noisy(SCORES, 2.0, s) for s in range(3)])  # (3, 200)
    averaged = stats.paired_bootstrap_metric("pearson", seeds, SCORES, SCORES, samples=50)
    mean = stats.paired_bootstrap_metric("pearson", seeds.mean(0), SCORES, SCORES, samples=50)
    assert averaged["difference"] == pytest.approx(mean["difference"])


def test_f1_bootstrap_scores_the_positive_class_difference():
    wrong_positives = BINARY.copy()
    wrong_positives[np.flatnonzero(BINARY)[:30]] = 0  # misses 30 of 67 positives
    result = stats.paired_bootstrap_metric("f1", BINARY, wrong_positives, BINARY, samples=300)
    positives, found = BINARY.sum(), BINARY.sum() - 30
    assert result["difference"] == pytest.approx(1.0 - 2 * found / (positives + found))
    assert result["significant"]


def test_f1_bootstrap_takes_the_seeds_majority_vote():
    flipped = 1 - BINARY
    seeds = np.stack([BINARY, BINARY, flipped])  # two seeds right, one always wrong
    result = stats.paired_bootstrap_metric("f1", seeds, BINARY, BINARY, samples=50)
    assert result["difference"] == 0.0


def test_accuracy_bootstrap_by_metric_matches_the_correctness_bootstrap():
    seeds = np.stack([np.where(RNG.random(200) < 0.8, BINARY, 1 - BINARY) for _ in range(2)])
    by_metric = stats.paired_bootstrap_metric("accuracy", seeds, BINARY, BINARY, samples=100)
    by_correct = stats.paired_bootstrap(seeds == BINARY, np.ones((1, 200), bool), samples=100)
    assert by_metric["difference"] == by_correct["difference"]
    assert by_metric["ci_low"] == by_correct["ci_low"]


def test_gap_closed_for_pearson_keeps_its_signs():
    assert gap_closed(0.80, 0.70, 0.90) == pytest.approx(0.5)
    assert gap_closed(0.60, 0.70, 0.90) == pytest.approx(-0.5)  # worse than its baseline
    assert gap_closed(-0.1, -0.3, 0.1) == pytest.approx(0.5)  # negative correlations


def test_gap_closed_is_none_when_the_teacher_equals_the_baseline_pearson():
    assert gap_closed(0.8, 0.85, 0.85) is None


def fabricated_student(tmp_path, variant, seed, metrics):
    """A finished student folder whose metrics.json holds `metrics`."""
    import json

    directory = tmp_path / variant / f"seed-{seed}"
    directory.mkdir(parents=True)
    record = {"variant": variant, "seed": seed, "objective": "kl", "settings": {"rnn": "lstm"}}
    record.update(parameters={"total": 1000, "trainable": 1000, "embedding": 500})
    record.update(train_seconds=1.0, **metrics)
    (directory / "metrics.json").write_text(json.dumps(record))
    return directory


def regression_rows(tmp_path, metrics=("pearson", "spearman")):
    teacher = {"name": "teacher", "objective": "fine-tuned", "seeds": 1, "metrics": list(metrics)}
    teacher.update(task_type="regression", size_bytes=4e8, train_seconds=60)
    teacher["parameters"] = {"total": 10**8, "trainable": 10**8, "embedding": 10**7}
    for index, name in enumerate(metrics):
        teacher.update({f"validation_{name}": 0.88 - index / 100, f"test_{name}": 0.87})
    records = []
    for seed, value in enumerate((0.80, 0.82)):
        scores = {f"{split}_{name}": value for split in ("validation", "test") for name in metrics}
        scores.update(metrics=list(metrics), task_type="regression")
        records.append(StudentRecord.read(fabricated_student(tmp_path, "kd", seed, scores)))
    return [teacher, *student_rows(records)]


def test_results_table_has_a_pearson_and_a_spearman_column_per_split(tmp_path):
    table = markdown_table(regression_rows(tmp_path))
    header = table.splitlines()[0]
    for column in ("validation Pearson", "validation Spearman", "test Pearson", "test Spearman"):
        assert f"| {column} |" in header
    assert "acc" not in header
    assert "| 2 | 0.810 ± 0.014 | 0.810 ± 0.014 |" in table


def test_results_table_has_accuracy_and_f1_columns(tmp_path):
    table = markdown_table(regression_rows(tmp_path, ("accuracy", "f1")))
    header = table.splitlines()[0]
    assert "| validation acc (%) | validation F1 (%) | test acc (%) | test F1 (%) |" in header
    assert "| 81.00 ± 1.41 |" in table


def test_old_records_without_a_metric_list_read_as_accuracy(tmp_path):
    old = {"validation_accuracy": 0.8, "test_accuracy": 0.79}
    (row,) = student_rows([StudentRecord.read(fabricated_student(tmp_path, "old", 0, old))])
    assert row["metrics"] == ["accuracy"] and row["test_accuracy"] == 0.79
    assert row["test_summary"]["mean"] == 0.79


def test_cli_results_table_shows_pearson_columns_and_no_accuracy_caption(tmp_path):
    results = {"run_dir": "run", "rows": regression_rows(tmp_path)}
    console = Console(record=True, width=250)
    print_results(console, results, test_examples=1500)
    text = console.export_text()
    assert "test Pearson" in text and "val Spearman" in text
    assert resolution_note(results, 1500) is None  # one-seed caption: an accuracy formula


def regression_data(n_seeds=2) -> ReportData:
    """A regression run: a teacher, a `ce` baseline and a distilled student on SCORES."""
    specs = [("teacher", "fine-tuned", 0.4, 1), ("base", "ce", 2.0, 2), ("kd", "mse", 1.0, 2)]
    rows, logits = [], {}
    for name, objective, noise, seeds in specs:
        by_split = {
            split: [noisy(SCORES, noise, 10 * s + i)[:, None] for s in range(seeds)]
            for i, split in enumerate(("validation", "test"))
        }
        entry = {"name": name, "objective": objective, "rnn": "lstm", "seeds": seeds}
        entry.update(size_bytes=1e6, train_seconds=1, metrics=["pearson", "spearman"])
        entry["task_type"] = "regression"
        for split, outputs in by_split.items():
            entry[f"{split}_summaries"] = {}
            for metric in ("pearson", "spearman"):
                values = [metrics.score(metric, o, SCORES, "regression") for o in outputs]
                summary = stats.summarize(values)
                entry[f"{split}_{metric}"] = summary.mean
                entry[f"{split}_summaries"][metric] = summary.to_dict()
            entry[f"{split}_summary"] = entry[f"{split}_summaries"]["pearson"]
        rows.append(entry)
        logits[name] = by_split
    return ReportData(rows, {"validation": SCORES, "test": SCORES}, logits)


def test_regression_report_compares_every_metric_with_the_baseline():
    analysis = analyse(regression_data(), samples=100)
    kd = analysis["variants"][1]
    assert set(kd["metrics"]) == {"pearson", "spearman"}
    assert kd["metrics"]["spearman"]["against_baseline"]["difference"] > 0
    assert kd["against_baseline"] == kd["metrics"]["pearson"]["against_baseline"]
    assert 0 < kd["metrics"]["pearson"]["gap_closed"] < 1
    assert analysis["best_distilled"] == "kd"


def test_regression_report_has_no_calibration_or_accuracy_resolution():
    data = regression_data()
    analysis = analyse(data, samples=50)
    assert data.calibration is None and analysis["teacher_confidence"] is None
    assert analysis["resolvable_difference"] is None
    text = render(analysis, data, {"learning_curves": "learning_curves.png"}, "t")
    assert "### Pearson (primary" in text and "### Spearman" in text
    assert "What the data can resolve" not in text and "reliability" not in text


def test_regression_plot_against_size_plots_the_primary_metric(tmp_path):
    from distilrnn.report.plots import plot_accuracy_against

    assert plot_accuracy_against(regression_data(), tmp_path / "size.png", "size")
    assert (tmp_path / "size.png").read_bytes()[:4] == b"\x89PNG"


def pair_classification_data() -> ReportData:
    """An MRPC-like run scored by accuracy then F1: a teacher, a baseline, a student."""
    specs = [("teacher", "fine-tuned", 0.05, 1), ("base", "ce", 0.3, 2), ("kd", "kl", 0.15, 2)]
    rows, logits = [], {}
    for name, objective, error_rate, seeds in specs:
        by_split = {}
        for i, split in enumerate(("validation", "test")):
            by_split[split] = []
            for s in range(seeds):
                wrong = np.random.default_rng(10 * s + i).random(200) < error_rate
                by_split[split].append(np.eye(2)[np.where(wrong, 1 - BINARY, BINARY)])
        entry = {"name": name, "objective": objective, "rnn": "lstm", "seeds": seeds}
        entry.update(size_bytes=1e6, train_seconds=1, metrics=["accuracy", "f1"])
        for split, outputs in by_split.items():
            entry[f"{split}_summaries"] = {}
            for metric in ("accuracy", "f1"):
                values = [metrics.score(metric, o, BINARY, "classification") for o in outputs]
                summary = stats.summarize(values)
                entry[f"{split}_{metric}"] = summary.mean
                entry[f"{split}_summaries"][metric] = summary.to_dict()
            entry[f"{split}_summary"] = entry[f"{split}_summaries"]["accuracy"]
        rows.append(entry)
        logits[name] = by_split
    return ReportData(rows, {"validation": BINARY, "test": BINARY}, logits)


def test_pair_classification_report_has_an_accuracy_and_an_f1_table():
    data = pair_classification_data()
    analysis = analyse(data, samples=100)
    kd = analysis["variants"][1]
    assert kd["metrics"]["f1"]["against_baseline"]["metric"] == "f1"
    assert analysis["resolvable_difference"] is not None  # accuracy is one of its metrics
    text = render(analysis, data, {"learning_curves": "l.png", "reliability": "r.png"}, "t")
    assert "### Accuracy (primary: it chooses the best student)" in text and "### F1" in text
    assert "What the data can resolve" in text and "reliability" in text


def test_spearman_ranks_ties_at_their_mean_rank():
    # the vectorised ranks the bootstrap relies on (scipy.stats.rankdata's "average")
    ranks = metrics._ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))
    assert ranks.tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
