"""Sentence pairs and regression end to end on tiny fixtures: MRPC- and STS-B-shaped files
(MRPC's byte-order mark included), the cross-encoder teacher, siamese and joint students, the
regression objectives and the pair transfer set."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, tiny_run_overrides

from distilrnn import load_task
from distilrnn.config import load_config
from distilrnn.errors import DataError
from distilrnn.pipeline import Pipeline

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
STSB_HEADER = "index\tsentence1\tsentence2\tscore"


def make_pairs(count: int, seed: int) -> list[tuple[str, str, int, float]]:
    """Pairs of sentences; label 1 when both carry the same polarity, and a score in [0, 5]
    that is high for the same polarity."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        sides, polarities = [], []
        for _side in range(2):
            polarity = rng.randint(0, 1)
            words = rng.sample(FILLER, rng.randint(1, 5))
            words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if polarity else NEGATIVE))
            sides.append(" ".join(words))
            polarities.append(polarity)
        same = int(polarities[0] == polarities[1])
        score = round(min(5.0, max(0.0, 4.0 * same + rng.uniform(0.0, 1.0))), 3)
        rows.append((sides[0], sides[1], same, score))
    return rows


def write_mrpc(path: Path, rows: list[tuple[str, str, int, float]]) -> Path:
    lines = [MRPC_HEADER] + [f"{q}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, q, _) in enumerate(rows)]
    path.write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    return path


def write_stsb(path: Path, rows: list[tuple[str, str, int, float]]) -> Path:
    lines = [STSB_HEADER] + [f"{i}\t{a}\t{b}\t{s:.3f}" for i, (a, b, _, s) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def mrpc_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mrpc"
    folder.mkdir()
    write_mrpc(folder / "train.tsv", make_pairs(48, seed=1))
    write_mrpc(folder / "dev.tsv", make_pairs(24, seed=2))
    return folder


@pytest.fixture
def stsb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "stsb"
    folder.mkdir()
    write_stsb(folder / "train.tsv", make_pairs(48, seed=3))
    write_stsb(folder / "dev.tsv", make_pairs(24, seed=4))
    return folder


MRPC_SETTINGS = [
    'data.text_column="#1 String"',
    'data.text_pair_column="#2 String"',
    'data.label_column="Quality"',
    'data.metrics=["accuracy", "f1"]',
]
STSB_SETTINGS = [
    'data.text_column="sentence1"',
    'data.text_pair_column="sentence2"',
    'data.label_column="score"',
]


def overrides(task: Path, teacher: Path, run: Path, settings: list[str], variants: str):
    return [*tiny_run_overrides(task, teacher, run), *settings, f"variant=[{variants}]"]


# data ------------------------------------------------------------------------------------------
def test_mrpc_header_with_a_byte_order_mark_names_its_first_column(mrpc_dir):
    task = load_task(
        mrpc_dir, text_column="#1 String", text_pair_column="#2 String", label_column="Quality"
    )
    assert task.is_pair and task.task_type == "classification"
    assert task.label_names == ["0", "1"]
    assert len(task.train.text_pairs) == len(task.train.texts) == 48


def test_float_scores_make_a_regression_task(stsb_dir):
    task = load_task(
        stsb_dir, text_column="sentence1", text_pair_column="sentence2", label_column="score"
    )
    assert task.task_type == "regression"
    assert task.label_names == ["score"]
    assert task.metrics == ["pearson", "spearman"]
    assert all(isinstance(score, float) for score in task.train.labels)


def test_task_type_set_explicitly_wins_over_inference(mrpc_dir):
    task = load_task(
        mrpc_dir,
        text_column="#1 String",
        text_pair_column="#2 String",
        label_column="Quality",
        task_type="regression",
    )
    assert task.task_type == "regression" and task.train.labels[0] in (0.0, 1.0)


def test_a_score_that_is_not_a_number_names_file_and_line(stsb_dir):
    lines = (stsb_dir / "train.tsv").read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\thigh"
    (stsb_dir / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.tsv:4: label 'high' is not a number"):
        load_task(
            stsb_dir,
            text_column="sentence1",
            text_pair_column="sentence2",
            label_column="score",
            task_type="regression",
        )


def test_an_empty_second_text_names_its_column(mrpc_dir):
    lines = (mrpc_dir / "train.tsv").read_text(encoding="utf-8-sig").splitlines()
    fields = lines[2].split("\t")
    lines[2] = "\t".join([*fields[:4], " "])
    (mrpc_dir / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.tsv:3: empty text in column '#2 String'"):
        load_task(
            mrpc_dir, text_column="#1 String", text_pair_column="#2 String", label_column="Quality"
        )


def test_f1_on_a_regression_task_is_refused(stsb_dir):
    with pytest.raises(DataError, match="f1"):
        load_task(
            stsb_dir,
            text_column="sentence1",
            text_pair_column="sentence2",
            label_column="score",
            metrics=["f1"],
        )


def test_pair_task_from_lists_of_tuples():
    from distilrnn import Task

    pairs = [("good film", "great movie"), ("bad film", "great movie")] * 5
    task = Task.from_lists(pairs, [1, 0] * 5)
    assert task.is_pair and task.train.inputs[0] in pairs


def test_saved_task_keeps_its_type_and_metrics(stsb_dir, tmp_path):
    from distilrnn.data import Task

    task = load_task(
        stsb_dir, text_column="sentence1", text_pair_column="sentence2", label_column="score"
    )
    task.save(tmp_path / "saved")
    again = Task.load(tmp_path / "saved")
    assert (again.task_type, again.metrics, again.is_pair) == ("regression", task.metrics, True)


# the pipeline ----------------------------------------------------------------------------------
def test_pair_classification_run_trains_siamese_and_joint_students(
    mrpc_dir, tiny_teacher_dir, tmp_path
):
    variants = (
        '{name="base-siamese", objective="ce", pair_design="siamese"}, '
        '{name="kd-joint", objective="kl", pair_design="joint"}, '
        '{name="kd-siamese-aug", objective="mse", transfer_set="augmented"}'
    )
    config = load_config(
        None,
        [
            *overrides(mrpc_dir, tiny_teacher_dir, tmp_path / "run", MRPC_SETTINGS, variants),
            "augment.n_iter=2",
        ],
    )
    Pipeline(config).run(until="student")
    teacher = json.loads((tmp_path / "run" / "teacher" / "metrics.json").read_text())
    assert {"test_accuracy", "test_f1", "validation_f1"} <= set(teacher)
    for name in ("base-siamese", "kd-joint", "kd-siamese-aug"):
        metrics = json.loads(
            (tmp_path / "run" / "students" / name / "seed-0" / "metrics.json").read_text()
        )
        assert 0.0 <= metrics["test_f1"] <= 1.0 and metrics["metrics"] == ["accuracy", "f1"]
    design = json.loads(
        (tmp_path / "run" / "students" / "kd-joint" / "seed-0" / "config.json").read_text()
    )["pair_design"]
    assert design == "joint"
    augmented = json.loads(
        (tmp_path / "run" / "students" / "kd-siamese-aug" / "seed-0" / "metrics.json").read_text()
    )
    assert augmented["train_examples"] > 48


def test_regression_run_trains_on_gold_and_teacher_scores(stsb_dir, tiny_teacher_dir, tmp_path):
    variants = '{name="gold", objective="ce"}, {name="kd", objective="mse"}'
    config = load_config(
        None, overrides(stsb_dir, tiny_teacher_dir, tmp_path / "run", STSB_SETTINGS, variants)
    )
    Pipeline(config).run(until="student")
    teacher_config = json.loads(
        (tmp_path / "run" / "teacher" / "model" / "config.json").read_text()
    )
    assert len(teacher_config["id2label"]) == 1
    assert teacher_config["problem_type"] == "regression"
    for name in ("gold", "kd"):
        folder = tmp_path / "run" / "students" / name / "seed-0"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert math.isfinite(metrics["test_pearson"]) and -1 <= metrics["test_spearman"] <= 1
        logits = (
            np.load(folder / "test_logits.npy") if (folder / "test_logits.npy").exists() else None
        )
        assert logits is None or logits.shape[1] == 1


def test_kl_on_a_regression_task_is_a_config_error(stsb_dir, tiny_teacher_dir, tmp_path):
    from distilrnn.errors import ConfigError

    config = load_config(
        None,
        overrides(
            stsb_dir,
            tiny_teacher_dir,
            tmp_path / "run",
            STSB_SETTINGS,
            '{name="kd", objective="kl"}',
        ),
    )
    with pytest.raises(ConfigError, match="regression"):
        Pipeline(config).run(until="student")


def test_teacher_reads_a_pair_with_its_token_type_ids(tiny_teacher_dir):
    import torch

    from distilrnn import Teacher

    teacher = Teacher.from_pretrained(tiny_teacher_dir)
    # as BERT's tokenizers do (the tiny one leaves them out by default)
    teacher.tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    pairs = [("good film", "the movie is dull"), ("bad plot and weak story", "great fun")]
    encoded = teacher.tokenizer(
        [a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt"
    )
    assert int(encoded["token_type_ids"].max()) == 1
    with torch.no_grad():
        expected = teacher.model(**encoded).logits.numpy()
    np.testing.assert_allclose(teacher.logits(pairs), expected, atol=1e-5)


# prediction files on unlabelled test pairs ----------------------------------------------------
def write_unlabelled(path: Path, rows, header: str) -> Path:
    lines = [header] + [f"{i}\t{a}\t{b}" for i, (a, b, _, _) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_prediction_file_has_teacher_baseline_and_distilled_seed_columns(
    mrpc_dir, tiny_teacher_dir, tmp_path
):
    from typer.testing import CliRunner

    from distilrnn.cli import app

    variants = (
        '{name="base", objective="ce", seeds=[0, 1]}, '
        '{name="kd-a", objective="kl", seeds=[0, 1]}, {name="kd-b", objective="mse"}'
    )
    args = overrides(mrpc_dir, tiny_teacher_dir, tmp_path / "run", MRPC_SETTINGS, variants)
    Pipeline(load_config(None, args)).run(until="student")
    test = write_unlabelled(
        tmp_path / "test.tsv", make_pairs(7, seed=9), "index\t#1 String\t#2 String"
    )
    output = tmp_path / "out" / "test-predictions.tsv"
    command = ["predict-file", str(test), str(output)]
    for override in args:
        command += ["--set", override]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    header = lines[0].split("\t")
    assert header == ["index", "teacher", "baseline/seed-0", "baseline/seed-1"] + [
        f"distilled/seed-{seed}" for seed in ((0, 1) if "kd-a" in result.output else (0,))
    ]
    assert "baseline base" in result.output
    assert len(lines) == 8
    assert all(value in ("0", "1") for line in lines[1:] for value in line.split("\t")[1:])
    again = CliRunner().invoke(app, command)
    assert isinstance(again.exception, DataError) and "exists" in str(again.exception)
    assert output.read_text().splitlines() == lines


def test_regression_prediction_file_holds_scores(stsb_dir, tiny_teacher_dir, tmp_path):
    from distilrnn.prediction_files import write_prediction_file

    variants = '{name="gold", objective="ce"}, {name="kd", objective="mse"}'
    config = load_config(
        None, overrides(stsb_dir, tiny_teacher_dir, tmp_path / "run", STSB_SETTINGS, variants)
    )
    Pipeline(config).run(until="student")
    test = write_unlabelled(tmp_path / "test.tsv", make_pairs(5, 8), "index\tsentence1\tsentence2")
    summary = write_prediction_file(config, test, tmp_path / "p.tsv")
    assert summary["columns"] == ["teacher", "baseline/seed-0", "distilled/seed-0"]
    assert summary["chosen"]["baseline"][0] == "gold"
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 5 and all(math.isfinite(float(v)) for row in rows for v in row[1:])


# regression objectives --------------------------------------------------------------------------
def test_ce_on_gold_scores_is_the_squared_error_of_the_score():
    import torch

    from distilrnn.losses import objective_loss

    predicted = torch.tensor([[1.0], [3.0]])
    gold = torch.tensor([2.0, 5.0])
    assert objective_loss("ce", predicted, labels=gold).item() == pytest.approx((1 + 4) / 2)


def test_mse_on_teacher_scores_ignores_rows_without_gold_in_the_mixed_ce_part():
    import torch

    from distilrnn.losses import objective_loss

    predicted = torch.tensor([[1.0], [3.0]])
    teacher = torch.tensor([[1.0], [1.0]])
    gold = torch.tensor([2.0, float("nan")])  # a generated pair has no gold score
    loss = objective_loss("mse", predicted, labels=gold, teacher_logits=teacher, alpha=0.5).item()
    assert loss == pytest.approx(0.5 * (0 + 4) / 2 + 0.5 * 1.0)


def test_augment_and_distill_take_a_pair_task_through_the_api(mrpc_dir, tiny_teacher_dir):
    from distilrnn import Teacher, augment, distill

    task = load_task(
        mrpc_dir, text_column="#1 String", text_pair_column="#2 String", label_column="Quality"
    )
    teacher = Teacher.from_pretrained(tiny_teacher_dir, max_length=16)
    transfer = augment(task.train.inputs, tokenizer=teacher.tokenizer, n_iter=2, progress=False)
    assert transfer[: len(task.train)] == task.train.inputs and len(transfer) > len(task.train)
    student = distill(
        teacher,
        task,
        transfer=transfer,
        objective="mse",
        pair_design="joint",
        epochs=1,
        hidden_size=8,
        head_hidden_size=8,
        max_length=16,
    )
    assert student.config.pair_design == "joint"
    assert student.predict_logits(task.test.inputs[:3]).shape == (3, 2)
    assert "test_f1" not in student.metrics and "test_accuracy" in student.metrics


def test_a_pair_teacher_bundle_is_refused_until_bundles_carry_token_types(
    mrpc_dir, tiny_teacher_dir, tmp_path
):
    from typer.testing import CliRunner

    from distilrnn.cli import app
    from distilrnn.errors import BundleError

    args = overrides(mrpc_dir, tiny_teacher_dir, tmp_path / "run", MRPC_SETTINGS, '{name="b"}')
    Pipeline(load_config(None, args)).run(until="teacher")
    result = CliRunner().invoke(app, ["export-teacher", str(tmp_path / "run"), str(tmp_path / "t")])
    assert isinstance(result.exception, BundleError) and "token type" in str(result.exception)
    assert not (tmp_path / "t").exists()


def test_a_joint_student_is_compared_with_the_joint_baseline():
    from distilrnn.report import baseline_of

    rows = [
        {"name": "b-siamese", "objective": "ce", "rnn": "lstm", "pair_design": "siamese"},
        {"name": "b-joint", "objective": "ce", "rnn": "lstm", "pair_design": "joint"},
        {"name": "kd-joint", "objective": "mse", "rnn": "lstm", "pair_design": "joint"},
    ]
    assert baseline_of(rows[2], rows)["name"] == "b-joint"


def test_student_command_prints_the_primary_metric_of_a_regression_task(
    stsb_dir, tiny_teacher_dir, tmp_path
):
    from typer.testing import CliRunner

    from distilrnn.cli import app

    args = overrides(stsb_dir, tiny_teacher_dir, tmp_path / "run", STSB_SETTINGS, '{name="g"}')
    command = ["student"]
    for override in args:
        command += ["--set", override]
    result = CliRunner().invoke(app, command, terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "validation pearson" in result.output and "validation -" not in result.output
