"""Teacher loading, label checks, the offline resolver, and logit recording."""

import numpy as np
import pytest
from conftest import VOCAB
from datasets import Dataset

from distilrnn import hub
from distilrnn.config import DataConfig
from distilrnn.data import Task, load_task
from distilrnn.errors import ConfigError
from distilrnn.labeling import label_texts, predict_logits
from distilrnn.teacher import Teacher, TeacherError, check_fits, load_teacher


def test_check_fits_rejects_label_count_mismatch(tiny_teacher_dir):
    model, _ = load_teacher(str(tiny_teacher_dir))
    with pytest.raises(TeacherError, match="2 labels but the task has 3"):
        check_fits(model, ["a", "b", "c"], "tiny")


def test_check_fits_rejects_different_label_names(tiny_teacher_dir):
    model, _ = load_teacher(str(tiny_teacher_dir))
    model.config.id2label = {0: "negative", 1: "positive"}
    with pytest.raises(TeacherError, match="do not match"):
        check_fits(model, ["positive", "negative"], "tiny")
    check_fits(model, ["negative", "positive"], "tiny")


def test_resolver_uses_offline_copy_when_hub_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    monkeypatch.setitem(hub.OFFLINE_MODELS, "org/tiny", lambda: tmp_path)
    assert hub.resolve_model("org/tiny") == str(tmp_path)
    assert hub.resolve_model("org/unknown") == "org/unknown"
    hub.hub_reachable.cache_clear()


def test_resolver_prefers_a_local_folder(tmp_path):
    assert hub.resolve_model(str(tmp_path)) == str(tmp_path)


def test_batched_logits_match_one_by_one(tiny_teacher_dir):
    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    texts = ["good film", "the plot is very dull and the story weak", "fun", "a bad movie"]
    batched = predict_logits(model, tokenizer, texts, batch_size=3, max_length=16)
    single = np.concatenate(
        [predict_logits(model, tokenizer, [t], batch_size=1, max_length=16) for t in texts]
    )
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_labelling_resumes_from_finished_shards(tiny_teacher_dir, tmp_path):
    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    texts = [f"{w} film" for w in ["good", "bad", "fun", "dull", "great", "weak", "awful"]]
    dataset = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 1, 0, 0]})
    full = label_texts(model, tokenizer, dataset, tmp_path / "a", 2, 3, 16)
    label_texts(model, tokenizer, dataset, tmp_path / "b", 2, 3, 16)
    # simulate a kill after the first shard: drop the later ones and run again
    for shard in sorted((tmp_path / "b" / "shards").iterdir())[1:]:
        for f in shard.iterdir():
            f.unlink()
        shard.rmdir()
    resumed = label_texts(model, tokenizer, dataset, tmp_path / "b", 2, 3, 16)
    assert resumed["text"] == texts
    np.testing.assert_array_equal(
        np.array(resumed["teacher_logits"]), np.array(full["teacher_logits"])
    )


def test_corrupt_teacher_checkpoint_names_the_teacher(tmp_path):
    from conftest import build_tiny_teacher

    teacher = build_tiny_teacher(tmp_path / "broken")
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TeacherError, match="broken"):
        load_teacher(str(teacher))


@pytest.mark.slow
def test_offline_minilm_backbone_loads_as_a_classifier(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    from distilrnn.teacher import load_classifier, load_tokenizer

    name = "sentence-transformers/all-MiniLM-L6-v2"
    model = load_classifier(name, num_labels=2)
    tokenizer = load_tokenizer(name)
    assert model.get_input_embeddings().weight.shape == (30522, 384)
    logits = predict_logits(model, tokenizer, ["a fine film", "dull"], 2, 32)
    assert logits.shape == (2, 2)
    hub.hub_reachable.cache_clear()


def test_logits_under_a_token_budget_match_plain_batches(tiny_teacher_dir):
    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    texts = [" ".join(["good"] * n + ["film"]) for n in (1, 9, 3, 12, 2, 7)]
    plain = predict_logits(model, tokenizer, texts, batch_size=4, max_length=16)
    budgeted = predict_logits(model, tokenizer, texts, batch_size=4, max_length=16, max_tokens=20)
    np.testing.assert_allclose(budgeted, plain, atol=1e-5)


def test_labelling_resumes_after_a_failure_between_shards(tiny_teacher_dir, tmp_path, monkeypatch):
    import distilrnn.labeling as labeling

    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    texts = [f"{w} film" for w in ["good", "bad", "fun", "dull", "great", "weak", "awful"]]
    dataset = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 1, 0, 0]})
    expected = label_texts(model, tokenizer, dataset, tmp_path / "clean", 2, 3, 16)

    real, calls = labeling.predict_logits, []

    def fail_on_second_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between shards")
        return real(*args, **kwargs)

    monkeypatch.setattr(labeling, "predict_logits", fail_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        label_texts(model, tokenizer, dataset, tmp_path / "run", 2, 3, 16)
    finished = sorted(p.name for p in (tmp_path / "run" / "shards").iterdir())
    assert finished == ["shard-00000"]
    monkeypatch.setattr(labeling, "predict_logits", real)
    resumed = label_texts(model, tokenizer, dataset, tmp_path / "run", 2, 3, 16)
    np.testing.assert_array_equal(
        np.array(resumed["teacher_logits"]), np.array(expected["teacher_logits"])
    )


def test_tiny_teacher_tokenizer_keeps_fixture_words_apart(tiny_teacher_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_teacher_dir))
    ids = tokenizer("The film is GOOD")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "the", "film", "is", "good", "[SEP]"]


# the Teacher object ------------------------------------------------------------------------------
def test_teacher_logits_equal_predict_logits(tiny_teacher_dir):
    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    texts = ["good film", "the plot is very dull", "fun", "a bad movie"]
    teacher = Teacher(model, tokenizer, max_length=16)
    expected = predict_logits(model, tokenizer, texts, batch_size=512, max_length=16)
    logits = teacher.logits(texts, batch_size=2)
    assert logits.dtype == np.float32 and logits.shape == (4, 2)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_teacher_from_pretrained_loads_the_tiny_teacher(tiny_teacher_dir):
    teacher = Teacher.from_pretrained(tiny_teacher_dir, max_length=16)
    assert teacher.num_labels == 2
    assert teacher.label_names == ["LABEL_0", "LABEL_1"]
    weight = teacher.embedding_weight()
    assert weight.shape == (len(VOCAB), 32) and not weight.requires_grad
    weight.zero_()  # a copy: the model keeps its embedding
    assert teacher.model.get_input_embeddings().weight.abs().sum() > 0


def test_teacher_label_names_survive_save_and_load(tiny_teacher_dir, tmp_path):
    model, tokenizer = load_teacher(str(tiny_teacher_dir))
    Teacher(model, tokenizer, label_names=["negative", "positive"]).save_pretrained(tmp_path / "t")
    loaded = Teacher.from_pretrained(tmp_path / "t")
    assert loaded.label_names == ["negative", "positive"]
    with pytest.raises(TeacherError, match="3 label names"):
        Teacher(model, tokenizer, label_names=["a", "b", "c"])


def test_teacher_check_fits_the_task(tiny_teacher_dir, task_dir):
    task = load_task(DataConfig(path=str(task_dir)))
    teacher = Teacher.from_pretrained(tiny_teacher_dir)
    teacher.check_fits(task)
    three = Task.from_lists(["good", "bad", "fun"], [0, 1, 2], validation=(["a", "b"], [0, 1]))
    with pytest.raises(TeacherError, match="2 labels but the task has 3"):
        teacher.check_fits(three)


def test_teacher_finetune_on_the_tiny_task(tiny_teacher_dir, task_dir, tmp_path):
    task = load_task(DataConfig(path=str(task_dir)))
    teacher = Teacher.finetune(
        tiny_teacher_dir,
        task,
        output_dir=tmp_path / "work",
        epochs=1,
        max_length=16,
        batch_size=16,
        learning_rate=1e-3,
    )
    assert teacher.label_names == ["0", "1"]
    assert teacher.metrics["train_examples"] == 48
    assert 0.0 <= teacher.evaluate(task.validation)["accuracy"] <= 1.0
    assert teacher.logits(task.test.texts).shape == (len(task.test), 2)


def test_teacher_finetune_rejects_unknown_settings(tiny_teacher_dir, task_dir):
    task = load_task(DataConfig(path=str(task_dir)))
    with pytest.raises(ConfigError, match="epoch"):
        Teacher.finetune(tiny_teacher_dir, task, epoch=1)
    with pytest.raises(ConfigError, match="report_to: unknown"):
        Teacher.finetune(tiny_teacher_dir, task, report_to="nowhere")


def test_finetuning_gives_the_same_teacher_whatever_the_random_state_before(task_dir, tmp_path):
    """The classification head is drawn as the backbone loads: seeded by `teacher.seed`, so
    the API and the pipeline, in any process, fine-tune the same teacher."""
    import torch
    from conftest import build_tiny_teacher

    backbone = build_tiny_teacher(tmp_path / "backbone", with_head=False)
    task = load_task(DataConfig(path=str(task_dir)))
    logits = []
    for state in (1, 2):
        torch.manual_seed(state)
        teacher = Teacher.finetune(backbone, task, epochs=1, max_length=16, batch_size=16)
        logits.append(teacher.logits(task.test.texts))
    np.testing.assert_array_equal(logits[0], logits[1])


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_teacher_path_without_a_model_is_named_in_one_error(tmp_path, kind):
    from distilrnn.errors import MissingFileError

    folder = tmp_path / "teacher"
    if kind == "empty":
        folder.mkdir()
    with pytest.raises(MissingFileError, match=str(folder)):
        Teacher.from_pretrained(str(folder))
