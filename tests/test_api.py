"""The library on objects: the README's Python example, distilling from texts alone, the Hub
conventions (save / load / push), export from a student object."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences

import distilrnn

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = {"hidden_size": 16, "head_hidden_size": 16, "epochs": 1, "max_length": 16}


def readme_python_example() -> str:
    """The first ```python block of the README's "From Python" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_on_the_tiny_teacher(
    task_dir, tiny_teacher_dir, tmp_path, monkeypatch
):
    code = readme_python_example()
    replacements = {
        '"data/sst2"': repr(str(task_dir)),
        '"sentence-transformers/all-MiniLM-L6-v2"': repr(str(tiny_teacher_dir)),
        "embedding_rank=96": "embedding_rank=8",
        "n_iter=20": "n_iter=2",
    }
    for old, new in replacements.items():
        assert old in code, f"the README example no longer says {old}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert 0.0 <= namespace["scores"]["accuracy"] <= 1.0
    assert (tmp_path / "students" / "sst2" / "model.safetensors").is_file()
    assert isinstance(namespace["predictor"], distilrnn.Predictor)
    assert (tmp_path / "bundles" / "sst2" / "model.onnx").is_file()


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return distilrnn.Teacher.from_pretrained(str(tiny_teacher_dir), max_length=16)


@pytest.fixture(scope="module")
def task():
    rows = make_sentences(40, seed=3)
    dev = make_sentences(20, seed=4)
    return distilrnn.Task.from_lists(
        [t for t, _ in rows],
        [label for _, label in rows],
        validation=([t for t, _ in dev], [label for _, label in dev]),
        label_names=["negative", "positive"],
    )


@pytest.fixture(scope="module")
def student(teacher, task):
    return distilrnn.distill(teacher, task, objective="kl", temperature=2.0, **SMALL)


def test_distilling_needs_no_labels(teacher):
    texts = [text for text, _ in make_sentences(40, seed=5)]
    validation = [text for text, _ in make_sentences(12, seed=6)]
    unlabelled = distilrnn.Task.from_lists(
        texts, validation=(validation, None), label_names=["negative", "positive"]
    )
    student = distilrnn.distill(teacher, unlabelled, objective="mse", **SMALL)
    assert student.label_names == ["negative", "positive"]
    assert 0.0 <= student.metrics["validation_accuracy"] <= 1.0  # agreement with the teacher


def test_auto_temperature_without_validation_labels_is_one(teacher):
    texts = [text for text, _ in make_sentences(40, seed=5)]
    unlabelled = distilrnn.Task.from_lists(texts, label_names=["negative", "positive"])
    student = distilrnn.distill(teacher, unlabelled, objective="kl", temperature="auto", **SMALL)
    assert student.metrics["settings"]["temperature"] == 1.0  # not fitted to its own argmax


def test_the_ce_baseline_refuses_a_task_without_labels(teacher):
    texts = [text for text, _ in make_sentences(10, seed=7)]
    unlabelled = distilrnn.Task.from_lists(
        texts, validation=(texts, None), label_names=["negative", "positive"]
    )
    with pytest.raises(distilrnn.DataError, match="labels"):
        distilrnn.distill(teacher, unlabelled, objective="ce", **SMALL)


def test_save_pretrained_and_from_pretrained_give_the_same_logits(student, task, tmp_path):
    student.save_pretrained(tmp_path / "student")
    loaded = distilrnn.RNNStudent.from_pretrained(tmp_path / "student")
    texts = task.test.texts
    np.testing.assert_allclose(loaded.predict_logits(texts), student.predict_logits(texts))
    assert loaded.label_names == ["negative", "positive"]
    assert loaded.evaluate(task.test) == student.evaluate(task.test)


def test_save_pretrained_refuses_a_folder_of_other_files(student, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(distilrnn.StudentError, match="no saved student"):
        student.save_pretrained(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


class FolderHub:
    """A Hub client that keeps each repository as a local folder (the upload's real input)."""

    def __init__(self, root: Path):
        self.root = root
        self.created: list[tuple[str, bool]] = []

    def create_repo(self, repo_id, private=False, exist_ok=False):
        self.created.append((repo_id, private))

    def upload_folder(self, repo_id, folder_path, commit_message):
        import shutil

        shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)
        return f"{repo_id}: {commit_message}"


def test_push_to_hub_uploads_what_from_pretrained_loads(student, task, tmp_path):
    hub = FolderHub(tmp_path / "hub")
    student.push_to_hub("someone/tiny-student", private=True, api=hub)
    assert hub.created == [("someone/tiny-student", True)]
    loaded = distilrnn.RNNStudent.from_pretrained(tmp_path / "hub" / "someone" / "tiny-student")
    texts = task.test.texts
    np.testing.assert_allclose(loaded.predict_logits(texts), student.predict_logits(texts))


def test_export_from_the_object_gives_a_predictor_with_its_logits(student, task, tmp_path):
    predictor = student.export(tmp_path / "bundle")
    texts = task.test.texts
    np.testing.assert_allclose(
        predictor.logits(texts), student.predict_logits(texts), atol=1e-4, rtol=1e-4
    )


def test_a_saved_student_folder_exports_with_its_label_names(student, tmp_path):
    from distilrnn.export import export_student

    student.save_pretrained(tmp_path / "student")
    export_student(tmp_path / "student", tmp_path / "bundle")
    assert distilrnn.Predictor(tmp_path / "bundle").labels == ["negative", "positive"]


def test_an_unknown_export_setting_is_named(student, tmp_path):
    with pytest.raises(distilrnn.ConfigError, match=r"export\.quantise"):
        student.export(tmp_path / "bundle", quantise=True)


def test_public_names_load_lazily():
    import subprocess
    import sys

    code = "import sys, distilrnn; distilrnn.Predictor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_registered_offline_model_resolves_without_the_hub(tiny_teacher_dir, monkeypatch):
    from distilrnn.hub import OFFLINE_MODELS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delitem(OFFLINE_MODELS, "someone/tiny-teacher", raising=False)
    distilrnn.register_offline_model("someone/tiny-teacher", lambda: tiny_teacher_dir)
    try:
        teacher = distilrnn.Teacher.from_pretrained("someone/tiny-teacher")
    finally:
        OFFLINE_MODELS.pop("someone/tiny-teacher", None)
    assert teacher.num_labels == 2


def test_save_pretrained_does_not_unmake_a_runs_student(student, tmp_path):
    folder = tmp_path / "students" / "kl" / "seed-0"
    student.save_pretrained(folder)
    (folder / "stage.json").write_text("{}")
    with pytest.raises(distilrnn.StudentError, match="finished stage of a run"):
        student.save_pretrained(folder)
    assert (folder / "stage.json").is_file()
