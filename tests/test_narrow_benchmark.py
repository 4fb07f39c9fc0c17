"""benchmarks/narrow.py on a tiny run: a factorised student over two seeds against the student it
started from, float and int8 bundles, JSON and markdown out (timings are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import load_benchmark_script, tiny_run_overrides

from distilrnn.config import load_config
from distilrnn.pipeline import Pipeline


def test_narrow_benchmark_compares_each_seed_with_the_student_it_started_from(
    task_dir: Path, tiny_teacher_dir: Path, tmp_path: Path
):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides += [
        "student.seeds=[0, 1]",
        'variant=[{name="wide", objective="kl"}, '
        '{name="narrow", objective="kl", init_from="wide", embedding_projection=8, epochs=1}]',
    ]
    Pipeline(load_config(None, overrides)).run()
    json_path = tmp_path / "narrow.json"
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")  # everything from the overrides
    args = ["--variants", "wide", "narrow", "--json", str(json_path), "--latency-texts", "4"]
    results = load_benchmark_script("narrow").main(
        [str(tmp_path / "empty.toml"), *args, *_sets(overrides)]
    )

    rows = results["rows"]
    assert [(r["variant"], r["seed"], r["setting"]) for r in rows] == [
        (variant, seed, setting)
        for variant in ("wide", "narrow")
        for seed in (0, 1)
        for setting in ("none", "quantize")
    ]
    wide = [r for r in rows if r["variant"] == "wide" and r["setting"] == "none"]
    assert all(r["delta_points"] == 0.0 for r in wide)  # the float bundle is the student itself
    narrow = [r for r in rows if r["variant"] == "narrow"]
    assert {r["reference"] for r in narrow} == {"wide"}
    assert {r["embedding_dim"] for r in narrow} == {8}
    for row in narrow:
        reference = json.loads(
            (run_dir / "students" / "wide" / f"seed-{row['seed']}" / "metrics.json").read_text()
        )["test_accuracy"]
        assert abs(row["delta_points"] - 100 * (row["test_accuracy"] - reference)) < 1e-9
    sizes = {(r["variant"], r["setting"]): r["max_bundle_bytes"] for r in results["summary"]}
    assert sizes["narrow", "none"] < sizes["wide", "none"]
    assert sizes["narrow", "quantize"] < sizes["narrow", "none"]
    assert "| narrow | 8 | no | quantize | 2 |" in json_path.with_suffix(".md").read_text()

    # the wide student factorised at export instead, int8 with a 4-bit embedding
    args = ["--variants", "wide", "--ranks", "4", "--settings", "quantize-emb4"]
    exported = load_benchmark_script("narrow").main(
        [str(tmp_path / "empty.toml"), *args, "--json", str(tmp_path / "r.json"), *_sets(overrides)]
    )
    assert [(r["seed"], r["export_rank"], r["embedding_dim"]) for r in exported["rows"]] == [
        (0, 4, 4),
        (1, 4, 4),
    ]
    (summary,) = exported["summary"]
    assert summary["max_bundle_bytes"] < sizes["wide", "quantize"]
    assert summary["reference"] == "wide"


def _sets(overrides: list[str]) -> list[str]:
    return [part for override in overrides for part in ("--set", override)]
