"""Task loading: formats, labels, splits, and errors that name the file and line."""

import json

import pytest
from conftest import make_sentences, write_tsv

from distilrnn.config import DataConfig
from distilrnn.data import DataError, Split, Task, load_task


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


# the task objects --------------------------------------------------------------------------------
def test_from_lists_without_test_halves_validation():
    train = make_sentences(20, seed=1)
    dev = make_sentences(10, seed=2)
    task = Task.from_lists(
        [t for t, _ in train],
        [y for _, y in train],
        validation=([t for t, _ in dev], [y for _, y in dev]),
    )
    assert task.label_names == ["0", "1"]
    assert len(task.train) == 20
    assert (len(task.validation), len(task.test)) == (5, 5)
    assert sorted(task.validation.texts + task.test.texts) == sorted(t for t, _ in dev)
    assert isinstance(task.train, Split) and task.train.name == "train"


def test_from_lists_with_test_keeps_the_splits_as_given():
    task = Task.from_lists(
        ["good", "bad", "fun"],
        [1, 0, 1],
        validation=(["great", "dull"], [1, 0]),
        test=(["weak"], [0]),
    )
    assert task.validation.texts == ["great", "dull"]
    assert task.test == Split(["weak"], [0], "test")


def test_from_lists_string_labels_take_sorted_names():
    task = Task.from_lists(
        ["a", "b", "c", "d"],
        ["neutral", "positive", "negative", "neutral"],
        validation=(["e", "f"], ["positive", "negative"]),
    )
    assert task.label_names == ["negative", "neutral", "positive"]
    assert task.train.labels == [1, 2, 0, 1]


def test_from_lists_matches_the_same_rows_read_from_files(task_dir):
    from_files = load_task(config_for(task_dir))
    train, dev = make_sentences(48, seed=1), make_sentences(24, seed=2)
    from_lists = Task.from_lists(
        [t for t, _ in train],
        [y for _, y in train],
        validation=([t for t, _ in dev], [y for _, y in dev]),
    )
    for split in ("train", "validation", "test"):
        assert from_lists.split(split) == from_files.split(split)


def test_from_lists_unlabelled_training_texts_take_names_later():
    task = Task.from_lists(["good film", "dull plot", "fun"], validation=(["great"], [1]))
    assert task.train.labels is None
    assert task.splits["train"]["label"] == [-1, -1, -1]
    assert task.label_names == []
    named = task.with_label_names(["negative", "positive"])
    assert named.label_names == ["negative", "positive"]
    with pytest.raises(DataError, match="no name"):
        task.with_label_names(["only"])


def test_from_lists_unlabelled_training_texts_with_label_names():
    task = Task.from_lists(
        ["good film", "dull plot"],
        label_names=["negative", "positive"],
        validation=(["great", "awful"], ["positive", 0]),
    )
    assert task.label_names == ["negative", "positive"]
    assert task.validation.labels is not None
    assert sorted(task.validation.labels + (task.test.labels or [])) == [0, 1]


def test_from_lists_empty_text_names_split_and_row():
    with pytest.raises(DataError, match=r"train split, row 1: empty text"):
        Task.from_lists(["good", "  ", "bad"], [1, 0, 0], validation=(["fine"], [1]))


def test_from_lists_label_unseen_in_train_names_split_and_row():
    with pytest.raises(DataError, match=r"validation split, row 1: label '2' never occurs"):
        Task.from_lists(["good", "bad"], [1, 0], validation=(["fine", "meh"], [1, 2]))


def test_from_lists_without_validation_holds_out_a_seeded_share():
    rows = make_sentences(30, seed=5)
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    task = Task.from_lists(texts, labels)
    assert (len(task.train), len(task.validation), len(task.test)) == (24, 3, 3)
    assert sorted(task.train.texts + task.validation.texts + task.test.texts) == sorted(texts)
    assert Task.from_lists(texts, labels).test == task.test


def test_from_pandas_with_custom_columns():
    pd = pytest.importorskip("pandas")
    train = pd.DataFrame({"review": ["good", "bad", "fun", "dull"], "stars": [5, 1, 5, 1]})
    dev = pd.DataFrame({"review": ["great", "weak"], "stars": [5, 1]})
    task = Task.from_pandas(train, text_column="review", label_column="stars", validation=dev)
    assert task.label_names == ["1", "5"]
    assert task.train.labels == [1, 0, 1, 0]


def test_from_pandas_gap_in_labels_names_split_row_and_column():
    pd = pytest.importorskip("pandas")
    train = pd.DataFrame({"sentence": ["good", "bad", "fun"], "label": [1, None, 0]})
    with pytest.raises(DataError, match=r"train split, row 1: empty label in column 'label'"):
        Task.from_pandas(train)


def test_from_pandas_missing_column_is_named():
    pd = pytest.importorskip("pandas")
    with pytest.raises(DataError, match=r"train DataFrame: missing column\(s\) sentence"):
        Task.from_pandas(pd.DataFrame({"text": ["good"], "label": [1]}))


def test_from_dataset_keeps_class_label_names_and_ids():
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    train = Dataset.from_dict({"sentence": ["good", "bad", "fun"], "label": [1, 0, 1]}, features)
    dev = Dataset.from_dict({"sentence": ["great", "dull"], "label": [1, 0]}, features)
    hidden = Dataset.from_dict({"sentence": ["fine"], "label": [-1]}, features)
    task = Task.from_dataset(DatasetDict(train=train, validation=dev, test=hidden))
    assert task.label_names == ["neg", "pos"]
    assert task.train.labels == [1, 0, 1]
    assert task.test.labels is None


def test_load_task_dispatches_a_dataset():
    from datasets import Dataset

    rows = make_sentences(10, seed=6)
    data = Dataset.from_dict({"text": [t for t, _ in rows], "y": [y for _, y in rows]})
    task = load_task(data, text_column="text", label_column="y")
    assert len(task.train) + len(task.validation) + len(task.test) == 10


def test_load_task_on_a_folder_with_keyword_columns(tmp_path):
    lines = [json.dumps({"review": t, "stars": y}) for t, y in make_sentences(8, seed=3)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.jsonl").write_text("\n".join(lines[:4]) + "\n")
    task = load_task(
        tmp_path,
        train_file="train.jsonl",
        validation_file="dev.jsonl",
        text_column="review",
        label_column="stars",
    )
    assert len(task.train) == 8
    assert len(task.validation) + len(task.test) == 4


def test_load_task_on_a_single_file_holds_out_validation(tmp_path):
    rows = "review,stars\n" + "\n".join(f'"{t}",{y}' for t, y in make_sentences(20, seed=4))
    (tmp_path / "reviews.csv").write_text(rows + "\n")
    task = load_task(str(tmp_path / "reviews.csv"), text_column="review", label_column="stars")
    assert (len(task.train), len(task.validation), len(task.test)) == (16, 2, 2)


def test_load_task_missing_path_and_unknown_setting(tmp_path):
    from distilrnn.errors import ConfigError, MissingFileError

    with pytest.raises(MissingFileError, match=r"reviews\.csv"):
        load_task(str(tmp_path / "reviews.csv"))
    with pytest.raises(ConfigError, match="text_colum"):
        load_task(tmp_path, text_colum="review")


def test_saved_task_loads_back_equal(task_dir, tmp_path):
    task = load_task(config_for(task_dir))
    task.save(tmp_path / "data")
    task.save(tmp_path / "data")  # over an existing copy
    loaded = Task.load(tmp_path / "data")
    assert loaded.label_names == task.label_names
    for split in ("train", "validation", "test"):
        assert loaded.split(split) == task.split(split)
    assert not list((tmp_path / "data").glob("*.tmp"))


def test_hub_task_drops_hidden_test_labels_and_halves_validation(monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rows = make_sentences(12, seed=7)
    split = Dataset.from_dict(
        {"sentence": [t for t, _ in rows], "label": [y for _, y in rows]}, features
    )
    hidden = Dataset.from_dict({"sentence": ["fine", "dull"], "label": [-1, -1]}, features)
    loaded = DatasetDict(train=split, validation=split, test=hidden)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, subset: loaded)
    task = load_task("glue/sst2")
    assert task.label_names == ["neg", "pos"]
    assert (len(task.validation), len(task.test)) == (6, 6)
    assert task.test.labels is not None


# what is the same label ---------------------------------------------------------------------
def test_labels_ignore_surrounding_whitespace(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na\tpos \nb\t pos\nc\tneg\n")
    write_tsv(tmp_path / "dev.tsv", [("d", "pos"), ("e", "neg")])
    task = load_task(config_for(tmp_path))
    assert task.label_names == ["neg", "pos"]
    assert task.splits["train"]["label"] == [1, 1, 0]


def test_integers_written_differently_are_one_label(tmp_path):
    rows = [("a", "1"), ("b", "01"), ("c", "1.0"), ("d", "+1"), ("h", "0")]
    write_tsv(tmp_path / "train.tsv", rows)
    write_tsv(tmp_path / "dev.tsv", [("e", "1.00"), ("f", "-0"), ("g", "0")])
    task = load_task(config_for(tmp_path))
    assert task.label_names == ["0", "1"]
    assert task.splits["train"]["label"] == [1, 1, 1, 1, 0]


def test_number_labels_from_json_match_the_same_numbers_as_text(tmp_path):
    lines = [json.dumps({"sentence": t, "label": y}) for t, y in [("a", 1.0), ("b", 0), ("c", 2)]]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    write_tsv(tmp_path / "dev.tsv", [("d", "2"), ("e", "1")])
    task = load_task(config_for(tmp_path, train_file="train.jsonl"))
    assert task.label_names == ["0", "1", "2"]
    assert task.splits["train"]["label"] == [1, 0, 2]


def test_decimal_labels_compare_by_value():
    from distilrnn.data import canonical_label

    assert canonical_label("0.50") == canonical_label(0.5) == "0.5"
    assert canonical_label("2.5") != canonical_label("2.05")


def test_json_booleans_are_the_words_true_and_false_not_one_and_zero(tmp_path):
    rows = [("a", True), ("b", False), ("c", True)]
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps({"sentence": t, "label": y}) for t, y in rows) + "\n"
    )
    write_tsv(tmp_path / "dev.tsv", [("d", "true"), ("e", "false")])
    task = load_task(config_for(tmp_path, train_file="train.jsonl"))
    assert task.label_names == ["false", "true"]
    assert task.splits["train"]["label"] == [1, 0, 1]
    dev = list(task.splits["validation"]["label"]) + list(task.splits["test"]["label"])
    assert sorted(dev) == [0, 1]


def test_label_case_is_kept_and_pairs_differing_in_case_are_warned(tmp_path, caplog):
    write_tsv(tmp_path / "train.tsv", [("a", "Positive"), ("b", "positive"), ("c", "neg")])
    write_tsv(tmp_path / "dev.tsv", [("d", "neg"), ("e", "positive")])
    with caplog.at_level("WARNING", logger="distilrnn.data"):
        task = load_task(config_for(tmp_path))
    assert task.label_names == ["Positive", "neg", "positive"]
    assert "differ only in case" in caplog.text


# header-less files and byte-order marks ------------------------------------------------------
def write_senteval(path, rows) -> None:
    path.write_text("".join(f"{label}\t{text}\n" for text, label in rows), encoding="utf-8")


def test_headerless_label_first_file_reads_by_position(tmp_path):
    write_senteval(tmp_path / "train.tsv", [("a good film", 1), ("a bad film", 0), ("fine", 1)])
    write_senteval(tmp_path / "dev.tsv", [("great", 1), ("awful", 0)])
    task = load_task(config_for(tmp_path, header=False, text_column="1", label_column="0"))
    assert task.splits["train"]["text"] == ["a good film", "a bad film", "fine"]
    assert task.splits["train"]["label"] == [1, 0, 1]


def test_headerless_file_needs_column_positions(tmp_path):
    from distilrnn.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.text_column: with data\.header = false"):
        config_for(tmp_path, header=False)


def test_headerless_ragged_row_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_text("1\tgood\n0\tbad\textra\n")
    write_senteval(tmp_path / "dev.tsv", [("great", 1)])
    config = config_for(tmp_path, header=False, text_column="1", label_column="0")
    with pytest.raises(DataError, match=r"train.tsv:2: ragged row: 3 fields where line 1 has 2"):
        load_task(config)


def test_headerless_position_beyond_the_row_names_file_and_line(tmp_path):
    write_senteval(tmp_path / "train.tsv", [("good", 1)])
    write_senteval(tmp_path / "dev.tsv", [("great", 1)])
    config = config_for(tmp_path, header=False, text_column="2", label_column="0")
    with pytest.raises(DataError, match=r"train.tsv:1: data.text_column is position 2"):
        load_task(config)


def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    lines = ["Quality\tString"] + [f"{y}\t{t}" for t, y in make_sentences(6, seed=5)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    (tmp_path / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    task = load_task(config_for(tmp_path, text_column="String", label_column="Quality"))
    assert len(task.splits["train"]) == 6
    assert task.label_names == sorted(task.label_names, key=int)


# empty texts ---------------------------------------------------------------------------------
def test_empty_text_error_offers_drop_empty(tmp_path):
    write_tsv(tmp_path / "train.tsv", [("good", 1), ("  ", 0)])
    write_tsv(tmp_path / "dev.tsv", [("fine", 1), ("bad", 0)])
    with pytest.raises(DataError, match=r"train.tsv:3: .*set data.drop_empty = true"):
        load_task(config_for(tmp_path))


def test_drop_empty_drops_empty_rows_and_logs_the_count(tmp_path, caplog):
    write_tsv(tmp_path / "train.tsv", [("good", 1), ("  ", 0), ("bad", 0), ("", 1)])
    write_tsv(tmp_path / "dev.tsv", [("fine", 1), ("awful", 0)])
    with caplog.at_level("WARNING", logger="distilrnn.data"):
        task = load_task(config_for(tmp_path, drop_empty=True))
    assert task.splits["train"]["text"] == ["good", "bad"]
    assert task.splits["train"]["label"] == [1, 0]
    assert "dropped 2 row(s) with empty text" in caplog.text


def test_drop_empty_keeps_line_numbers_in_later_errors(tmp_path):
    write_tsv(tmp_path / "train.tsv", [("", 1), ("good", 1), ("bad", "")])
    write_tsv(tmp_path / "dev.tsv", [("fine", 1)])
    with pytest.raises(DataError, match=r"train.tsv:4: empty label"):
        load_task(config_for(tmp_path, drop_empty=True))


# validation held out from train ---------------------------------------------------------------
def test_validation_from_train_holds_out_train_and_uses_dev_whole_as_test(task_dir):
    task = load_task(config_for(task_dir, validation_from_train=0.25))
    assert len(task.splits["validation"]) == 12
    assert len(task.splits["train"]) == 36
    assert len(task.splits["test"]) == 24
    held = set(task.splits["validation"]["text"])
    assert not held & set(task.splits["train"]["text"])


def test_validation_from_train_is_seeded(task_dir):
    first = load_task(config_for(task_dir, validation_from_train=0.25))
    again = load_task(config_for(task_dir, validation_from_train=0.25))
    other = load_task(config_for(task_dir, validation_from_train=0.25, split_seed=7))
    assert first.splits["validation"]["text"] == again.splits["validation"]["text"]
    assert first.splits["validation"]["text"] != other.splits["validation"]["text"]


def test_validation_from_train_refuses_a_test_file_beside_the_dev_file(task_dir):
    from distilrnn.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.validation_from_train: .*test_file"):
        config_for(task_dir, validation_from_train=0.2, test_file="test.tsv")


def test_headerless_setting_refuses_jsonl(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"0": "good", "1": 1}) + "\n")
    config = config_for(
        tmp_path, train_file="train.jsonl", header=False, text_column="0", label_column="1"
    )
    with pytest.raises(DataError, match=r"train.jsonl: data.header = false applies to TSV"):
        load_task(config)


def test_new_data_settings_at_their_defaults_keep_format_1_fingerprints():
    from distilrnn.stages import fingerprinted, settings_of_version

    values = settings_of_version("data", fingerprinted(DataConfig()), 1)
    assert not {"header", "drop_empty", "validation_from_train"} & set(values)
    changed = settings_of_version("data", fingerprinted(DataConfig(drop_empty=True)), 1)
    assert changed["drop_empty"] is True
