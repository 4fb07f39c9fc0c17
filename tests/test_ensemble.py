"""Teacher ensembles: members fine-tuned with other seeds or given as checkpoints, combined into
the logits the students learn; the main teacher stays as it was."""

import json
import shutil

import numpy as np
import pytest
from conftest import build_tiny_teacher, tiny_run_overrides

from distilrnn.calibration import calibrate, softmax
from distilrnn.config import load_config
from distilrnn.data import Task
from distilrnn.ensemble import TeacherEnsemble, combine_logits
from distilrnn.errors import ConfigError, TeacherError
from distilrnn.labeling import load_labelled
from distilrnn.pipeline import Pipeline
from distilrnn.prediction_files import write_prediction_file
from distilrnn.teacher import Teacher

TEXTS = ["good film", "the plot is very dull", "a fun and moving story", "awful", "it is quite"]
FINETUNE = {"epochs": 1, "batch_size": 16, "max_length": 16, "learning_rate": 1e-3}


def test_probability_ensemble_is_the_log_of_the_mean_softmax():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(6, 3)) * 4, rng.normal(size=(6, 3))
    combined = combine_logits([first, second], "probabilities")
    mean = (softmax(first) + softmax(second)) / 2
    np.testing.assert_allclose(combined, np.log(mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(softmax(combined), mean, atol=1e-6)


def test_logit_ensemble_is_the_mean_logit_and_a_regression_ensemble_the_mean_score():
    first, second = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([[3.0, 0.0], [-0.5, 1.0]])
    np.testing.assert_allclose(combine_logits([first, second], "logits"), (first + second) / 2)
    scores = [np.array([[1.0], [4.0]]), np.array([[2.0], [5.0]])]
    for combine in ("probabilities", "logits"):
        np.testing.assert_allclose(combine_logits(scores, combine), [[1.5], [4.5]])


def test_a_confident_member_keeps_the_combined_logits_finite():
    sure, unsure = np.array([[2000.0, -2000.0]]), np.array([[0.0, 0.0]])
    combined = combine_logits([sure, unsure], "probabilities")
    assert np.isfinite(combined).all()
    np.testing.assert_allclose(softmax(combined), [[0.75, 0.25]], atol=1e-6)


@pytest.fixture(scope="module")
def two_members(tiny_teacher_dir, tmp_path_factory):
    """Two tiny teachers fine-tuned on the tiny task with different seeds."""
    from conftest import make_sentences, write_tsv

    from distilrnn.config import DataConfig
    from distilrnn.data import load_task

    folder = tmp_path_factory.mktemp("ensemble-task")
    write_tsv(folder / "train.tsv", make_sentences(48, seed=1))
    write_tsv(folder / "dev.tsv", make_sentences(24, seed=2))
    task = load_task(DataConfig(path=str(folder)))
    members = [Teacher.finetune(tiny_teacher_dir, task, seed=s, **FINETUNE) for s in (1, 2)]
    return task, members


def test_ensemble_of_two_seeds_combines_their_logits(two_members):
    _, (first, second) = two_members
    one, two = first.logits(TEXTS), second.logits(TEXTS)
    assert not np.allclose(one, two, atol=1e-3)  # different seeds, different teachers
    probabilities = TeacherEnsemble([first, second]).logits(TEXTS)
    mixture = np.log((softmax(one) + softmax(two)) / 2)
    np.testing.assert_allclose(probabilities, mixture, rtol=1e-4, atol=1e-5)
    logits = TeacherEnsemble([first, second], combine="logits").logits(TEXTS)
    np.testing.assert_allclose(logits, (one + two) / 2, rtol=1e-5, atol=1e-6)


def test_ensemble_evaluates_its_combined_prediction(two_members):
    task, members = two_members
    ensemble = TeacherEnsemble(members)
    scores = ensemble.evaluate(task.test)
    logits = ensemble.logits(task.test.texts)
    expected = np.mean(logits.argmax(-1) == np.asarray(task.test.labels))
    assert scores["accuracy"] == pytest.approx(expected)
    assert scores["examples"] == len(task.test.texts)


def test_ensemble_refuses_a_member_of_another_label_count(tiny_teacher_dir, tmp_path):
    three = build_tiny_teacher(tmp_path / "three-way", num_labels=3)
    with pytest.raises(TeacherError, match="three-way"):
        TeacherEnsemble.from_pretrained([tiny_teacher_dir, three])


def other_vocabulary_teacher(source, directory):
    """The tiny teacher with a tokenizer whose ids of `good` and `bad` are swapped."""
    shutil.copytree(source, directory)
    spec = json.loads((directory / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["good"], vocab["bad"] = vocab["bad"], vocab["good"]
    (directory / "tokenizer.json").write_text(json.dumps(spec))
    return directory


def ensemble_overrides(task_dir, teacher_dir, run_dir, *extra):
    overrides = tiny_run_overrides(task_dir, teacher_dir, run_dir)
    variants = 'variant=[{name="soft", objective="kl", temperature="auto"}, {name="base"}]'
    return [*overrides, variants, *extra]


def test_a_member_of_other_labels_is_a_config_error_naming_it(task_dir, tiny_teacher_dir, tmp_path):
    three = build_tiny_teacher(tmp_path / "three-way", num_labels=3)
    overrides = ensemble_overrides(
        task_dir,
        tiny_teacher_dir,
        tmp_path / "run",
        f'teacher.checkpoint="{tiny_teacher_dir}"',
        f'teacher.ensemble_checkpoints=["{three}"]',
    )
    with pytest.raises(ConfigError, match=r"teacher\.ensemble_checkpoints: .*three-way.*3 labels"):
        Pipeline(load_config(None, overrides)).run(until="teacher")


def test_a_member_of_another_vocabulary_is_a_config_error_naming_it(
    task_dir, tiny_teacher_dir, tmp_path
):
    other = other_vocabulary_teacher(tiny_teacher_dir, tmp_path / "other-vocab")
    overrides = ensemble_overrides(
        task_dir,
        tiny_teacher_dir,
        tmp_path / "run",
        f'teacher.checkpoint="{tiny_teacher_dir}"',
        f'teacher.ensemble_checkpoints=["{other}"]',
    )
    with pytest.raises(ConfigError, match=r"other-vocab.*vocabulary differs .* 2 tokens"):
        Pipeline(load_config(None, overrides)).run(until="teacher")


def test_the_main_teacher_seed_is_no_extra_member():
    with pytest.raises(ConfigError, match=r"teacher\.ensemble_seeds: 42 is teacher\.seed"):
        load_config(None, ["teacher.ensemble_seeds=[42]"])


def test_an_ensemble_run_distils_the_members_combined_logits(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    single = ensemble_overrides(task_dir, tiny_teacher_dir, run_dir)
    Pipeline(load_config(None, single)).run(until="label")
    single_labels = np.asarray(load_labelled(only_shards(run_dir))["teacher_logits"])
    teacher_record = json.loads((run_dir / "teacher" / "stage.json").read_text())
    single_caches = sorted((run_dir / ".work" / "member-logits").iterdir())
    single_cache_times = {p: p.stat().st_mtime_ns for p in single_caches[0].iterdir()}
    cached = np.concatenate([np.load(p) for p in sorted(single_caches[0].glob("shard-*.npy"))])
    np.testing.assert_array_equal(cached, single_labels)

    overrides = [*single, "teacher.ensemble_seeds=[7]"]
    pipeline = Pipeline(load_config(None, overrides))
    out = pipeline.run()
    # the main teacher is reused as it was; the member is built beside it
    assert "teacher:teacher" in pipeline.reused
    assert "teacher:teacher-seed-7" in pipeline.built
    assert json.loads((run_dir / "teacher" / "stage.json").read_text()) == teacher_record
    member = json.loads((run_dir / "teacher-seed-7" / "stage.json").read_text())
    assert member["settings"]["seed"] == 7

    labels = np.asarray(out.labelled["teacher_logits"])
    assert not np.allclose(labels, single_labels, atol=1e-4)
    # the single teacher's own logits were kept and serve the ensemble: only the member ran
    (main_cache,) = single_caches
    caches = sorted((run_dir / ".work" / "member-logits").iterdir())
    assert len(caches) == 2 and main_cache in caches  # the main teacher's and the member's
    assert {p: p.stat().st_mtime_ns for p in main_cache.iterdir()} == single_cache_times
    texts = list(out.labelled["text"])
    folders = [run_dir / "teacher" / "model", run_dir / "teacher-seed-7" / "model"]
    members = TeacherEnsemble.from_pretrained(folders, max_length=16)
    np.testing.assert_allclose(labels, members.logits(texts), rtol=1e-4, atol=1e-5)

    # `auto` temperature is fitted on the ensemble's validation logits
    task = Task.load(run_dir / "data")
    combined = out.ensemble.predictions()["validation"]
    fitted = json.loads((run_dir / "calibration" / "calibration.json").read_text())
    validation = np.asarray(task.splits["validation"]["label"])
    assert fitted["source"] == "teacher ensemble"
    assert fitted["temperature"] == calibrate(combined, validation)["temperature"]

    # the ensemble's and its members' scores are recorded, and reported beside the teacher's
    results = json.loads((run_dir / "results.json").read_text())
    row = results["teacher_ensemble"]
    assert [r["name"] for r in results["rows"]] == ["teacher", "soft", "base"]
    assert row["test_accuracy"] == out.ensemble.metrics["test_accuracy"]
    assert len(row["members"]) == 2
    assert [m["folder"] for m in out.ensemble.metrics["members"]] == ["teacher", "teacher-seed-7"]
    assert (
        "| teacher ensemble | ensemble of 2 (probabilities) |"
        in (run_dir / "results.md").read_text()
    )
    assert "| teacher ensemble |" in (run_dir / "report.md").read_text()

    again = Pipeline(load_config(None, overrides))
    again.run()
    assert again.built == []
    assert {"teacher:teacher", "teacher:teacher-seed-7", "teacher:teacher-ensemble"} <= set(
        again.reused
    )

    # a prediction file's teacher column is the ensemble's prediction
    unlabelled = tmp_path / "test.tsv"
    unlabelled.write_text("index\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(TEXTS)))
    summary = write_prediction_file(
        load_config(None, overrides), unlabelled, tmp_path / "predicted.tsv"
    )
    assert summary["teacher"] == "ensemble of 2 (probabilities)"
    lines = (tmp_path / "predicted.tsv").read_text().splitlines()
    column = lines[0].split("\t").index("teacher")
    predicted = [line.split("\t")[column] for line in lines[1:]]
    names = task.label_names
    assert predicted == [names[i] for i in members.logits(TEXTS).argmax(-1)]


def test_ensemble_labelling_runs_only_the_members_it_has_not_cached(two_members, tmp_path):
    from datasets import Dataset

    from distilrnn.labeling import label_with_teacher

    _, members = two_members
    calls = {0: 0, 1: 0}

    class Counted:
        def __init__(self, teacher, index):
            self.teacher, self.index = teacher, index

        def __getattr__(self, name):
            return getattr(self.teacher, name)

        def logits(self, texts, **kwargs):
            calls[self.index] += 1
            return self.teacher.logits(texts, **kwargs)

    ensemble = TeacherEnsemble(members)
    ensemble.members = [Counted(m, i) for i, m in enumerate(members)]
    dataset = Dataset.from_dict({"text": TEXTS})
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]
    label = dict(batch_size=2, shard_size=2, member_caches=caches)
    first = label_with_teacher(ensemble, dataset, tmp_path / "first", **label)
    expected = TeacherEnsemble(members).logits(TEXTS)
    np.testing.assert_allclose(np.asarray(first["teacher_logits"]), expected, rtol=1e-5, atol=1e-6)
    assert calls == {0: 3, 1: 3}  # three shards, each member once per shard
    assert sorted(p.name for p in caches[0].iterdir()) == [f"shard-0000{n}.npy" for n in range(3)]

    # a new ensemble over the same texts: one member's shard lost, another's damaged
    (caches[1] / "shard-00001.npy").unlink()
    (caches[0] / "shard-00002.npy").write_bytes(b"not an array")
    second = label_with_teacher(ensemble, dataset, tmp_path / "second", **label)
    assert calls == {0: 4, 1: 4}  # only the missing and the damaged shard ran again
    np.testing.assert_array_equal(
        np.asarray(second["teacher_logits"]), np.asarray(first["teacher_logits"])
    )
    with pytest.raises(ValueError, match="1 folders for 2 teacher"):
        label_with_teacher(
            ensemble,
            dataset,
            tmp_path / "third",
            batch_size=2,
            shard_size=2,
            member_caches=caches[:1],
        )


def only_shards(run_dir):
    (shards,) = sorted((run_dir / "labels").glob("logits-*"))
    return shards


def test_shared_progress_moves_by_whole_texts_over_its_teachers():
    from distilrnn.labeling import SharedProgress

    class Bar:
        n = 0

        def update(self, n):
            assert isinstance(n, int) and n > 0
            self.n += n

    bar = Bar()
    share = SharedProgress(bar, 3)
    for n in (4, 1, 1, 6, 6, 6, 6):  # batches of three teachers reading the same 10 texts
        share.update(n)
    assert bar.n == 30 // 3
