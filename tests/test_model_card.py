"""Tests for the bundle's model card: Hugging Face Hub metadata in YAML front matter."""

from __future__ import annotations

import sys

import pytest

from distilrnn.model_card import model_card

yaml = pytest.importorskip("yaml")

LABELS = ["negative", "positive"]
METRICS = {
    "variant": "distilled-gru",
    "seed": 0,
    "validation_accuracy": 0.9,
    "test_accuracy": 0.875,
    "settings": {"objective": "kl", "temperature": 2.0},
}


def bundle_config(**extra) -> dict:
    """The parts of a student bundle's config.json that the card reads."""
    return {
        "max_length": 16,
        "student": {
            "rnn": "gru",
            "bidirectional": True,
            "num_layers": 1,
            "hidden_size": 10,
            "pooling": "attention",
        },
        "teacher": {"name": "tiny-bert"},
        "task": "glue/sst2",
        "compression": {"embedding_rank": None, "prune_vocab": None, "quantize": None},
        "latency_ms": {"p50": 0.1, "p90": 0.2, "calls": 120, "threads": 1, "machine": "x86_64"},
        **extra,
    }


def front_matter(card: str) -> dict:
    """The YAML between the card's opening `---` lines, parsed."""
    assert card.startswith("---\n")
    head, separator, _ = card[4:].partition("\n---\n")
    assert separator, "the front matter is not closed"
    return yaml.safe_load(head)


def test_card_front_matter_names_library_tags_and_pipeline():
    meta = front_matter(model_card(bundle_config(), LABELS, METRICS, {"model.onnx": 100}))
    assert meta["library_name"] == "distilrnn"
    assert meta["tags"] == ["distilrnn", "text-classification", "onnx", "distillation"]
    assert meta["pipeline_tag"] == "text-classification"


def test_card_model_index_holds_the_accuracies_on_the_task():
    config = bundle_config(evaluation={"accuracy": 0.86, "examples": 8, "delta_points": -1.5})
    meta = front_matter(model_card(config, LABELS, METRICS, {"model.onnx": 100}))
    (entry,) = meta["model-index"]
    assert entry["name"] == "distilled-gru"
    (result,) = entry["results"]
    assert result["task"] == {"type": "text-classification"}
    assert result["dataset"] == {"name": "glue/sst2", "type": "glue/sst2"}
    assert result["metrics"] == [
        {"type": "accuracy", "value": 0.875, "name": "test accuracy"},
        {"type": "accuracy", "value": 0.9, "name": "validation accuracy"},
        {"type": "accuracy", "value": 0.86, "name": "bundle test accuracy"},
    ]


def test_card_without_any_accuracy_has_no_model_index():
    meta = front_matter(model_card(bundle_config(task=None), LABELS, {}, {"model.onnx": 100}))
    assert "model-index" not in meta
    assert meta["library_name"] == "distilrnn"


def test_card_front_matter_is_yaml_without_pyyaml(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    card = model_card(bundle_config(task='a "quoted": task'), LABELS, METRICS, {"model.onnx": 1})
    monkeypatch.undo()
    meta = front_matter(card)
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": 'a "quoted": task', "type": 'a "quoted": task'}
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.875


def test_card_body_follows_the_front_matter():
    card = model_card(bundle_config(), LABELS, METRICS, {"model.onnx": 100})
    body = card.split("\n---\n", 1)[1]
    assert body.lstrip().startswith("# distilrnn student: distilled-gru")
    assert "| test_accuracy | 87.50 % |" in body


def test_card_names_a_given_checkpoint_as_a_fine_tuned_teacher_used_as_given():
    config = bundle_config(teacher={"name": "org/bert-sst2", "source": "checkpoint"})
    card = model_card(config, LABELS, METRICS, {"model.onnx": 100})
    assert "the fine-tuned classifier `org/bert-sst2`, used as the teacher as given" in card


def test_card_says_distilrnn_fine_tuned_the_teacher_on_the_task_from_its_backbone():
    config = bundle_config(teacher={"name": "bert-base", "source": "fine-tuned"})
    card = model_card(config, LABELS, METRICS, {"model.onnx": 100})
    assert "a teacher that distilrnn fine-tuned on `glue/sst2` from `bert-base`" in card
    assert "- teacher: `bert-base` (fine-tuned on this task by distilrnn)" in card
