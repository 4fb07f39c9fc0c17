"""Teacher loading, label checks, the offline resolver, and logit recording."""

import numpy as np
import pytest
from datasets import Dataset

from distilrnn import hub
from distilrnn.labeling import label_texts, predict_logits
from distilrnn.teacher import TeacherError, check_fits, load_teacher


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


def test_token_budget_batches_respect_budget_and_cover_every_text():
    from distilrnn.labeling import token_budget_batches

    lengths = [5, 30, 7, 12, 3, 30, 8, 9, 2, 40]
    batches = token_budget_batches(lengths, max_tokens=40, max_batch_size=4)
    assert sorted(int(i) for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 40


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
