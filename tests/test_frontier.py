"""The speed frontier on a tiny run (an RNN and a bag student, two seeds each): frontier.json's
schema, accuracy over seeds from the students' records, multiply-adds and GFLOP/s that follow
from `distilrnn.bench.flops` and the measured throughput, ratios against both teacher bundles,
the Pareto plot and the report's section. Timings are not asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences, tiny_run_overrides, write_tsv

from distilrnn.bench.flops import student_macs, teacher_macs
from distilrnn.bench.frontier import (
    FLOAT_TEACHER,
    REFERENCES,
    benchmark_frontier,
    pareto_optimal,
    seed_summary,
)
from distilrnn.bench.peers import REFERENCE
from distilrnn.errors import ConfigError
from distilrnn.run import Run

VARIANTS = ("rnn", "bag")


def load_script(name: str):
    """A script of benchmarks/ as a module."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frontier_run(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny finished run (an LSTM and a bag-of-embeddings student, seeds 0 and 1) with
    benchmarks/frontier.py run on it."""
    from distilrnn.config import load_config
    from distilrnn.pipeline import Pipeline

    root = tmp_path_factory.mktemp("frontier")
    task_dir = root / "task"
    task_dir.mkdir()
    write_tsv(task_dir / "train.tsv", make_sentences(48, seed=1))
    write_tsv(task_dir / "dev.tsv", make_sentences(24, seed=2))
    run_dir = root / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides += [
        "student.seeds=[0, 1]",
        'variant=[{name="rnn", objective="kl"}, '
        '{name="bag", objective="kl", encoder="bag", pooling="mean", hidden_size=256}]',
    ]
    config_path = root / "config.toml"
    config_path.write_text("", encoding="utf-8")
    Pipeline(load_config(None, overrides)).run()
    argv = [str(config_path), *[f"--set={item}" for item in overrides]]
    argv += ["--latency-texts", "3", "--repeats", "1", "--peak-size", "32"]
    argv += ["--fasttext-bucket", "1000", "--out", str(root / "out.json")]
    results = load_script("frontier").main(argv)
    return run_dir, root, results


def by_name(results: dict) -> dict[str, dict]:
    return {row["name"]: row for row in results["models"]}


def test_frontier_json_holds_every_model_and_is_written_to_the_run(frontier_run):
    run_dir, root, _ = frontier_run

    written = json.loads(Run(run_dir).frontier_file.read_text())
    assert written == json.loads((root / "out.json").read_text())
    assert written["command"].startswith("python benchmarks/frontier.py")
    names = [row["name"] for row in written["models"]]
    peers = [skip["name"] for skip in written["skipped"]]
    expected = ["tfidf-logreg", "fasttext", FLOAT_TEACHER, REFERENCE, "student-rnn", "student-bag"]
    assert names == [name for name in expected if name not in peers]
    assert written["references"] == list(REFERENCES)
    assert written["export"]["prune_vocab"] == "" and written["export"]["quantize"]
    for row in written["models"]:
        assert row["model_bytes"] > 0
        assert set(row["speed"]["throughput_texts_per_s"]) == {"1", "2"}
        assert row["speed"]["latency_ms"]["calls"] == 3
        assert set(row["speed"]["latency_ms"]) >= {"p50", "p90"}
    assert set(written["runtime_peak_gflops"]) == {"1", "2"}


def test_students_carry_every_seeds_accuracy_from_its_record(frontier_run):
    run_dir, _, results = frontier_run
    run, rows = Run(run_dir), by_name(results)

    for variant in VARIANTS:
        row = rows[f"student-{variant}"]
        assert row["seeds"] == [0, 1] and row["timed_seed"] == 0
        for split in ("validation", "test"):
            values = [run.student(variant, seed).score(split, "accuracy") for seed in (0, 1)]
            summary = row["accuracy"][split]
            assert summary["values"] == values and summary["n"] == 2
            assert summary["mean"] == pytest.approx(np.mean(values))
            assert summary["std"] == pytest.approx(np.std(values, ddof=1))
            assert 0.0 <= row["bundle_accuracy"][split] <= 1.0
        bundle = json.loads((Path(row["chosen"]["bundle_dir"]) / "config.json").read_text())
        assert bundle["compression"]["quantize"] is not None
        assert not bundle["compression"]["prune_vocab"]  # every row: unseen words keep theirs
    # a teacher bundle is one model: its own accuracy, no spread
    assert rows[REFERENCE]["accuracy"]["test"]["std"] is None


def test_macs_are_the_flops_counts_at_the_recorded_mean_length(frontier_run):
    from transformers import AutoConfig

    from distilrnn.runtime import Predictor, read_bundle_config
    from distilrnn.student.model import StudentConfig

    run_dir, _, results = frontier_run
    texts = list(Run(run_dir).task().test.texts)
    for row in results["models"]:
        macs = row["macs"]
        if row["kind"] == "peer":
            assert macs["per_sentence"] is None and row["gflops"] is None
            continue
        bundle_dir = Path(row["chosen"]["bundle_dir"])
        lengths = [len(ids) for ids in Predictor(bundle_dir).encode(texts)["input_ids"]]
        assert macs["mean_tokens"] == pytest.approx(np.mean(lengths))
        assert macs["length"] == round(np.mean(lengths))
        assert macs["padded_mean_tokens"] >= macs["mean_tokens"]
        if row["kind"] == "student":
            config = StudentConfig.from_dict(read_bundle_config(bundle_dir)["student"])
            assert macs["per_sentence"] == student_macs(config, macs["length"])
        else:
            hf_config = AutoConfig.from_pretrained(str(Run(run_dir).teacher_model_dir))
            assert macs["per_sentence"] == teacher_macs(hf_config, macs["length"])
    rows = by_name(results)
    # the bag has no encoder: far fewer multiply-adds than the LSTM
    assert rows["student-bag"]["macs"]["per_sentence"] < rows["student-rnn"]["macs"]["per_sentence"]


def test_gflops_follow_from_macs_and_each_throughput_run(frontier_run):
    _, _, results = frontier_run
    for row in results["models"]:
        if row["gflops"] is None:
            continue
        for threads, rate in row["speed"]["throughput_texts_per_s"].items():
            expected = 2 * row["macs"]["per_sentence"] * rate / 1e9
            assert row["gflops"][threads] == pytest.approx(expected)


def test_speed_ratios_are_against_both_teacher_bundles(frontier_run):
    _, _, results = frontier_run
    rows = by_name(results)
    for reference in REFERENCES:
        base = rows[reference]["speed"]
        for row in results["models"]:
            ratios = row["ratios"][reference]
            for threads, rate in row["speed"]["throughput_texts_per_s"].items():
                expected = rate / base["throughput_texts_per_s"][threads]
                assert ratios["throughput"][threads] == pytest.approx(expected)
            p50 = base["latency_ms"]["p50"] / row["speed"]["latency_ms"]["p50"]
            assert ratios["latency_p50"] == pytest.approx(p50)
        assert rows[reference]["ratios"][reference]["throughput"]["2"] == pytest.approx(1.0)


def test_time_breakdown_splits_a_batch_into_tokenise_session_and_the_rest(frontier_run):
    _, _, results = frontier_run
    parts = results["breakdown"]

    assert [part["name"] for part in parts] == ["student-rnn", REFERENCE]
    rows = by_name(results)
    for part in parts:
        seconds = part["seconds"]
        assert part["threads"] == 1 and part["batch_size"] == 64
        assert part["tokens"]["padded"] >= part["tokens"]["real"] > 0
        assert min(seconds.values()) >= 0.0 and seconds["total"] > 0.0
        assert seconds["other"] == pytest.approx(
            max(0.0, seconds["total"] - seconds["tokenise"] - seconds["session"])
        )
        assert seconds["tokenise_cold"] > 0.0 and seconds["tokenise_library"] > 0.0
        macs = rows[part["name"]]["macs"]["per_sentence"]
        expected = 2 * macs * part["texts"] / seconds["session"] / 1e9
        assert part["session_gflops"] == pytest.approx(expected)


def test_pareto_optimal_keeps_the_models_nothing_beats_on_both_axes():
    def row(name, texts_per_s, accuracy):
        return {
            "name": name,
            "speed": {"throughput_texts_per_s": {"2": texts_per_s}},
            "accuracy": {"test": seed_summary([accuracy])},
        }

    rows = [
        row("teacher", 100.0, 0.92),
        row("slow-and-worse", 90.0, 0.90),
        row("student", 5000.0, 0.90),
        row("fast", 50000.0, 0.80),
        row("dominated", 4000.0, 0.85),
    ]
    assert pareto_optimal(rows) == ["fast", "student", "teacher"]


def test_script_writes_the_pareto_plot_and_the_table(frontier_run):
    run_dir, root, _ = frontier_run

    for plot in (run_dir / "frontier.png", root / "out.png"):
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (root / "out.md").read_text()
    assert "| model | seeds | val acc (%) | test acc (%) ± sd |" in markdown
    assert "| student-bag" in markdown and f"| {REFERENCE}" in markdown
    assert "## Where the time goes" in markdown


def test_report_includes_the_frontier_plot_and_table(frontier_run):
    from distilrnn.report import write_report

    run_dir, _, _ = frontier_run
    report = write_report(run_dir).read_text()

    assert "## Speed frontier" in report and "![frontier](frontier.png)" in report
    assert "| student-rnn" in report and "MACs/sentence" in report
    assert (run_dir / "frontier.png").stat().st_size > 0


def test_frontier_refuses_no_variants_and_bad_timing_options(tmp_path: Path):
    with pytest.raises(ConfigError, match="variants"):
        benchmark_frontier(Run(tmp_path), [])
    with pytest.raises(ConfigError, match="repeats"):
        benchmark_frontier(Run(tmp_path), ["rnn"], repeats=0)
    with pytest.raises(ConfigError, match="breakdown_variant"):
        benchmark_frontier(Run(tmp_path), ["rnn"], breakdown_variant="bag")
