"""The bundle benchmark end to end on a tiny run: every compression setting, the teacher through
onnxruntime and torch, JSON and markdown out (timings are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import tiny_run_overrides

from distilrnn.bench.bundles import benchmark_bundles, bundles_markdown
from distilrnn.bench.tables import write_results
from distilrnn.config import load_config
from distilrnn.pipeline import Pipeline
from distilrnn.run import Run


def test_bundle_benchmark_measures_every_setting_on_a_tiny_run(
    task_dir: Path, tiny_teacher_dir: Path, tmp_path: Path
):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides.append('variant=[{name="distilled-gru", rnn="gru", objective="mse"}]')
    Pipeline(load_config(None, overrides)).run()
    results = benchmark_bundles(Run(run_dir), "distilled-gru", latency_texts=4, repeats=1)

    assert [row["setting"] for row in results["bundles"]] == [
        "none",
        "prune",
        "quantize",
        "prune+quantize",
    ]
    none = results["bundles"][0]
    assert none["delta_points"] == 0.0  # the uncompressed bundle is the eager student
    assert results["bundles"][1]["compression"]["prune_vocab"]["kept_rows"] > 0
    for row in results["bundles"]:
        assert row["bundle_bytes"] > 0
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert isinstance(row["meets_size_target"], bool)
        assert Path(row["bundle_dir"]).parent == run_dir / "bundles"
    teacher = results["teacher"]
    assert teacher["onnx_max_abs_probability_difference"] < 1e-4
    assert teacher["onnx_test_accuracy"] == teacher["test_accuracy"]
    models = [(row["model"], row["runtime"]) for row in results["speed"]]
    assert models[-2:] == [("teacher", "onnxruntime"), ("teacher", "torch")]
    assert len(models) == 6
    assert results["run"]["seed"] == 0

    json_path = tmp_path / "bundle.json"
    write_results(json_path, results, bundles_markdown(results))
    assert json.loads(json_path.read_text())["run"]["seed"] == 0
    assert "| prune+quantize |" in json_path.with_suffix(".md").read_text()
