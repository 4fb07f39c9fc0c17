"""End to end through the CLI on the tiny fixtures: every stage, then every stage reused."""

import json

import pytest
from conftest import tiny_run_overrides, write_tsv
from typer.testing import CliRunner

from distilrnn.cli import app
from distilrnn.config import ConfigError, load_config
from distilrnn.pipeline import Pipeline
from distilrnn.student import RNNStudent


def cli_args(command, task_dir, teacher_dir, run_dir):
    args = [command]
    for override in tiny_run_overrides(task_dir, teacher_dir, run_dir):
        args += ["--set", override]
    return args


def test_run_end_to_end_twice_reuses_every_stage(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(app, cli_args("run", task_dir, tiny_teacher_dir, run_dir))
    assert first.exit_code == 0, first.output
    assert "reused: nothing" in first.output
    results = json.loads((run_dir / "results.json").read_text())
    names = [row["name"] for row in results["rows"]]
    assert names == ["teacher", "baseline-lstm", "baseline-gru", "distilled-lstm", "distilled-gru"]
    assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in results["rows"])
    assert (run_dir / "results.md").read_text().count("\n| ") >= 6
    weights = run_dir / "students" / "distilled-gru" / "seed-0" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    second = runner.invoke(app, cli_args("run", task_dir, tiny_teacher_dir, run_dir))
    assert second.exit_code == 0, second.output
    assert "built: nothing" in second.output
    assert weights.stat().st_mtime_ns == mtime


def test_changed_student_setting_rebuilds_only_students(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides.append('variant=[{name="distilled-gru", rnn="gru", objective="kl"}]')
    Pipeline(load_config(None, overrides)).run()
    changed = Pipeline(load_config(None, [*overrides, "student.temperature=2.0"]))
    changed.run()
    assert [s.split(":")[0] for s in changed.reused] == ["data", "teacher", "label"]
    assert [s.split(":")[0] for s in changed.built] == ["student"]


def test_changed_data_file_rebuilds_data_stage(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    first = Pipeline(load_config(None, overrides)).data()
    write_tsv(task_dir / "train.tsv", [("good film", 1), ("bad film", 0)])
    second = Pipeline(load_config(None, overrides)).data()
    assert second.fingerprint != first.fingerprint
    assert len(second.value.splits["train"]) == 2


def test_saved_student_loads_without_teacher(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides.append('variant=[{name="solo", objective="ce"}]')
    Pipeline(load_config(None, overrides)).run()
    student_dir = tmp_path / "run" / "students" / "solo" / "seed-0"
    model = RNNStudent.load(student_dir)
    assert model.config.num_labels == 2
    assert (student_dir / "tokenizer.json").is_file()


def test_teacher_with_wrong_label_count_is_rejected(task_dir, tmp_path):
    from conftest import build_tiny_teacher

    teacher = build_tiny_teacher(tmp_path / "three-way", num_labels=3)
    overrides = tiny_run_overrides(task_dir, teacher, tmp_path / "run")
    overrides.append(f'teacher.checkpoint="{teacher}"')
    with pytest.raises(ValueError, match="3 labels but the task has 2"):
        Pipeline(load_config(None, overrides)).run()


def test_fine_tuned_checkpoint_is_used_without_training(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides += [f'teacher.checkpoint="{tiny_teacher_dir}"', 'variant=[{name="b"}]']
    metrics = Pipeline(load_config(None, overrides)).run(until="teacher").teacher.metrics
    assert "train_seconds" not in metrics
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_bad_config_value_exits_with_its_name(tmp_path):
    result = CliRunner().invoke(app, ["data", "--set", "student.pooling=sum"])
    assert result.exit_code != 0
    assert "student.pooling" in str(result.exception)


def test_settings_command_lists_every_section():
    result = CliRunner().invoke(app, ["settings"], terminal_width=200)
    assert result.exit_code == 0
    for name in ("data.path", "teacher.model", "label.batch_size", "student.objective"):
        assert name in result.output


def test_augmented_variant_trains_on_the_transfer_set(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides += [
        "augment.n_iter=3",
        'variant=[{name="plain", objective="mse"}, '
        '{name="augmented", objective="kl", transfer_set="augmented"}]',
    ]
    pipeline = Pipeline(load_config(None, overrides))
    pipeline.run()
    augment = json.loads((tmp_path / "run" / "augment" / "metrics.json").read_text())
    assert augment["train_texts"] == 48
    assert augment["generated_texts"] > 48
    metrics = {
        name: json.loads(
            (tmp_path / "run" / "students" / name / "seed-0" / "metrics.json").read_text()
        )
        for name in ("plain", "augmented")
    }
    assert metrics["plain"]["train_examples"] == 48
    assert metrics["augmented"]["train_examples"] == augment["transfer_texts"]


def test_auto_temperature_is_fitted_on_validation_and_recorded(
    task_dir, tiny_teacher_dir, tmp_path
):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides.append('variant=[{name="soft", objective="kl", temperature="auto"}]')
    Pipeline(load_config(None, overrides)).run()
    fitted = json.loads((tmp_path / "run" / "calibration" / "calibration.json").read_text())
    metrics = json.loads(
        (tmp_path / "run" / "students" / "soft" / "seed-0" / "metrics.json").read_text()
    )
    assert fitted["temperature"] > 0
    assert fitted["validation_nll_scaled"] <= fitted["validation_nll"] + 1e-9
    assert metrics["settings"]["temperature"] == fitted["temperature"]


def test_training_a_subset_labels_the_whole_configs_transfer_set(
    task_dir, tiny_teacher_dir, tmp_path
):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides += [
        "augment.n_iter=3",
        'variant=[{name="base"}, {name="plain", objective="mse"}, '
        '{name="augmented", objective="mse", transfer_set="augmented"}]',
    ]
    subset = Pipeline(load_config(None, overrides), variants=["plain"])
    subset.run()
    labels = json.loads((tmp_path / "run" / "labels" / "metrics.json").read_text())
    augment = json.loads((tmp_path / "run" / "augment" / "metrics.json").read_text())
    assert labels["texts"] == augment["transfer_texts"]
    assert not (tmp_path / "run" / "students" / "base").exists()

    everything = Pipeline(load_config(None, overrides))
    everything.run()
    assert "label:labels" in everything.reused
    assert "student:plain/seed-0" in everything.reused  # trained by the subset run


def test_unknown_variant_in_a_subset_is_named(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    with pytest.raises(ConfigError, match="nope"):
        Pipeline(load_config(None, overrides), variants=["nope"])


def test_a_student_starts_from_another_variant_with_a_factorised_embedding(
    task_dir, tiny_teacher_dir, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides += [
        'variant=[{name="narrow", objective="kl", init_from="wide", embedding_projection=8, '
        'epochs=1}, {name="wide", objective="kl"}]',
    ]
    first = Pipeline(load_config(None, overrides), variants=["narrow"])
    first.run()  # trains "wide" first: "narrow" starts from it
    wide = RNNStudent.load(run_dir / "students" / "wide" / "seed-0")
    narrow = RNNStudent.load(run_dir / "students" / "narrow" / "seed-0")
    assert narrow.config.embedding_dim == 8
    assert wide.config.embedding_dim == tiny_embedding_width(tiny_teacher_dir)
    assert narrow.config.hidden_size == wide.config.hidden_size
    # the fine-tune starts from the factorised wide student: the recurrent weights it did not
    # refit are close to the wide student's (a fresh student would be unrelated)
    hh = "encoder.layers.0.forward_rnn.module.weight_hh_l0"
    drift = (narrow.state_dict()[hh] - wide.state_dict()[hh]).abs().mean()
    assert float(drift) < 0.5 * float(wide.state_dict()[hh].abs().mean())

    again = Pipeline(load_config(None, overrides))
    again.run()
    assert again.built == []
    # changing the student it starts from retrains both
    changed = Pipeline(load_config(None, [*overrides, "student.learning_rate=1e-3"]))
    changed.run()
    assert sorted(changed.built) == ["student:narrow/seed-0", "student:wide/seed-0"]


def tiny_embedding_width(teacher_dir):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(teacher_dir)).hidden_size


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ('[{name="a", init_from="b"}]', "names 'b', which is not a variant"),
        ('[{name="a", init_from="b"}, {name="b", init_from="a"}]', "makes a cycle: a -> b -> a"),
        ('[{name="a", init_from="a"}]', "makes a cycle: a -> a"),
        ('[{name="a", init_from="b"}, {name="b", rnn="gru"}]', "'b' has rnn = 'gru'"),
        (
            '[{name="a", init_from="b", embedding_projection=64}, '
            '{name="b", embedding_projection=32}]',
            "already 32 wide; embedding_projection = 64 must be narrower",
        ),
    ],
)
def test_init_from_is_checked_when_the_config_loads(variants, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"variant={variants}"])


def test_run_until_a_stage_builds_nothing_after_it(task_dir, tiny_teacher_dir, tmp_path):
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, tmp_path / "run")
    overrides.append('variant=[{name="base"}, {name="soft", objective="kl"}]')
    out = Pipeline(load_config(None, overrides)).run(until="label", variants=["soft"])
    assert len(out.labelled) == 48
    assert out.students == [] and out.results is None
    assert not (tmp_path / "run" / "students").exists()
    again = Pipeline(load_config(None, overrides))
    again.run(until="label", variants=["soft"])
    assert again.built == []
    with pytest.raises(ConfigError, match="nope"):
        Pipeline(load_config(None, overrides)).run(variants=["nope"])
