"""Stage records and run formats: a run folder of the first format is reused, not rebuilt;
a folder that is not a run is refused; a newer format is named."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_run_overrides

from distilrnn.config import load_config
from distilrnn.errors import DataError, RunFolderError
from distilrnn.pipeline import Pipeline
from distilrnn.run import RUN_VERSION, Run
from distilrnn.stages import fingerprint, settings_of_version


def test_settings_of_the_first_format_leave_out_what_it_did_not_know():
    values = {"rnn": "lstm", "embedding_projection": 0, "init_from": "", "train_layers": "all"}
    assert settings_of_version("student", values, 1) == {"rnn": "lstm"}
    narrowed = {**values, "embedding_projection": 64}
    assert settings_of_version("student", narrowed, 1) == {
        "rnn": "lstm",
        "embedding_projection": 64,
    }
    assert settings_of_version("student", values, RUN_VERSION) == values


def _as_first_format(run_dir, overrides):
    """Rewrite a finished run as the first run format wrote it: no marker, and stage records
    without a version whose student fingerprints leave out the later settings."""
    config = load_config(None, overrides)
    (run_dir / "run.json").unlink()
    for record_path in run_dir.rglob("stage.json"):
        record = json.loads(record_path.read_text())
        record.pop("run_version")
        record_path.write_text(json.dumps(record))
    student = run_dir / "students" / "solo" / "seed-0" / "stage.json"
    record = json.loads(student.read_text())
    pipeline = Pipeline(config)
    inputs = [
        pipeline.data().fingerprint,
        pipeline.teacher().fingerprint,
        pipeline.label().fingerprint,
    ]
    old = settings_of_version("student", record["settings"], 1)
    record.update(fingerprint=fingerprint("student", inputs, old, 0), settings=old)
    student.write_text(json.dumps(record))


def test_a_run_of_the_first_format_is_reused_and_upgraded(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides.append('variant=[{name="solo", objective="kl", temperature=2.0}]')
    Pipeline(load_config(None, overrides)).run(until="student")
    weights = run_dir / "students" / "solo" / "seed-0" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    _as_first_format(run_dir, overrides)

    again = Pipeline(load_config(None, overrides))
    again.run(until="student")
    assert again.built == []
    assert weights.stat().st_mtime_ns == mtime
    assert Run(run_dir).version == RUN_VERSION
    record = json.loads((weights.parent / "stage.json").read_text())
    assert record["run_version"] == RUN_VERSION


def test_a_folder_of_other_files_is_not_used_as_a_run(task_dir, tiny_teacher_dir, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "mine")
    with pytest.raises(RunFolderError, match="not a distilrnn run folder"):
        Pipeline(load_config(None, overrides)).run(until="data")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_run_of_a_newer_format_is_named(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"format": "distilrnn-run", "version": 99}))
    with pytest.raises(RunFolderError, match="newer distilrnn"):
        Run(tmp_path).open()


def test_a_variant_name_cannot_leave_the_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="variant name"):
        Run(tmp_path).student_dir("../../elsewhere", 0)


def test_reading_a_run_of_a_newer_format_is_refused_too(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"format": "distilrnn-run", "version": 99}))
    with pytest.raises(RunFolderError, match="newer distilrnn"):
        Run(tmp_path).teacher()


def test_a_bad_data_path_leaves_no_run_folder_behind(tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(tmp_path / "missing", tiny_teacher_dir, tmp_path / "run")
    with pytest.raises(DataError, match="missing"):
        Pipeline(load_config(None, overrides)).run(until="data")
    assert not (tmp_path / "run").exists()
