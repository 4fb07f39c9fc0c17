"""Experiment tracking: the Trainer reports to TensorBoard, offline, in the folder given."""

import pytest

from distilrnn.config import DataConfig
from distilrnn.data import load_task
from distilrnn.teacher import Teacher


def test_teacher_finetuning_writes_tensorboard_event_files(tiny_teacher_dir, task_dir, tmp_path):
    pytest.importorskip("tensorboard")
    task = load_task(DataConfig(path=str(task_dir)))
    Teacher.finetune(
        tiny_teacher_dir,
        task,
        output_dir=tmp_path / "work",
        logging_dir=tmp_path / "logs",
        report_to="tensorboard",
        epochs=1,
        max_length=16,
        batch_size=16,
    )
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert not (tmp_path / "work" / "runs").exists()  # not transformers' default folder
