"""Stage records and run formats: a run folder of the first format is reused, not rebuilt;
a folder that is not a run is refused; a newer format is named."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import tiny_run_overrides

from distilrnn.config import load_config
from distilrnn.errors import DataError, RunFolderError
from distilrnn.pipeline import Pipeline
from distilrnn.run import RUN_VERSION, Run
from distilrnn.stages import settings_of_version
from distilrnn.student import RNNStudent


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
    """Rewrite a finished run as the first run format wrote it: no marker, stage records
    without a version, each with the fingerprint that format gave it (its settings without
    those added later, the stages it reads by their first-format fingerprints), and the label
    shards in the folder named after that fingerprint."""
    pipeline = Pipeline(load_config(None, overrides))
    variant = pipeline.config.variants[0]
    built = {
        "data": pipeline.data(),
        "teacher": pipeline.teacher(),
        "labels": pipeline.label(),
        "students/solo/seed-0": pipeline.student(variant, 0),
    }
    (run_dir / "run.json").unlink()
    for folder, stage in built.items():
        record_path = run_dir / folder / "stage.json"
        record = json.loads(record_path.read_text())
        record.pop("run_version")
        record.pop("manifest", None)
        record["fingerprint"] = stage.legacy[1]
        if folder.startswith("students"):
            record["settings"] = settings_of_version("student", record["settings"], 1)
        record_path.write_text(json.dumps(record))
    (shards,) = (run_dir / "labels").glob("logits-*")
    shards.rename(shards.with_name(f"logits-{built['labels'].legacy[1][:12]}"))


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


# what a stage reuses is verified --------------------------------------------------------------
def _kl_run(task_dir, tiny_teacher_dir, run_dir, *extra):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides += ['variant=[{name="solo", objective="kl", temperature=2.0}]', *extra]
    return overrides


def test_a_deleted_label_shard_rebuilds_the_label_stage_and_its_students(
    task_dir, tiny_teacher_dir, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = _kl_run(task_dir, tiny_teacher_dir, run_dir, "label.shard_size=16")
    Pipeline(load_config(None, overrides)).run(until="student")
    shard = next((run_dir / "labels").glob("logits-*/shards/shard-00001"))
    shutil.rmtree(shard)

    again = Pipeline(load_config(None, overrides))
    out = again.run(until="student")
    assert sorted(again.built) == ["label:labels", "student:solo/seed-0"]
    assert shard.is_dir()
    assert len(out.labelled) == 48
    metrics = json.loads((run_dir / "students" / "solo" / "seed-0" / "metrics.json").read_text())
    assert metrics["train_examples"] == 48


def test_truncated_student_weights_rebuild_that_student(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides.append('variant=[{name="a"}, {name="b"}]')
    Pipeline(load_config(None, overrides)).run(until="student")
    weights = run_dir / "students" / "b" / "seed-0" / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(size // 2)

    again = Pipeline(load_config(None, overrides))
    again.run(until="student")
    assert again.built == ["student:b/seed-0"]
    assert weights.stat().st_size == size
    RNNStudent.load(weights.parent)


def test_a_record_without_a_manifest_is_still_reused(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = _kl_run(task_dir, tiny_teacher_dir, run_dir)
    Pipeline(load_config(None, overrides)).run(until="student")
    for record_path in run_dir.rglob("stage.json"):
        record = json.loads(record_path.read_text())
        record.pop("manifest")
        record_path.write_text(json.dumps(record))
    (run_dir / "students" / "solo" / "seed-0" / "metrics.json").unlink()  # trusted, unchecked

    again = Pipeline(load_config(None, overrides))
    again.run(until="student")
    assert again.built == []


# --force starts clean ---------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_force_removes_the_stages_checkpoints_before_building(
    stage, task_dir, tiny_teacher_dir, tmp_path, monkeypatch
):
    import distilrnn.distillation
    import distilrnn.stage_builds

    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides.append('variant=[{name="solo"}]')
    config = load_config(None, overrides)
    first = Pipeline(config)
    first.run(until="student")
    built = first.teacher() if stage == "teacher" else first.student(config.variants[0], 0)
    stale = run_dir / ".work" / f"{stage}-{built.fingerprint[:12]}" / "checkpoint-9"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{half-writ")

    seen = []
    module, name = (
        (distilrnn.stage_builds, "finetune")
        if stage == "teacher"
        else (distilrnn.distillation, "train_student")
    )
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(stale.exists())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    forced = Pipeline(load_config(None, overrides), force=(stage,))
    forced.run(until=stage)
    assert seen == [False]


# concurrent commands ------------------------------------------------------------------------
def test_two_commands_building_one_student_build_it_once(
    task_dir, tiny_teacher_dir, tmp_path, monkeypatch, caplog
):
    import distilrnn.distillation

    run_dir = tmp_path / "run"
    overrides = _kl_run(task_dir, tiny_teacher_dir, run_dir)
    Pipeline(load_config(None, overrides)).run(until="label")

    first_building, second_waiting = threading.Event(), threading.Event()
    calls = []
    real = distilrnn.distillation.train_student

    def train_student(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 1:  # the first command holds the stage until the second waits for it
            first_building.set()
            second_waiting.wait(timeout=60)
        return real(*args, **kwargs)

    class Waiting(logging.Handler):
        def emit(self, record):
            if "held by another command" in record.getMessage():
                second_waiting.set()

    monkeypatch.setattr(distilrnn.distillation, "train_student", train_student)
    caplog.set_level(logging.INFO, logger="distilrnn.stages")
    handler = Waiting()
    logging.getLogger("distilrnn.stages").addHandler(handler)
    try:
        pipelines = [Pipeline(load_config(None, overrides)) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(pipelines[0].run, "student")
            assert first_building.wait(timeout=120)
            second = pool.submit(pipelines[1].run, "student")
            first.result(), second.result()
    finally:
        logging.getLogger("distilrnn.stages").removeHandler(handler)

    assert len(calls) == 1
    assert pipelines[0].built == ["student:solo/seed-0"]
    assert pipelines[1].built == [] and "student:solo/seed-0" in pipelines[1].reused
    again = Pipeline(load_config(None, overrides))
    again.run(until="student")
    assert again.built == []


@pytest.mark.parametrize("content", ["{not json", '{"names": []}'])
def test_a_corrupt_label_names_file_is_one_error_naming_it(tmp_path, content):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.json").write_text(content)
    with pytest.raises(RunFolderError, match=r"labels\.json is corrupt"):
        Run(tmp_path).label_names()


def test_a_new_folder_holding_only_a_half_written_marker_is_still_new(tmp_path):
    """A second command starting on a brand-new run folder may find the first command's
    marker still being written: that folder is not a user's folder of other files."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".run.json.abc123").write_text("")
    assert Run(folder).check().root == folder
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderError, match="not a distilrnn run folder"):
        Run(folder).check()
