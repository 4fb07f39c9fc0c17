"""Tests for `distilrnn predict` scoring a labelled file, its JSON lines, and bad input bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_tiny_student
from typer.testing import CliRunner

from distilrnn.cli import app
from distilrnn.config import ExportSettings
from distilrnn.errors import DataError
from distilrnn.export import export_student
from distilrnn.runtime import Predictor, label_ids, read_labelled

LABELS = ["negative", "positive"]
TEXTS = ["the film is good", "dull", "a boring and weak story", "great", "charming plot"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predict")
    student_dir = build_tiny_student(folder / "student", rnn="gru", max_length=8)
    export_student(student_dir, folder / "bundle", ExportSettings(labels=LABELS))
    return folder / "bundle"


def predicted_ids(bundle_dir: Path) -> list[int]:
    return [p.label_id for p in Predictor(bundle_dir).predict(TEXTS)]


def invoke(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(app, ["predict", *args], input=input)


def test_jsonl_predictions_carry_the_label_id_and_its_name(bundle_dir: Path):
    result = invoke(str(bundle_dir), *TEXTS[:2], "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["label"] for row in rows] == [LABELS[row["label_id"]] for row in rows]
    assert [row["label_id"] for row in rows] == predicted_ids(bundle_dir)[:2]


def test_labelled_tsv_prints_accuracy_and_the_number_of_examples(bundle_dir: Path, tmp_path):
    ids = predicted_ids(bundle_dir)
    gold = [ids[0], ids[1], 1 - ids[2], ids[3], ids[4]]  # 4 of 5 right
    lines = ["sentence\tlabel", *(f"{t}\t{LABELS[g]}" for t, g in zip(TEXTS, gold, strict=True))]
    (tmp_path / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(str(bundle_dir), "--labelled", str(tmp_path / "test.tsv"))
    assert result.exit_code == 0, result.output
    assert "accuracy 80.00 % (4 of 5 examples)" in result.output


def test_labelled_csv_with_other_columns_and_label_ids_scores_as_jsonl(bundle_dir: Path, tmp_path):
    ids = predicted_ids(bundle_dir)
    pairs = enumerate(zip(TEXTS, ids, strict=True))
    lines = ["id,text,gold", *(f'{i},"{t}",{g}' for i, (t, g) in pairs)]
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(
        str(bundle_dir),
        "--labelled",
        str(tmp_path / "test.csv"),
        "--text-column",
        "text",
        "--label-column",
        "gold",
        "--format",
        "jsonl",
    )
    assert result.exit_code == 0, result.output
    score = json.loads(result.output)
    assert (score["examples"], score["correct"], score["accuracy"]) == (5, 5, 1.0)


def test_labelled_jsonl_reads_names_and_ids_alike(tmp_path: Path):
    rows = [{"sentence": "good", "label": "positive"}, {"sentence": "bad", "label": 0}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    texts, labels, numbers = read_labelled(path)
    assert texts == ["good", "bad"]
    assert label_ids(labels, LABELS, [f"{path}:{n}" for n in numbers]) == [1, 0]


def test_label_names_match_after_stripping_blanks_and_whole_floats_are_ids():
    assert label_ids([" positive ", 1.0, "0"], LABELS, ["a", "b", "c"]) == [1, 1, 0]


def test_label_names_that_are_digits_win_over_ids():
    assert label_ids(["1", "2"], ["1", "2"], ["a", "b"]) == [0, 1]


def test_unknown_label_is_a_data_error_naming_file_line_and_known_labels(
    bundle_dir: Path, tmp_path: Path
):
    (tmp_path / "test.tsv").write_text("sentence\tlabel\ngood\tpositive\nbad\tneutral\n")
    result = invoke(str(bundle_dir), "--labelled", str(tmp_path / "test.tsv"))
    assert result.exit_code == 1
    assert isinstance(result.exception, DataError)
    assert f"{tmp_path / 'test.tsv'}:3" in str(result.exception)
    assert "0=negative, 1=positive" in str(result.exception)


def test_labelled_file_without_the_columns_says_which_setting_to_change(
    bundle_dir: Path, tmp_path: Path
):
    (tmp_path / "test.tsv").write_text("text\tlabel\ngood\tpositive\n")
    result = invoke(str(bundle_dir), "--labelled", str(tmp_path / "test.tsv"))
    assert isinstance(result.exception, DataError)
    assert "missing column(s) sentence" in str(result.exception)
    assert "--text-column" in str(result.exception)


def test_labelled_file_with_a_byte_order_mark_is_read(tmp_path: Path):
    (tmp_path / "test.tsv").write_bytes(b"\xef\xbb\xbfsentence\tlabel\ngood\tpositive\n")
    assert read_labelled(tmp_path / "test.tsv")[:2] == (["good"], ["positive"])


def test_bad_bytes_in_the_text_file_name_the_file_and_line(bundle_dir: Path, tmp_path: Path):
    (tmp_path / "texts.txt").write_bytes(b"good\nbad \xff\xfe bytes\n")
    result = invoke(str(bundle_dir), "--file", str(tmp_path / "texts.txt"))
    assert isinstance(result.exception, DataError)
    assert f"{tmp_path / 'texts.txt'}:2: not valid UTF-8" in str(result.exception)


def test_bad_bytes_on_stdin_name_stdin_and_the_line(bundle_dir: Path):
    result = invoke(str(bundle_dir), input=b"good\nfine\n\xc3\x28 broken\n")
    assert isinstance(result.exception, DataError)
    assert "stdin:3: not valid UTF-8" in str(result.exception)


def test_bad_bytes_in_the_labelled_file_name_the_file_and_line(tmp_path: Path):
    (tmp_path / "test.tsv").write_bytes(b"sentence\tlabel\n\xff\tpositive\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: not valid UTF-8"):
        read_labelled(tmp_path / "test.tsv")


def test_labelled_refuses_texts_beside_it(bundle_dir: Path, tmp_path: Path):
    (tmp_path / "test.tsv").write_text("sentence\tlabel\ngood\tpositive\n")
    result = invoke(str(bundle_dir), "good", "--labelled", str(tmp_path / "test.tsv"))
    assert isinstance(result.exception, DataError)
    assert "--labelled" in str(result.exception)


def test_labelled_file_without_a_header_takes_column_positions(bundle_dir: Path, tmp_path: Path):
    ids = predicted_ids(bundle_dir)
    lines = [f"{g}\t{t}" for t, g in zip(TEXTS, ids, strict=True)]  # SentEval: label<TAB>text
    (tmp_path / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--labelled", str(tmp_path / "test.tsv"), "--no-header"]
    result = invoke(str(bundle_dir), *args, "--text-column", "1", "--label-column", "0")
    assert result.exit_code == 0, result.output
    assert "(5 of 5 examples)" in result.output


def test_no_header_with_column_names_says_they_are_positions(tmp_path: Path):
    (tmp_path / "test.tsv").write_text("1\tgood\n", encoding="utf-8")
    with pytest.raises(DataError, match="0-based positions"):
        read_labelled(tmp_path / "test.tsv", header=False)


def test_the_runs_teacher_exports_as_a_bundle_that_predict_scores(tiny_teacher_dir, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_teacher_dir, run_dir / "teacher" / "model")
    (run_dir / "teacher" / "stage.json").write_text(
        json.dumps({"fingerprint": "x", "settings": {"max_length": 16}})
    )
    (run_dir / "data").mkdir()
    (run_dir / "data" / "labels.json").write_text(json.dumps({"names": LABELS}))
    exported = CliRunner().invoke(app, ["export-teacher", str(run_dir), str(tmp_path / "teacher")])
    assert exported.exit_code == 0, exported.output
    teacher = Predictor(tmp_path / "teacher")
    ids = [p.label_id for p in teacher.predict(TEXTS)]
    rows = [f"{text}\t{LABELS[i]}" for text, i in zip(TEXTS, ids, strict=True)]
    (tmp_path / "test.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    result = invoke(str(tmp_path / "teacher"), "--labelled", str(tmp_path / "test.tsv"))
    assert result.exit_code == 0, result.output
    assert "100.00 %" in result.output and "5 of 5" in result.output
