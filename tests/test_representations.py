"""Representation distillation: the teacher's sentence vectors (masked mean of one layer), their
float16 cache and its stage, the student's projection and the loss term it adds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import VOCAB, make_sentences, tiny_run_overrides
from datasets import Dataset
from safetensors.numpy import load_file
from transformers import TrainingArguments

import distilrnn
from distilrnn.config import REPR_LOSSES, LabelConfig, StudentSettings, load_config
from distilrnn.distillation import DistillationTrainer, fit_student
from distilrnn.errors import ConfigError, StudentError
from distilrnn.losses import REPRESENTATION_LOSSES, representation_loss
from distilrnn.pipeline import Pipeline
from distilrnn.representations import (
    ProjectedStudent,
    SentenceVectors,
    check_fits,
    sentence_vectors,
    write_sentence_vectors,
)
from distilrnn.stages import settings_of_version
from distilrnn.student import RNNStudent, StudentConfig

TEXTS = ["good", "the film is very dull and boring", "a great story", "it 's quite weak"]
SMALL = {"hidden_size": 16, "head_hidden_size": 16, "epochs": 1, "max_length": 16}


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return distilrnn.Teacher.from_pretrained(str(tiny_teacher_dir), max_length=16)


def _by_hand(teacher, layer, text, pair=None):
    """The mean over its tokens of one text's (or pair's) hidden states, run alone (no pad)."""
    encoded = teacher.tokenizer(text, pair, return_tensors="pt")
    with torch.no_grad():
        states = teacher.model(**encoded, output_hidden_states=True).hidden_states[layer]
    return states[0].mean(dim=0).numpy()  # (hidden,)


@pytest.mark.parametrize("layer", [-1, 0, 1])
def test_vectors_are_the_mean_of_the_layers_token_states(teacher, layer):
    vectors = sentence_vectors(teacher, TEXTS, layer, batch_size=3)  # padded, length-sorted
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    for row, text in enumerate(TEXTS):
        np.testing.assert_allclose(vectors[row], _by_hand(teacher, layer, text), atol=1e-5)


def test_a_pair_has_one_vector_read_as_one_sequence(teacher):
    pairs = [("good film", "a dull story"), ("boring", "it is quite great and moving")]
    vectors = sentence_vectors(teacher, pairs, -1)
    for row, (text, pair) in enumerate(pairs):
        np.testing.assert_allclose(vectors[row], _by_hand(teacher, -1, text, pair), atol=1e-5)


@pytest.mark.parametrize("layer", [3, -4])
def test_a_layer_the_teacher_lacks_is_a_config_error(teacher, layer):
    with pytest.raises(ConfigError, match=r"label\.repr_layer: the teacher has 2 layers"):
        sentence_vectors(teacher, TEXTS, layer)


def test_the_cache_holds_float16_shards_read_memory_mapped(teacher, tmp_path):
    texts = [text for text, _ in make_sentences(12, seed=3)]
    cache = write_sentence_vectors(
        teacher, Dataset.from_dict({"text": texts}), tmp_path, -1, shard_size=5
    )
    shards = sorted(tmp_path.glob("shard-*.safetensors"))
    assert [p.name for p in shards] == [f"shard-0000{n}.safetensors" for n in range(3)]
    stored = np.concatenate([load_file(str(p))["vectors"] for p in shards])
    assert stored.dtype == np.float16 and cache.shape == (12, 32) and cache.nbytes == 12 * 64
    rows = np.array([11, 0, 5, 4, 7])  # across all three shards
    np.testing.assert_array_equal(cache[rows], stored[rows].astype(np.float32))
    np.testing.assert_allclose(cache[rows], sentence_vectors(teacher, texts)[rows], atol=2e-3)
    head = cache[:7]
    assert isinstance(head, SentenceVectors) and len(head) == 7
    np.testing.assert_array_equal(head[np.array([6, 5])], cache[np.array([6, 5])])
    with pytest.raises(IndexError):
        head[np.array([7])]


def _repr_run(task_dir, teacher_dir, run_dir, *extra):
    overrides = tiny_run_overrides(task_dir, teacher_dir, run_dir)
    overrides.append("label.shard_size=16")
    overrides.append('variant=[{name="rep", objective="kl", temperature=2.0, repr_weight=1.0}]')
    return [*overrides, *extra]


def test_the_states_stage_resumes_after_a_kill_and_is_reused(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = _repr_run(task_dir, tiny_teacher_dir, run_dir)
    first = Pipeline(load_config(None, overrides))
    first.run(until="states")
    assert "states:states" in first.built
    (folder,) = (run_dir / "states").glob("vectors-*")
    shards = sorted(folder.glob("shard-*.safetensors"))
    assert len(shards) == 3  # 48 training texts in shards of 16
    metrics = json.loads((run_dir / "states" / "metrics.json").read_text())
    # the measured cost: 2 bytes x the teacher's hidden size (32) per text
    assert metrics["bytes_per_text"] == 64 and metrics["bytes"] == 48 * 64
    assert metrics["hidden_size"] == 32 and metrics["layer"] == -1
    kept = {p.name: p.stat().st_mtime_ns for p in shards[:2]}
    # killed while computing the last shard: no record, that shard never written
    (run_dir / "states" / "stage.json").unlink()
    shards[2].unlink()

    again = Pipeline(load_config(None, overrides))
    again.run(until="states")
    assert again.built == ["states:states"]
    assert shards[2].is_file()
    assert {p.name: p.stat().st_mtime_ns for p in shards[:2]} == kept
    assert len(again.states().value) == 48

    third = Pipeline(load_config(None, overrides))
    third.run(until="states")
    assert "states:states" in third.reused and third.built == []


def test_the_layer_rebuilds_the_states_not_the_labels(task_dir, tiny_teacher_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = _repr_run(task_dir, tiny_teacher_dir, run_dir)
    Pipeline(load_config(None, overrides)).run(until="label")
    Pipeline(load_config(None, overrides)).run(until="states")
    other = Pipeline(load_config(None, [*overrides, "label.repr_layer=0"]))
    other.run(until="label")
    other.states()
    assert "label:labels" in other.reused
    assert "states:states" in other.built
    assert len(list((run_dir / "states").glob("vectors-*"))) == 1  # the stale layer's removed


def test_a_student_with_repr_weight_trains_and_keeps_no_projection(
    task_dir, tiny_teacher_dir, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = _repr_run(task_dir, tiny_teacher_dir, run_dir)
    pipeline = Pipeline(load_config(None, overrides))
    pipeline.run(until="student")
    assert "states:states" in pipeline.built
    student_dir = run_dir / "students" / "rep" / "seed-0"
    weights = load_file(str(student_dir / "model.safetensors"))
    assert not any("projection" in name for name in weights)
    plain = RNNStudent(RNNStudent.load(student_dir).config)
    assert set(weights) == set(plain.state_dict())
    metrics = json.loads((student_dir / "metrics.json").read_text())
    assert metrics["representation"] == {
        "teacher_hidden_size": 32,
        "projection_parameters": 32 * 32 + 32,  # bidirectional 2 x 16 -> 32
    }
    logged = [row["train_repr_loss"] for row in metrics["log_history"] if "train_loss" in row]
    assert logged and all(0.0 <= value <= 2.0 for value in logged)  # 1 - cosine


def _tiny_student():
    torch.manual_seed(0)
    return RNNStudent(StudentConfig(vocab_size=len(VOCAB), embedding_dim=12, hidden_size=8))


def _batch(states):
    torch.manual_seed(1)
    input_ids = torch.randint(5, 20, (4, 6))
    attention_mask = torch.ones(4, 6, dtype=torch.long)
    attention_mask[2, 4:] = 0
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "teacher_logits": torch.randn(4, 2),
        "teacher_states": states,
    }


def _loss(model, settings, batch, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    trainer = DistillationTrainer(model=model, args=args, settings=settings)
    return trainer.compute_loss(model, batch)


@pytest.mark.parametrize("repr_loss", REPR_LOSSES)
def test_the_loss_adds_repr_weight_times_the_representation_term(repr_loss, tmp_path):
    model = ProjectedStudent(_tiny_student(), teacher_hidden_size=32).eval()  # no dropout
    batch = _batch(torch.randn(4, 32))
    settings = StudentSettings(objective="kl", temperature=2.0, repr_loss=repr_loss)
    without = _loss(model, settings, {**batch, "teacher_states": None}, tmp_path)
    weighted = StudentSettings(
        objective="kl", temperature=2.0, repr_loss=repr_loss, repr_weight=0.5
    )
    with_term = _loss(model, weighted, batch, tmp_path)
    with torch.no_grad():
        _, projected = model(batch["input_ids"], batch["attention_mask"], project=True)
    term = representation_loss(repr_loss, projected, batch["teacher_states"])
    assert float(term) > 0
    assert math.isclose(float((with_term - without).detach()), 0.5 * float(term), rel_tol=1e-5)


def test_projecting_keeps_the_students_logits():
    student = _tiny_student()
    model = ProjectedStudent(student, teacher_hidden_size=24).eval()
    batch = _batch(None)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits, projected = model(ids, mask, project=True)
    torch.testing.assert_close(logits, student(ids, mask))
    torch.testing.assert_close(model(ids, mask), student(ids, mask))
    assert projected.shape == (4, 24)


def test_cosine_representation_loss_ignores_scale():
    student = torch.randn(5, 8)
    assert float(representation_loss("cosine", student, 3.0 * student)) == pytest.approx(
        0, abs=1e-6
    )
    assert float(representation_loss("cosine", student, -student)) == pytest.approx(2.0)
    assert float(representation_loss("mse", student, student.half())) == pytest.approx(0, abs=1e-5)
    assert set(REPRESENTATION_LOSSES) == set(REPR_LOSSES)


def test_distill_with_ce_and_repr_weight_trains_a_plain_student(teacher, tmp_path):
    rows = make_sentences(32, seed=3)
    dev = make_sentences(12, seed=4)
    task = distilrnn.Task.from_lists(
        [t for t, _ in rows],
        [label for _, label in rows],
        validation=([t for t, _ in dev], [label for _, label in dev]),
        label_names=["negative", "positive"],
    )
    student = distilrnn.distill(
        teacher, task, objective="ce", repr_weight=1.0, repr_layer=1, repr_loss="mse", **SMALL
    )
    assert isinstance(student, RNNStudent)
    assert student.metrics["representation"]["teacher_hidden_size"] == 32
    student.save(tmp_path)
    assert not any("projection" in n for n in load_file(str(tmp_path / "model.safetensors")))


def test_repr_weight_without_teacher_vectors_is_refused(teacher, tmp_path):
    task = distilrnn.Task.from_lists(
        ["good", "bad"], [1, 0], validation=(["fun", "dull"], [1, 0]), label_names=["n", "p"]
    )
    settings = StudentSettings(repr_weight=1.0, **SMALL)
    with pytest.raises(StudentError, match="teacher_states"):
        fit_student(settings, 0, task.splits["train"], task, teacher, teacher.tokenizer, tmp_path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"repr_weight": -0.5}, r"student\.repr_weight: must be a number >= 0"),
        ({"repr_weight": float("nan")}, r"student\.repr_weight"),
        ({"repr_loss": "l1"}, r"student\.repr_loss: must be"),
    ],
)
def test_bad_representation_settings_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        StudentSettings(**values)


def test_a_siamese_student_cannot_learn_the_pairs_one_vector():
    with pytest.raises(ConfigError, match=r"variant x: student\.repr_weight: a siamese"):
        check_fits(1.0, "siamese", is_pair=True, where="variant x: ")
    check_fits(1.0, "joint", is_pair=True)
    check_fits(1.0, "siamese", is_pair=False)  # single texts: pair_design is ignored
    check_fits(0.0, "siamese", is_pair=True)


def test_older_runs_keep_their_fingerprints():
    values = {"rnn": "lstm", "repr_weight": 0.0, "repr_loss": "cosine"}
    assert settings_of_version("student", values, 3) == {"rnn": "lstm"}
    assert settings_of_version("student", {**values, "repr_weight": 1.0}, 3)["repr_weight"] == 1.0
    assert settings_of_version("label", {"repr_layer": -1, "batch_size": 8}, 3) == {"batch_size": 8}
    assert LabelConfig().repr_layer == -1
