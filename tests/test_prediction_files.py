"""Prediction files on a single-sentence task: label ids, and the distilled seeds' bundles."""

from __future__ import annotations

from pathlib import Path

from conftest import make_sentences, tiny_run_overrides

from distilrnn.config import load_config
from distilrnn.pipeline import Pipeline
from distilrnn.prediction_files import write_prediction_file


def unlabelled(path: Path, count: int) -> Path:
    rows = make_sentences(count, seed=5)
    lines = ["index\tsentence"] + [f"{i}\t{text}" for i, (text, _) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bundle_columns_and_label_ids(task_dir, tiny_teacher_dir, tmp_path):
    overrides = [
        *tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run"),
        'data.label_names=["negative", "positive"]',
        'variant=[{name="base", objective="ce"}, {name="kd", objective="kl", seeds=[0, 1]}]',
    ]
    config = load_config(None, overrides)
    Pipeline(config).run(until="student")
    test = unlabelled(tmp_path / "test.tsv", 9)

    names = write_prediction_file(config, test, tmp_path / "names.tsv")
    summary = write_prediction_file(config, test, tmp_path / "ids.tsv", bundle=True, ids=True)

    assert summary["columns"] == [
        "teacher",
        "baseline/seed-0",
        "distilled/seed-0",
        "distilled/seed-1",
        "bundle/seed-0",
        "bundle/seed-1",
    ]
    by_name = [line.split("\t") for line in (tmp_path / "names.tsv").read_text().splitlines()]
    by_id = [line.split("\t") for line in (tmp_path / "ids.tsv").read_text().splitlines()]
    assert by_id[0][: len(by_name[0])] == by_name[0]
    assert len(by_id) == 10 and all(v in ("0", "1") for row in by_id[1:] for v in row[1:])
    assert all(v in ("negative", "positive") for row in by_name[1:] for v in row[1:])
    # the ids are the names' positions, and a float bundle answers as its student does
    for named, numbered in zip(by_name[1:], by_id[1:], strict=True):
        assert [("negative", "positive")[int(v)] for v in numbered[1:5]] == named[1:5]
        assert numbered[5:] == numbered[3:5]
    assert names["columns"] == summary["columns"][:4]
