"""Several processes on one run: labelling split across ranks (torchrun, gloo), a 2-rank student,
and the precision setting on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences, tiny_run_overrides

from distilrnn.config_io import load_config
from distilrnn.distributed import owned_shards
from distilrnn.errors import ConfigError
from distilrnn.labeling import load_labelled, predict_logits
from distilrnn.pipeline import Pipeline
from distilrnn.teacher import Teacher
from distilrnn.training import resolve_precision

TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
SHARD_SIZE = 5
# what each rank runs: label the texts of `texts.json` into `out`, in shards of SHARD_SIZE
LABEL_SCRIPT = """
import json, sys
from datasets import Dataset
from distilrnn.labeling import label_texts
from distilrnn.teacher import Teacher
teacher_dir, texts, out, shard_size = sys.argv[1:]
teacher = Teacher.from_pretrained(teacher_dir, max_length=16)
dataset = Dataset.from_dict({"text": json.load(open(texts))})
label_texts(teacher.model, teacher.tokenizer, dataset, __import__("pathlib").Path(out),
            batch_size=4, shard_size=int(shard_size), max_length=16)
"""


def _texts(count: int = 23) -> list[str]:
    return [text for text, _ in make_sentences(count, seed=3)]


def _two_ranks(teacher_dir: Path, texts: list[str], out: Path, tmp_path: Path) -> np.ndarray:
    script, texts_file = tmp_path / "label.py", tmp_path / "texts.json"
    script.write_text(LABEL_SCRIPT)
    texts_file.write_text(json.dumps(texts))
    command = [*TORCHRUN, str(script), str(teacher_dir), str(texts_file), str(out), str(SHARD_SIZE)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return np.asarray(load_labelled(out)["teacher_logits"])


def test_rank_r_of_n_owns_shards_r_r_plus_n_and_so_on():
    assert owned_shards(5, 0, 2) == [0, 2, 4]
    assert owned_shards(5, 1, 2) == [1, 3]
    assert owned_shards(5, 0, 1) == [0, 1, 2, 3, 4]


def _one_process_alone(teacher_dir: Path, texts: list[str], out: Path, tmp_path: Path):
    """The same labelling in one plain process with the ranks' thread count (one), so that
    only the number of processes differs."""
    script, texts_file = tmp_path / "label-one.py", tmp_path / "texts-one.json"
    script.write_text(LABEL_SCRIPT)
    texts_file.write_text(json.dumps(texts))
    command = [sys.executable, str(script), str(teacher_dir), str(texts_file), str(out)]
    done = subprocess.run(
        [*command, str(SHARD_SIZE)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return np.asarray(load_labelled(out)["teacher_logits"])


def test_labels_from_two_ranks_equal_one_process_logit_for_logit(tiny_teacher_dir, tmp_path):
    texts = _texts()
    alone = _one_process_alone(tiny_teacher_dir, texts, tmp_path / "one", tmp_path)
    together = _two_ranks(tiny_teacher_dir, texts, tmp_path / "two", tmp_path)
    assert together.shape == (len(texts), 2)
    np.testing.assert_array_equal(together, alone)
    assert sorted(p.name for p in (tmp_path / "two" / "shards").iterdir()) == [
        f"shard-{n:05d}" for n in range(5)
    ]


def test_labelling_killed_on_both_ranks_resumes_with_two_ranks_to_the_same_logits(
    tiny_teacher_dir, tmp_path
):
    texts = _texts()
    alone = _one_process_alone(tiny_teacher_dir, texts, tmp_path / "one", tmp_path)
    partial = tmp_path / "partial"
    _one_process_alone(tiny_teacher_dir, texts, partial, tmp_path)
    shards = partial / "shards"
    # a kill of rank 1 before shard 1 and of rank 0 while it wrote shard 2
    for number in (1, 2):
        (shards / f"shard-{number:05d}").rename(shards / f"shard-{number:05d}.tmp")
    kept = {n: (shards / f"shard-{n:05d}").stat().st_ino for n in (0, 3, 4)}
    resumed = _two_ranks(tiny_teacher_dir, texts, partial, tmp_path)
    np.testing.assert_array_equal(resumed, alone)
    assert {n: (shards / f"shard-{n:05d}").stat().st_ino for n in (0, 3, 4)} == kept
    assert not list(shards.glob("*.tmp"))


def test_two_rank_student_produces_a_complete_stage(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        *tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir),
        "student.epochs=1",
        'variant=[{name="kl", objective="kl", temperature=2.0}]',
    ]
    Pipeline(load_config(None, overrides)).run(until="label")
    command = [*TORCHRUN, "-m", "distilrnn", "student"]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    again = Pipeline(load_config(None, overrides))  # verified against its manifest
    again.run(until="student")
    assert again.built == []
    student = run_dir / "students" / "kl" / "seed-0"
    metrics = json.loads((student / "metrics.json").read_text())
    assert 0.0 <= metrics["validation_accuracy"] <= 1.0
    # data-parallel: 48 texts in batches of 16 on each of 2 ranks are 2 steps (1 rank: 3)
    assert metrics["log_history"][-1]["step"] == 2
    assert not list(run_dir.glob("students/*/*.tmp"))


def test_two_rank_teacher_fine_tunes_into_a_complete_stage(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    command = [*TORCHRUN, "-m", "distilrnn", "teacher"]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("teacher at ") == 1  # rank 0 alone reports

    again = Pipeline(load_config(None, overrides))  # verified against its manifest
    again.run(until="teacher")
    assert again.built == []
    metrics = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    assert 0.0 <= metrics["validation_accuracy"] <= 1.0
    assert not list(run_dir.glob(".work/teacher-*"))  # checkpoints removed once, by rank 0


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_fp16_on_cpu_is_a_config_error_naming_the_setting(task_dir, tiny_teacher_dir, tmp_path):
    overrides = [*tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")]
    config = load_config(None, [*overrides, 'label.precision="fp16"'])
    with pytest.raises(ConfigError, match=r"fp16.*needs a GPU"):
        Pipeline(config).run(until="label")


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match=r"teacher\.precision"):
        load_config(None, ['teacher.precision="fp8"'])


def test_auto_precision_on_cpu_rebuilds_nothing(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    Pipeline(load_config(None, overrides)).run(until="label")
    auto = ['teacher.precision="auto"', 'label.precision="auto"']
    again = Pipeline(load_config(None, [*overrides, *auto]))
    again.run(until="label")
    assert again.built == []


def test_bf16_labelling_runs_under_autocast_close_to_fp32(tiny_teacher_dir):
    teacher = Teacher.from_pretrained(str(tiny_teacher_dir), max_length=16)
    texts = _texts(12)
    full = predict_logits(teacher.model, teacher.tokenizer, texts, 4, 16)
    mixed = predict_logits(teacher.model, teacher.tokenizer, texts, 4, 16, precision="bf16")
    assert mixed.dtype == np.float32
    assert not np.array_equal(mixed, full)  # bf16 arithmetic really ran
    np.testing.assert_allclose(mixed, full, atol=0.05)
