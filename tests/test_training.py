"""Shared Trainer settings: a diverging training stops with a named error, and a killed
training resumes from its last complete checkpoint."""

import json
import logging
import shutil

import pytest

from distilrnn.config import DataConfig, StudentSettings
from distilrnn.data import load_task
from distilrnn.errors import StudentError, TeacherError
from distilrnn.training import TrainingClock, checkpoint_complete, last_complete_checkpoint


def _student_settings(**changes):
    values = {
        "hidden_size": 8,
        "head_hidden_size": 8,
        "batch_size": 16,
        "max_length": 16,
        "epochs": 1,
    }
    return StudentSettings(**{**values, **changes})


def _train(settings, task, teacher_dir, work_dir, tmp_path, name="base"):
    from distilrnn.distillation import train_student

    return train_student(
        settings,
        3,
        task.splits["train"],
        task,
        teacher_dir,
        tmp_path / "students" / name / "seed-3",
        work_dir,
        name=name,
    )


def test_a_diverging_student_names_variant_seed_and_step_and_saves_nothing(
    tiny_teacher_dir, task_dir, tmp_path
):
    task = load_task(DataConfig(path=str(task_dir)))
    settings = _student_settings(objective="ce", learning_rate=float("inf"))
    work_dir = tmp_path / "work"
    with pytest.raises(StudentError, match=r"student wide-gru seed 3 diverged by step \d+"):
        _train(settings, task, tiny_teacher_dir, work_dir, tmp_path, name="wide-gru")
    assert not (tmp_path / "students").exists()
    assert not list(work_dir.glob("checkpoint-*"))


def test_a_diverging_teacher_names_model_seed_and_step(tiny_teacher_dir, task_dir, tmp_path):
    from distilrnn.teacher import Teacher

    task = load_task(DataConfig(path=str(task_dir)))
    with pytest.raises(TeacherError, match=r"teacher .* seed 0 diverged by step \d+"):
        Teacher.finetune(
            tiny_teacher_dir,
            task,
            output_dir=tmp_path / "work",
            epochs=1,
            max_length=16,
            batch_size=16,
            learning_rate=float("inf"),
            seed=0,
        )
    assert not list((tmp_path / "work").glob("checkpoint-*"))


def _half_written_copy(checkpoint, step):
    """A newer checkpoint killed while written: trainer_state.json (written last) truncated."""
    broken = checkpoint.with_name(f"checkpoint-{step}")
    shutil.copytree(checkpoint, broken)
    state = broken / "trainer_state.json"
    state.write_bytes(state.read_bytes()[:20])
    return broken


def _checkpoints(work_dir):
    return sorted(work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def test_resume_skips_a_half_written_checkpoint_and_training_finishes(
    tiny_teacher_dir, task_dir, tmp_path, caplog
):
    from distilrnn.distillation import fit_student
    from distilrnn.teacher import load_tokenizer

    task = load_task(DataConfig(path=str(task_dir)))
    tokenizer = load_tokenizer(str(tiny_teacher_dir))
    work_dir = tmp_path / "work"
    first = _student_settings(objective="ce", eval_steps=1)  # 3 steps, a checkpoint each
    args = (task.splits["train"], task, tiny_teacher_dir, tokenizer, work_dir)
    fit_student(first, 0, *args)
    complete = _checkpoints(work_dir)[-1]
    assert complete.name == "checkpoint-3"
    broken = _half_written_copy(complete, 4)
    assert not checkpoint_complete(broken)
    assert last_complete_checkpoint(work_dir) == complete
    assert not broken.exists()  # removed, so the resumed training writes it afresh

    _half_written_copy(complete, 4)
    clock = complete / TrainingClock.FILE  # each checkpoint keeps the seconds run up to it
    assert 0 < json.loads(clock.read_text())["seconds"] < 600
    clock.write_text(json.dumps({"seconds": 1000.0}))  # as if the first run had taken longer
    with caplog.at_level(logging.INFO):
        _, metrics, _ = fit_student(
            _student_settings(objective="ce", eval_steps=1, epochs=2), 0, *args
        )
    assert "skipping incomplete checkpoint" in caplog.text
    assert "resuming from checkpoint-3" in caplog.text
    steps = [entry["step"] for entry in metrics["log_history"] if "eval_accuracy" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-3 from the resumed state, 4-6 trained now
    assert all(checkpoint_complete(path) for path in _checkpoints(work_dir))
    # the seconds before the kill count: a resumed training reports its whole time
    assert 1000 < metrics["train_seconds"] < 1600
    assert "train_seconds_counted_from" not in metrics


def test_a_checkpoint_without_its_seconds_is_resumed_and_says_what_was_counted(
    tiny_teacher_dir, task_dir, tmp_path
):
    from distilrnn.distillation import fit_student
    from distilrnn.teacher import load_tokenizer

    task = load_task(DataConfig(path=str(task_dir)))
    tokenizer = load_tokenizer(str(tiny_teacher_dir))
    work_dir = tmp_path / "work"
    args = (task.splits["train"], task, tiny_teacher_dir, tokenizer, work_dir)
    fit_student(_student_settings(objective="ce", eval_steps=1), 0, *args)
    for checkpoint in _checkpoints(work_dir):  # as a checkpoint written before the clock
        (checkpoint / TrainingClock.FILE).unlink()
    _, metrics, _ = fit_student(_student_settings(objective="ce", eval_steps=1, epochs=2), 0, *args)
    assert metrics["train_seconds_counted_from"] == "checkpoint-3"
    assert 0 < metrics["train_seconds"] < 600


@pytest.mark.parametrize("saved", [None, "not json", '{"seconds": "soon"}', '{"seconds": -5}'])
def test_a_clock_without_sound_seconds_counts_from_zero_and_says_so(tmp_path, saved):
    if saved is not None:
        (tmp_path / TrainingClock.FILE).write_text(saved)
    clock = TrainingClock(tmp_path)
    assert not clock.known
    assert 0 <= clock.seconds < 60
    assert TrainingClock(None).known


def test_a_checkpoint_with_truncated_weights_is_not_complete(tiny_teacher_dir, task_dir, tmp_path):
    from distilrnn.distillation import fit_student
    from distilrnn.teacher import load_tokenizer

    task = load_task(DataConfig(path=str(task_dir)))
    tokenizer = load_tokenizer(str(tiny_teacher_dir))
    work_dir = tmp_path / "work"
    settings = _student_settings(objective="ce", eval_steps=1)
    fit_student(settings, 0, task.splits["train"], task, tiny_teacher_dir, tokenizer, work_dir)
    older, newest = _checkpoints(work_dir)[-2:]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert not checkpoint_complete(newest)
    assert last_complete_checkpoint(work_dir) == older


def test_no_work_folder_has_no_checkpoint(tmp_path):
    assert last_complete_checkpoint(tmp_path / "missing") is None
