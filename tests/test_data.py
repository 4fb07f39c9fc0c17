"""Task loading: formats, labels, splits, and errors that name the file and line."""

import json

import pytest
from conftest import make_sentences, write_tsv

from distilrnn.config import DataConfig
from distilrnn.data import DataError, load_task


def config_for(folder, **kwargs) -> DataConfig:
    return DataConfig(path=str(folder), **kwargs)


def test_glue_tsv_loads_with_halved_dev(task_dir):
    task = load_task(config_for(task_dir))
    assert task.label_names == ["0", "1"]
    assert len(task.splits["train"]) == 48
    assert len(task.splits["validation"]) + len(task.splits["test"]) == 24
    assert len(task.splits["validation"]) == 12


def test_halving_is_reproducible_and_disjoint(task_dir):
    first = load_task(config_for(task_dir))
    second = load_task(config_for(task_dir))
    assert first.splits["test"]["text"] == second.splits["test"]["text"]
    other = load_task(config_for(task_dir, split_seed=7))
    assert other.splits["test"]["text"] != first.splits["test"]["text"]


def test_quotes_are_kept_verbatim_in_tsv(tmp_path):
    write_tsv(tmp_path / "train.tsv", [('he said "no" , it \'s bad', 0), ("good", 1)])
    write_tsv(tmp_path / "dev.tsv", [("fine", 1), ("bad", 0)])
    task = load_task(config_for(tmp_path))
    assert task.splits["train"]["text"][0] == 'he said "no" , it \'s bad'


def test_string_labels_and_three_classes(tmp_path):
    rows = [("a", "neutral"), ("b", "positive"), ("c", "negative"), ("d", "neutral")]
    write_tsv(tmp_path / "train.tsv", rows)
    write_tsv(tmp_path / "dev.tsv", rows)
    task = load_task(config_for(tmp_path))
    assert task.label_names == ["negative", "neutral", "positive"]
    assert task.splits["train"]["label"] == [1, 2, 0, 1]


def test_jsonl_and_csv_with_custom_columns(tmp_path):
    lines = [json.dumps({"review": t, "stars": y}) for t, y in make_sentences(6, seed=3)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    csv_rows = "review,stars\n" + "\n".join(f'"{t}",{y}' for t, y in make_sentences(4, seed=4))
    (tmp_path / "dev.csv").write_text(csv_rows + "\n")
    config = config_for(
        tmp_path,
        train_file="train.jsonl",
        validation_file="dev.csv",
        text_column="review",
        label_column="stars",
    )
    task = load_task(config)
    assert len(task.splits["train"]) == 6
    assert len(task.splits["validation"]) == 2


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"train\.tsv"):
        load_task(config_for(tmp_path))


def test_missing_column_is_named(tmp_path):
    (tmp_path / "train.tsv").write_text("text\tlabel\ngood\t1\n")
    with pytest.raises(DataError, match=r"train.tsv:1: missing column\(s\) sentence"):
        load_task(config_for(tmp_path))


def test_empty_text_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\n \t0\n")
    with pytest.raises(DataError, match=r"train.tsv:3: empty text"):
        load_task(config_for(tmp_path))


def test_ragged_row_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(DataError, match=r"train.tsv:3: ragged row"):
        load_task(config_for(tmp_path))


def test_bad_encoding_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\t0\n")
    with pytest.raises(DataError, match=r"train.tsv:3: not valid UTF-8"):
        load_task(config_for(tmp_path))


def test_label_unseen_in_train_names_file_and_line(tmp_path):
    write_tsv(tmp_path / "train.tsv", [("good", 1), ("bad", 0)])
    write_tsv(tmp_path / "dev.tsv", [("fine", 1), ("meh", 2)])
    with pytest.raises(DataError, match=r"dev\.tsv:3: label '2' never occurs"):
        load_task(config_for(tmp_path))


def test_label_names_must_match_label_count(task_dir):
    with pytest.raises(DataError, match="label_names"):
        load_task(config_for(task_dir, label_names=["a", "b", "c"]))


def test_max_train_samples_takes_a_seeded_subset(task_dir):
    task = load_task(config_for(task_dir, max_train_samples=10))
    assert len(task.splits["train"]) == 10
    assert (
        task.splits["train"]["text"]
        == load_task(config_for(task_dir, max_train_samples=10)).splits["train"]["text"]
    )
