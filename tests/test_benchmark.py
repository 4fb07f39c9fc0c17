"""Teacher against student on the tiny fixtures: what is measured and recorded, never which is
faster (timings belong in benchmarks/, not in assertions)."""

import json
import shutil

import pytest
import torch
from conftest import VOCAB, make_sentences
from datasets import Dataset, DatasetDict
from typer.testing import CliRunner

from distilrnn.bench import benchmark_models, benchmark_run, markdown_table
from distilrnn.cli import app
from distilrnn.config import BenchmarkSettings, StudentSettings, load_config
from distilrnn.data import Task
from distilrnn.errors import ConfigError
from distilrnn.run import Run
from distilrnn.student import RNNStudent, StudentConfig
from distilrnn.student.build import build_student
from distilrnn.teacher import load_teacher

OPTIONS = {"max_length": 16, "batch_size": 8, "warmup": 1, "epoch_size": 1000, "progress": False}


def texts(count: int, seed: int) -> list[str]:
    return [text for text, _ in make_sentences(count, seed)]


@pytest.fixture(scope="module")
def student_dir(tiny_teacher_dir, tmp_path_factory):
    settings = StudentSettings(hidden_size=16, head_hidden_size=16)
    model = build_student(settings, tiny_teacher_dir, num_labels=2, pad_token_id=0)
    directory = tmp_path_factory.mktemp("student")
    model.save(directory)
    return directory


@pytest.fixture(scope="module")
def results(tiny_teacher_dir, student_dir):
    return benchmark_models(
        tiny_teacher_dir, student_dir, texts(12, 3), texts(24, 4), train_sample=20, **OPTIONS
    )


def test_latency_is_positive_with_p90_at_least_p50_for_each_thread_count(results):
    for name in ("teacher", "student"):
        assert sorted(results[name]["latency_ms"]) == ["1", "2"]
        for latency in results[name]["latency_ms"].values():
            assert 0 < latency["p50"] <= latency["p90"]


def test_throughput_is_positive_for_each_thread_count(results):
    for name in ("teacher", "student"):
        assert sorted(results[name]["throughput"]) == ["1", "2"]
        assert all(value > 0 for value in results[name]["throughput"].values())


def test_ratios_are_teacher_over_student_quotients(results):
    teacher, student, ratios = results["teacher"], results["student"], results["ratios"]
    for count in ("1", "2"):
        latency = teacher["latency_ms"][count]["p50"] / student["latency_ms"][count]["p50"]
        assert ratios["latency_p50"][count] == pytest.approx(latency)
        throughput = student["throughput"][count] / teacher["throughput"][count]
        assert ratios["throughput"][count] == pytest.approx(throughput)
    epoch = teacher["train"]["seconds_per_epoch"] / student["train"]["seconds_per_epoch"]
    assert ratios["train_epoch"] == pytest.approx(epoch)


def test_training_time_is_extrapolated_from_the_sample_to_the_epoch(results):
    assert results["inputs"]["train_sample"] == 20
    for name, batch_size in (("teacher", 32), ("student", 64)):
        train = results[name]["train"]
        assert train["batch_size"] == batch_size
        assert train["seconds_per_1000"] > 0
        assert train["seconds_per_epoch"] == pytest.approx(train["seconds_per_1000"])  # 1000


def test_sizes_match_the_models_parameter_counts(results, tiny_teacher_dir, student_dir):
    teacher, _ = load_teacher(str(tiny_teacher_dir))
    total = sum(p.numel() for p in teacher.parameters())
    assert results["teacher"]["parameters"]["total"] == total
    assert results["teacher"]["parameters"]["trainable"] == total
    student = RNNStudent.load(student_dir).parameter_counts()
    assert results["student"]["parameters"] == student
    assert student["trainable"] == student["total"] - student["embedding"]  # frozen embedding
    assert results["teacher"]["size_bytes"] > 0 and results["student"]["size_bytes"] > 0


def test_markdown_table_names_both_models(results):
    table = markdown_table(results)
    assert "| teacher |" in table and "| student |" in table
    assert table.count("| speed-up |") == 3  # one row per thread count, one for training


def test_thread_count_is_restored_after_the_call(tiny_teacher_dir, student_dir):
    previous = torch.get_num_threads()
    torch.set_num_threads(3)  # neither a timed count nor the training count
    try:
        benchmark_models(tiny_teacher_dir, student_dir, texts(4, 5), texts(8, 6), **OPTIONS)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)


def test_zero_train_sample_skips_training(tiny_teacher_dir, student_dir):
    skipped = benchmark_models(
        tiny_teacher_dir, student_dir, texts(4, 5), texts(8, 6), train_sample=0, **OPTIONS
    )
    assert skipped["teacher"]["train"] is None and skipped["ratios"]["train_epoch"] is None
    assert "s / epoch" not in markdown_table(skipped)


def test_missing_student_folder_error_names_the_path(tiny_teacher_dir, tmp_path):
    missing = tmp_path / "no-student"
    with pytest.raises(FileNotFoundError, match="no-student"):
        benchmark_models(tiny_teacher_dir, missing, texts(4, 5), [], **OPTIONS)


def test_empty_texts_raise(tiny_teacher_dir, student_dir):
    with pytest.raises(ValueError, match="empty"):
        benchmark_models(tiny_teacher_dir, student_dir, [], texts(8, 6), **OPTIONS)


def test_student_of_another_vocabulary_is_rejected_naming_both_folders(tiny_teacher_dir, tmp_path):
    other = tmp_path / "other-student"
    RNNStudent(StudentConfig(vocab_size=len(VOCAB) + 1, embedding_dim=8, hidden_size=4)).save(other)
    with pytest.raises(ValueError, match="other-student") as error:
        benchmark_models(tiny_teacher_dir, other, texts(4, 5), [], **OPTIONS)
    assert str(tiny_teacher_dir) in str(error.value)


@pytest.fixture
def run_dir(tiny_teacher_dir, student_dir, tmp_path):
    """A run folder with data, a teacher and one student `solo` of seed 0."""
    run = Run(tmp_path / "run")
    split = Dataset.from_dict({"text": texts(6, 7), "label": [0, 1] * 3})
    Task(DatasetDict(train=split, validation=split, test=split), ["0", "1"]).save(run.data_dir)
    shutil.copytree(tiny_teacher_dir, run.teacher_model_dir)
    shutil.copytree(student_dir, run.student_dir("solo", 0))
    return run.root


def _solo_config(run_dir):
    overrides = [f'run_dir="{run_dir}"', 'variant=[{name="solo"}]', "teacher.max_length=16"]
    return load_config(None, overrides)


def test_benchmark_run_writes_the_variants_json_into_the_run_dir(run_dir):
    settings = BenchmarkSettings(sample=6, threads=[1])
    results = benchmark_run(_solo_config(run_dir), settings, progress=False)
    saved = json.loads(Run(run_dir).benchmark_file("solo").read_text())
    assert saved["run"] == results["run"] == {"run_dir": str(run_dir), "variant": "solo", "seed": 0}
    assert saved["inputs"]["epoch_size"] == 6
    assert saved["student_rnn"] == "lstm"
    assert list(saved["student"]["latency_ms"]) == ["1"]


def test_benchmark_run_names_a_variant_the_config_lacks(run_dir):
    with pytest.raises(ConfigError, match="no variant 'other'"):
        benchmark_run(_solo_config(run_dir), BenchmarkSettings(student="other"))


def test_benchmark_settings_reject_a_zero_thread_count():
    with pytest.raises(ValueError, match=r"benchmark\.threads"):
        BenchmarkSettings(threads=[0])


def test_cli_writes_the_variants_benchmark_json_into_the_run_dir(run_dir):
    args = ["benchmark", "--run-dir", str(run_dir), "--set", 'variant=[{name="solo"}]']
    args += ["--set", "teacher.max_length=16", "--sample", "6", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(Run(run_dir).benchmark_file("solo").read_text())
    assert saved["run"] == {"run_dir": str(run_dir), "variant": "solo", "seed": 0}
    assert "| student |" in result.output


def test_cli_names_the_missing_folder_and_the_stage_to_run(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "--run-dir", str(tmp_path / "empty-run")])
    assert result.exit_code != 0
    assert "empty-run" in str(result.exception)
    assert "distilrnn data" in str(result.exception)
