"""Tests for the torch-free predict path: `distilrnn.Predictor` and `distilrnn predict`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_student
from typer.testing import CliRunner

import distilrnn
from distilrnn import cli, runtime
from distilrnn.cli import app
from distilrnn.config import ExportSettings
from distilrnn.errors import BundleError, ConfigError, MissingFileError
from distilrnn.export import export_student
from distilrnn.runtime import BUNDLE_FILES, CONFIG_NAME, LABELS_NAME, Predictor
from distilrnn.student import RNNStudent

LABELS = ["negative", "positive"]
MAX_LENGTH = 8
TEXTS = [
    "the film is good",
    "Dull!",
    "a boring , tedious and weak story that is quite awful and very long indeed",
    "great",
    "the plot is moving and the story is charming",
    "zzz unknown words",
]
# Importing any of these on the predict path would break a `distilrnn[runtime]` install.
BLOCKER = """
import importlib.abc, sys
BLOCKED = {"torch", "transformers", "datasets", "safetensors"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(
        tmp_path_factory.mktemp("runtime") / "student", rnn="gru", max_length=MAX_LENGTH
    )


@pytest.fixture(scope="module")
def bundle_dir(student_dir: Path) -> Path:
    bundle = student_dir.parent / "bundle"
    export_student(student_dir, bundle, ExportSettings(labels=LABELS))
    return bundle


def copy_bundle(bundle_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in BUNDLE_FILES:
        (target / name).write_bytes((bundle_dir / name).read_bytes())
    return target


def eager_logits(student_dir: Path, texts: list[str]) -> np.ndarray:
    """The trained student on the ids `distilrnn student` tokenises with (transformers)."""
    from transformers import AutoTokenizer

    from distilrnn.distillation import StudentCollator

    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    encoded = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    batch = StudentCollator(tokenizer.pad_token_id)([{"input_ids": ids} for ids in encoded])
    with torch.no_grad():
        logits = RNNStudent.load(student_dir)(batch["input_ids"], batch["attention_mask"])
    return logits.numpy()


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["distilrnn", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code


def test_predictor_matches_eager_student_argmax_and_softmax(student_dir: Path, bundle_dir: Path):
    eager = eager_logits(student_dir, TEXTS)
    predictor = Predictor(bundle_dir, batch_size=4)
    np.testing.assert_allclose(predictor.logits(TEXTS), eager, atol=1e-5)
    expected = torch.softmax(torch.from_numpy(eager).double(), dim=-1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), expected, atol=1e-5)
    predictions = predictor.predict(TEXTS)
    assert [p.label for p in predictions] == [LABELS[i] for i in eager.argmax(axis=-1)]
    assert [p.text for p in predictions] == TEXTS
    assert list(predictions[0].probabilities) == LABELS


def test_batched_predictions_equal_one_by_one_predictions(bundle_dir: Path):
    predictor = Predictor(bundle_dir, batch_size=64)
    batched = predictor.logits(TEXTS)
    alone = np.concatenate([predictor.logits([text]) for text in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_threads_run_a_students_batches_at_once_with_the_same_logits(bundle_dir: Path):
    one = Predictor(bundle_dir, batch_size=4).logits(TEXTS)
    two = Predictor(bundle_dir, batch_size=4, threads=2)
    assert two.parallel == "batches" and two.workers == 2
    np.testing.assert_allclose(two.logits(TEXTS), one, atol=1e-6)
    np.testing.assert_allclose(two.logits(TEXTS[:1]), one[:1], atol=1e-6)  # one batch
    operators = Predictor(bundle_dir, batch_size=4, threads=2, parallel="operators")
    assert operators.workers == 1
    np.testing.assert_allclose(operators.logits(TEXTS), one, atol=1e-6)


@pytest.mark.parametrize("changes", [{"model": "teacher"}, {"student": {"encoder": "cnn"}}])
def test_teacher_and_cnn_bundles_split_their_operators_by_default(
    bundle_dir: Path, tmp_path: Path, changes: dict
):
    other = copy_bundle(bundle_dir, tmp_path / "other")
    config = json.loads((other / CONFIG_NAME).read_text())
    config["student"].update(changes.pop("student", {}))
    (other / CONFIG_NAME).write_text(json.dumps({**config, **changes}))
    predictor = Predictor(other, threads=2)
    assert predictor.parallel == "operators" and predictor.workers == 1
    with pytest.raises(ConfigError, match="parallel must be one of"):
        Predictor(other, parallel="rows")


def test_predictor_truncates_to_the_bundle_max_length(bundle_dir: Path):
    predictor = Predictor(bundle_dir)
    long_text = "the film is good " * 10
    assert len(predictor.tokenizer.encode(long_text).ids) == MAX_LENGTH


def test_package_exposes_predictor_lazily():
    assert distilrnn.Predictor is runtime.Predictor


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_missing_bundle_file_error_names_it(bundle_dir: Path, tmp_path: Path, name: str):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    (bundle / name).unlink()
    with pytest.raises(MissingFileError, match=str(bundle / name)):
        Predictor(bundle)


def test_missing_bundle_folder_error_names_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        Predictor(tmp_path / "nowhere")


def test_labels_that_do_not_match_the_model_are_rejected(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    (bundle / LABELS_NAME).write_text(json.dumps({"names": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match=str(bundle / LABELS_NAME)):
        Predictor(bundle)


def test_model_with_other_label_count_than_config_is_rejected(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    (bundle / LABELS_NAME).write_text(json.dumps({"names": ["a", "b", "c"]}))
    config = json.loads((bundle / CONFIG_NAME).read_text())
    (bundle / CONFIG_NAME).write_text(json.dumps({**config, "num_labels": 3}))
    with pytest.raises(ValueError, match=r"model\.onnx gives 2 logits"):
        Predictor(bundle)


def test_tokenizer_larger_than_the_model_vocabulary_is_rejected(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    config = json.loads((bundle / CONFIG_NAME).read_text())
    (bundle / CONFIG_NAME).write_text(json.dumps({**config, "vocab_size": 10}))
    with pytest.raises(ValueError, match=r"tokenizer\.json has 29 tokens"):
        Predictor(bundle)


def test_config_of_another_format_is_rejected(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    (bundle / CONFIG_NAME).write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BundleError, match="not a distilrnn bundle config"):
        Predictor(bundle)


def test_corrupt_config_and_another_version_are_bundle_errors(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    config = json.loads((bundle / CONFIG_NAME).read_text())
    (bundle / CONFIG_NAME).write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(BundleError, match="bundle version 99"):
        Predictor(bundle)
    (bundle / CONFIG_NAME).write_text("{not json")
    with pytest.raises(BundleError, match=f"corrupt bundle file {bundle / CONFIG_NAME}"):
        Predictor(bundle)


def test_corrupt_model_error_names_it(bundle_dir: Path, tmp_path: Path):
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    (bundle / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=str(bundle / "model.onnx")):
        Predictor(bundle)


def test_empty_input_is_rejected(bundle_dir: Path):
    with pytest.raises(ValueError, match="empty"):
        Predictor(bundle_dir).predict([])


def test_a_single_string_is_rejected(bundle_dir: Path):
    with pytest.raises(TypeError, match="list of texts"):
        Predictor(bundle_dir).predict("the film is good")


def test_cli_predict_texts_from_arguments_as_a_table(bundle_dir: Path):
    result = CliRunner().invoke(app, ["predict", str(bundle_dir), "the film is good", "dull"])
    assert result.exit_code == 0, result.output
    assert "p(negative)" in result.output
    assert "the film is good" in result.output
    assert "dull" in result.output


def test_cli_predict_texts_from_a_file_as_jsonl(bundle_dir: Path, tmp_path: Path):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n\n")
    result = CliRunner().invoke(
        app,
        ["predict", str(bundle_dir), "--file", str(tmp_path / "texts.txt"), "--format", "jsonl"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    expected = Predictor(bundle_dir).predict(TEXTS)
    assert [row["text"] for row in rows] == TEXTS
    assert [row["label"] for row in rows] == [p.label for p in expected]
    for row, prediction in zip(rows, expected, strict=True):
        assert row["probabilities"] == pytest.approx(prediction.probabilities)


def test_cli_predict_reads_stdin_without_texts_or_file(bundle_dir: Path):
    result = CliRunner().invoke(
        app,
        ["predict", str(bundle_dir), "--format", "jsonl", "--batch-size", "2", "--threads", "2"],
        input="the film is good\ndull\nbad movie\n",
    )
    assert result.exit_code == 0, result.output
    texts = [json.loads(line)["text"] for line in result.output.splitlines()]
    assert texts == ["the film is good", "dull", "bad movie"]


def test_cli_predict_empty_stdin_says_the_input_is_empty(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    assert run_main(monkeypatch, "predict", str(bundle_dir)) == 1
    assert "no texts to classify: stdin" in capsys.readouterr().out


def test_cli_predict_missing_bundle_error_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    assert run_main(monkeypatch, "predict", str(tmp_path / "nowhere"), "good") == 1
    output = capsys.readouterr().out
    assert "error:" in output
    assert "nowhere" in output


def test_predict_path_imports_neither_torch_nor_transformers(bundle_dir: Path):
    script = (
        BLOCKER
        + f"""
from distilrnn import Predictor
from distilrnn import cli
predictions = Predictor({str(bundle_dir)!r}).predict(["the film is good", "dull"])
assert [p.label for p in predictions], predictions
sys.argv = ["distilrnn", "predict", {str(bundle_dir)!r}, "good film", "--format", "jsonl"]
try:
    cli.main()
except SystemExit as exit:
    assert not exit.code, exit.code
loaded = sorted(m for m in ("torch", "transformers", "datasets", "safetensors") if m in sys.modules)
print("loaded:", loaded)
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert '"text": "good film"' in result.stdout
    assert "loaded: []" in result.stdout


def test_training_command_without_the_train_extra_says_to_install_it(tmp_path: Path):
    script = (
        BLOCKER
        + f"""
from distilrnn import cli
sys.argv = ["distilrnn", "data", "--run-dir", {str(tmp_path / "run")!r}]
cli.main()
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pip install 'distilrnn[train]'" in result.stdout
