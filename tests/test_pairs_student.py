"""Pair and regression students: the siamese / joint student model, its bundle, the torch-free
runtime on pairs and scores, and `distilrnn predict` on pairs."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import VOCAB, build_tiny_student
from typer.testing import CliRunner

from distilrnn import cli
from distilrnn.cli import app
from distilrnn.errors import BundleError, ConfigError, StudentError
from distilrnn.model_card import hub_metadata
from distilrnn.runtime import CONFIG_NAME, PAIR_INPUT_NAMES, Predictor
from distilrnn.student import RNNStudent, StudentConfig

MAX_LENGTH = 8
PAIRS = [
    ("the film is good", "a great and moving story"),
    ("dull", "the plot is boring , tedious and weak and quite awful indeed"),
    ("great", "great"),
    ("zzz unknown words", "the story is charming"),
    ("a boring , tedious and weak story that is quite awful and very long indeed", "bad"),
]
SCORES = [4.0, 1.0, 5.0, 2.5, 0.5]


def tiny_config(**values) -> StudentConfig:
    base = {
        "vocab_size": len(VOCAB),
        "embedding_dim": 12,
        "hidden_size": 10,
        "head_hidden_size": 8,
        "padding_idx": 0,
    }
    return StudentConfig(**{**base, **values})


def batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (longest - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
    return ids, mask


FIRST = batch([[5, 6, 7], [8, 9]])
SECOND = batch([[10, 11], [12, 13, 14, 15]])


@pytest.fixture(scope="module")
def pair_students(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pairs")
    return {
        "siamese": build_tiny_student(
            root / "siamese", max_length=MAX_LENGTH, pair_design="siamese"
        ),
        "joint": build_tiny_student(root / "joint", max_length=MAX_LENGTH, pair_design="joint"),
        "regression": build_tiny_student(
            root / "regression",
            max_length=MAX_LENGTH,
            pair_design="siamese",
            num_labels=1,
            task_type="regression",
        ),
    }


@pytest.fixture(scope="module")
def bundles(pair_students: dict[str, Path]) -> dict[str, Path]:
    out = {}
    for name, directory in pair_students.items():
        student = RNNStudent.from_pretrained(directory)
        labels = ["score"] if name == "regression" else ["different", "same"]
        student.export(directory.parent / f"{name}-bundle", labels=labels)
        out[name] = directory.parent / f"{name}-bundle"
    return out


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["distilrnn", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code


# the model ------------------------------------------------------------------------------------
def test_unknown_pair_design_is_a_config_error():
    with pytest.raises(ConfigError, match=r"StudentConfig\.pair_design"):
        tiny_config(pair_design="cross")


def test_regression_student_needs_exactly_one_output():
    with pytest.raises(ConfigError, match=r"StudentConfig\.num_labels"):
        tiny_config(task_type="regression", num_labels=2)


def test_config_without_pair_fields_loads_as_a_single_text_classifier(tmp_path: Path):
    RNNStudent(tiny_config()).save(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    del values["pair_design"], values["task_type"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    loaded = RNNStudent.load(tmp_path)
    assert (loaded.config.pair_design, loaded.config.task_type) == ("none", "classification")


def test_siamese_head_reads_four_pooled_vectors():
    student = RNNStudent(tiny_config(pair_design="siamese"))
    assert student.head.hidden.in_features == 4 * student.config.output_size


def test_siamese_forward_concatenates_both_texts_and_their_product_and_distance():
    student = RNNStudent(tiny_config(pair_design="siamese")).eval()
    with torch.no_grad():
        h1, h2 = student._pooled(*FIRST), student._pooled(*SECOND)
        expected = student.head(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1))
        logits = student(*FIRST, *SECOND)
    torch.testing.assert_close(logits, expected)


def test_siamese_forward_without_pair_ids_is_a_student_error():
    student = RNNStudent(tiny_config(pair_design="siamese"))
    with pytest.raises(StudentError, match="pair_input_ids"):
        student(*FIRST)


def test_single_student_keeps_its_module_names():
    single = set(RNNStudent(tiny_config()).state_dict())
    assert single == set(RNNStudent(tiny_config(pair_design="joint")).state_dict())
    assert single == set(RNNStudent(tiny_config(pair_design="siamese")).state_dict())


def test_narrow_at_full_width_keeps_a_siamese_students_logits():
    student = RNNStudent(tiny_config(pair_design="siamese")).eval()
    narrow = student.narrow(student.config.embedding_dim).eval()
    assert narrow.config.pair_design == "siamese"
    with torch.no_grad():
        torch.testing.assert_close(
            narrow(*FIRST, *SECOND), student(*FIRST, *SECOND), atol=1e-5, rtol=1e-4
        )


def test_regression_student_outputs_one_score_per_pair():
    student = RNNStudent(tiny_config(pair_design="siamese", num_labels=1, task_type="regression"))
    assert student.eval()(*FIRST, *SECOND).shape == (2, 1)


def test_build_student_passes_pair_design_and_task_type():
    from distilrnn.config import StudentSettings
    from distilrnn.student.build import build_student

    class Teacher:
        def embedding_weight(self) -> torch.Tensor:
            return torch.randn(len(VOCAB), 12)

    student = build_student(
        StudentSettings(),
        Teacher(),
        1,
        0,
        pair_design="siamese",
        task_type="regression",
    )
    assert (student.config.pair_design, student.config.task_type) == ("siamese", "regression")


def test_predict_logits_reads_pairs_each_on_its_own_for_a_siamese_student(
    pair_students: dict[str, Path],
):
    student = RNNStudent.from_pretrained(pair_students["siamese"])
    tokenizer = student.tokenizer
    a = tokenizer(["the film is good"])["input_ids"]
    b = tokenizer(["a great story"])["input_ids"]
    with torch.no_grad():
        expected = student(*batch(a), *batch(b)).numpy()
    logits = student.predict_logits([("the film is good", "a great story")])
    np.testing.assert_allclose(logits, expected, atol=1e-6)


def test_predict_logits_refuses_single_texts_for_a_pair_student(pair_students: dict[str, Path]):
    student = RNNStudent.from_pretrained(pair_students["joint"])
    with pytest.raises(StudentError, match="pairs"):
        student.predict_logits(["the film is good"])


def test_evaluate_a_regression_student_gives_pearson_and_spearman(
    pair_students: dict[str, Path],
):
    student = RNNStudent.from_pretrained(pair_students["regression"])
    measured = student.evaluate((PAIRS, SCORES))
    assert set(measured) == {"pearson", "spearman", "examples"}
    assert -1.0 <= measured["pearson"] <= 1.0


# the bundle -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["siamese", "joint", "regression"])
def test_float_bundle_matches_the_torch_student(
    name: str, pair_students: dict[str, Path], bundles: dict[str, Path]
):
    eager = RNNStudent.from_pretrained(pair_students[name]).predict_logits(PAIRS)
    np.testing.assert_allclose(Predictor(bundles[name]).logits(PAIRS), eager, atol=1e-4)


def test_siamese_bundle_graph_takes_the_pair_ids(bundles: dict[str, Path]):
    inputs = [i.name for i in Predictor(bundles["siamese"]).session.get_inputs()]
    assert tuple(inputs) == PAIR_INPUT_NAMES


def test_joint_bundle_graph_takes_one_sequence(bundles: dict[str, Path]):
    inputs = [i.name for i in Predictor(bundles["joint"]).session.get_inputs()]
    assert inputs == ["input_ids", "attention_mask"]


def test_bundle_config_records_pair_design_and_task_type(bundles: dict[str, Path]):
    config = json.loads((bundles["regression"] / CONFIG_NAME).read_text())
    assert (config["pair_design"], config["task_type"]) == ("siamese", "regression")
    assert config["metrics"] == ["pearson", "spearman"]


@pytest.mark.parametrize("design", ["siamese", "joint"])
def test_int8_bundle_of_a_pair_student_follows_the_float_one(
    design: str, pair_students: dict[str, Path], tmp_path: Path
):
    student = RNNStudent.from_pretrained(pair_students[design])
    quantized = student.export(tmp_path / "int8", labels=["different", "same"], quantize=True)
    eager = student.predict_logits(PAIRS)
    np.testing.assert_allclose(quantized.logits(PAIRS), eager, atol=0.05)


def test_4bit_embedding_of_a_siamese_bundle_keeps_one_shared_table(
    pair_students: dict[str, Path], tmp_path: Path
):
    import onnx

    student = RNNStudent.from_pretrained(pair_students["siamese"])
    predictor = student.export(
        tmp_path / "int4", labels=["different", "same"], quantize=True, embedding_bits=4
    )
    graph = onnx.load(str(tmp_path / "int4" / "model.onnx")).graph
    tables = [t.name for t in graph.initializer if t.name.endswith("_Q4")]
    assert tables == ["student.embedding.weight_Q4"]
    np.testing.assert_allclose(predictor.logits(PAIRS), student.predict_logits(PAIRS), atol=0.05)


def test_export_scores_a_regression_bundle_with_the_task_metrics(
    pair_students: dict[str, Path], tmp_path: Path
):
    from distilrnn.export import export_bundle

    student = RNNStudent.from_pretrained(pair_students["regression"])
    summary = export_bundle(
        student,
        pair_students["regression"] / "tokenizer.json",
        tmp_path / "bundle",
        labels=["score"],
        metrics={"settings": {"max_length": MAX_LENGTH}},
        evaluation=(PAIRS, SCORES),
    )
    assert summary["evaluation"]["metric"] == "pearson"
    assert set(summary["evaluation"]["metrics"]) == {"pearson", "spearman"}


def test_model_card_index_lists_the_task_metrics():
    config = {"metrics": ["pearson", "spearman"], "task": "stsb", "evaluation": {}}
    meta = hub_metadata(config, {"test_pearson": 0.8, "validation_spearman": 0.7})
    results = meta["model-index"][0]["results"][0]
    assert [m["type"] for m in results["metrics"]] == ["pearson", "spearman"]
    assert results["task"]["type"] == "text-classification"


def test_model_card_of_a_pair_bundle_shows_how_to_predict_pairs(bundles: dict[str, Path]):
    card = (bundles["regression"] / "README.md").read_text()
    usage = card[card.index("## Usage") :]
    assert "pip install 'distilrnn[runtime]'" in usage
    assert "--pairs pairs.tsv" in usage
    assert "print(prediction.score)" in usage
    assert "a gripping" not in usage


def test_model_card_says_a_regression_pair_student_predicts_a_score(bundles: dict[str, Path]):
    card = (bundles["regression"] / "README.md").read_text()
    assert "sentence-pair regressor (it predicts a score)" in card
    assert "one text at a time (siamese)" in card


# the runtime ----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_length", [None, 6, 9])
def test_joint_runtime_ids_equal_transformers_pair_encoding(
    max_length: int | None, bundles: dict[str, Path], pair_students: dict[str, Path]
):
    from transformers import AutoTokenizer

    predictor = Predictor(bundles["joint"])
    if max_length is None:
        predictor.tokenizer.no_truncation()
    else:
        predictor.tokenizer.enable_truncation(max_length)
    tokenizer = AutoTokenizer.from_pretrained(str(pair_students["joint"]))
    texts, pairs = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    if max_length is None:
        expected = tokenizer(texts, pairs)["input_ids"]
    else:
        expected = tokenizer(texts, pairs, truncation=True, max_length=max_length)["input_ids"]
    assert predictor.encode(PAIRS)["input_ids"] == expected
    assert [predictor.encode([p])["input_ids"][0] for p in PAIRS] == expected


def test_siamese_runtime_encodes_each_text_on_its_own(bundles: dict[str, Path]):
    predictor = Predictor(bundles["siamese"])
    encoded = predictor.encode(PAIRS)
    assert encoded["pair_input_ids"] == [predictor.tokenizer.encode(b).ids for _, b in PAIRS]


def test_regression_prediction_carries_a_score_and_no_label(bundles: dict[str, Path]):
    (prediction,) = Predictor(bundles["regression"]).predict(PAIRS[:1])
    assert set(prediction.to_dict()) == {"text", "text_pair", "score"}
    assert isinstance(prediction.score, float)


def test_predict_proba_of_a_regression_bundle_is_a_bundle_error(bundles: dict[str, Path]):
    with pytest.raises(BundleError, match="regression"):
        Predictor(bundles["regression"]).predict_proba(PAIRS)


def test_pair_bundle_given_single_texts_is_a_bundle_error(bundles: dict[str, Path]):
    with pytest.raises(BundleError, match="pairs"):
        Predictor(bundles["siamese"]).predict(["the film is good"])


def test_single_text_bundle_given_pairs_is_a_bundle_error(tmp_path: Path):
    student = RNNStudent.from_pretrained(build_tiny_student(tmp_path / "single"))
    predictor = student.export(tmp_path / "bundle", labels=["negative", "positive"])
    with pytest.raises(BundleError, match="single texts"):
        predictor.predict(PAIRS)


def test_score_of_a_regression_bundle_gives_pearson_and_spearman(bundles: dict[str, Path]):
    predictor = Predictor(bundles["regression"])
    score = predictor.score(PAIRS, SCORES)
    assert score.correct is None
    assert set(score.metrics) == {"pearson", "spearman"}


def test_score_of_a_pair_classifier_keeps_accuracy(bundles: dict[str, Path]):
    predictor = Predictor(bundles["joint"])
    labels = [0, 1, 1, 0, 1]
    expected = float((predictor.logits(PAIRS).argmax(-1) == np.array(labels)).mean())
    assert predictor.score(PAIRS, labels).accuracy == expected


# the CLI --------------------------------------------------------------------------------------
def test_cli_predict_reads_a_pairs_file(bundles: dict[str, Path], tmp_path: Path):
    (tmp_path / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS))
    pairs = str(tmp_path / "pairs.tsv")
    result = CliRunner().invoke(
        app, ["predict", str(bundles["joint"]), "--pairs", pairs, "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(row["text"], row["text_pair"]) for row in rows] == PAIRS


def test_cli_predict_pairs_line_without_two_columns_names_file_and_line(
    bundles: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    (tmp_path / "pairs.tsv").write_text("good\tgreat\nonly one column\n")
    pairs = str(tmp_path / "pairs.tsv")
    assert run_main(monkeypatch, "predict", str(bundles["joint"]), "--pairs", pairs) == 1
    assert f"{pairs}:2" in capsys.readouterr().out


def test_cli_predict_reads_pairs_as_json_lines_on_stdin(bundles: dict[str, Path]):
    lines = "".join(json.dumps({"text": a, "text_pair": b}) + "\n" for a, b in PAIRS)
    result = CliRunner().invoke(
        app, ["predict", str(bundles["regression"]), "--format", "jsonl"], input=lines
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    expected = Predictor(bundles["regression"]).predict(PAIRS)
    assert [row["score"] for row in rows] == pytest.approx([p.score for p in expected])


def test_cli_predict_regression_table_shows_scores(bundles: dict[str, Path]):
    lines = json.dumps({"text": "good", "text_pair": "great"}) + "\n"
    result = CliRunner().invoke(app, ["predict", str(bundles["regression"])], input=lines)
    assert result.exit_code == 0, result.output
    assert "score" in result.output
    assert "text_pair" in result.output


def test_cli_predict_labelled_regression_pairs_prints_pearson_and_spearman(
    bundles: dict[str, Path], tmp_path: Path
):
    rows = [
        {"text": a, "text_pair": b, "label": s} for (a, b), s in zip(PAIRS, SCORES, strict=True)
    ]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    labelled = str(tmp_path / "dev.jsonl")
    result = CliRunner().invoke(
        app, ["predict", str(bundles["regression"]), "--labelled", labelled, "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    score = Predictor(bundles["regression"]).score(PAIRS, SCORES)
    assert record["pearson"] == pytest.approx(score.metrics["pearson"])
    assert record["spearman"] == pytest.approx(score.metrics["spearman"])


def test_cli_predict_labelled_classification_pairs_prints_accuracy(
    bundles: dict[str, Path], tmp_path: Path
):
    lines = ["text\ttext_pair\tlabel"] + [f"{a}\t{b}\tsame" for a, b in PAIRS]
    (tmp_path / "dev.tsv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app, ["predict", str(bundles["siamese"]), "--labelled", str(tmp_path / "dev.tsv")]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    assert "5 examples" in result.output


def test_cli_predict_regression_label_that_is_no_number_names_the_line(
    bundles: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    (tmp_path / "dev.jsonl").write_text(
        json.dumps({"text": "good", "text_pair": "bad", "label": "high"}) + "\n"
    )
    labelled = str(tmp_path / "dev.jsonl")
    code = run_main(monkeypatch, "predict", str(bundles["regression"]), "--labelled", labelled)
    assert code == 1
    assert f"{labelled}:1" in capsys.readouterr().out


def test_cli_predict_stdin_pair_line_that_is_no_json_names_the_line(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "a", "text_pair": "b"}\nnot json\n'))
    assert run_main(monkeypatch, "predict", str(bundles["joint"])) == 1
    assert "stdin:2" in capsys.readouterr().out
