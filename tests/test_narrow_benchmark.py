"""The narrow benchmark on a tiny run: a factorised student over two seeds against the student it
started from, float and int8 bundles, markdown out (timings are not asserted)."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_run_overrides

from distilrnn.bench.narrow import benchmark_narrow, narrow_markdown
from distilrnn.config import load_config
from distilrnn.pipeline import Pipeline
from distilrnn.run import Run


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
    config = load_config(None, overrides)
    Pipeline(config).run()
    results = benchmark_narrow(config, ["wide", "narrow"], latency_texts=4)

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
        reference = Run(run_dir).student("wide", row["seed"]).test_accuracy
        assert abs(row["delta_points"] - 100 * (row["test_accuracy"] - reference)) < 1e-9
    sizes = {(r["variant"], r["setting"]): r["max_bundle_bytes"] for r in results["summary"]}
    assert sizes["narrow", "none"] < sizes["wide", "none"]
    assert sizes["narrow", "quantize"] < sizes["narrow", "none"]
    assert "| narrow | 8 | no | quantize | 2 |" in narrow_markdown(results)

    # the wide student factorised at export instead, int8 with a 4-bit embedding
    exported = benchmark_narrow(
        config, ["wide"], ranks=[4], settings=["quantize-emb4"], latency_texts=4
    )
    assert [(r["seed"], r["export_rank"], r["embedding_dim"]) for r in exported["rows"]] == [
        (0, 4, 4),
        (1, 4, 4),
    ]
    (summary,) = exported["summary"]
    assert summary["max_bundle_bytes"] < sizes["wide", "quantize"]
    assert summary["reference"] == "wide"
