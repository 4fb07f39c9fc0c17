"""Transfer-set augmentation: each rule's rate, POS-preserving replacement, determinism, caching."""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from distilrnn import pos
from distilrnn.augmentation import (
    AugmentError,
    HeldOutOverlap,
    PosVocabulary,
    augment,
    augment_sentence,
    build_transfer_set,
    generate,
    read_extra_texts,
    tag_texts,
)
from distilrnn.config import AugmentSettings
from distilrnn.data import Task
from distilrnn.errors import ConfigError

MASK = "[MASK]"
# A made-up tagged language: every tag has four word types, and no word has two tags.
WORDS_BY_TAG = {
    "DT": ["the", "a", "this", "that"],
    "NN": ["film", "movie", "story", "plot"],
    "VBZ": ["is", "seems", "looks", "feels"],
    "RB": ["very", "quite", "too", "rather"],
    "JJ": ["good", "dull", "fine", "long"],
}
REAL_SENTENCES = [
    "the film is a charming and moving story",
    "does n't work as a thriller , but the acting is great",
    "an awful , tedious movie with a weak plot",
    "she 's quietly brilliant in the lead role",
    "the director keeps the pace brisk and the jokes sharp",
    "it 's hard to care about these dull characters",
]


def tagged_sentences(count: int, length: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    tag_names = list(WORDS_BY_TAG)
    texts, tags = [], []
    for _ in range(count):
        sentence_tags = [rng.choice(tag_names) for _ in range(length)]
        texts.append(" ".join(rng.choice(WORDS_BY_TAG[tag]) for tag in sentence_tags))
        tags.append(sentence_tags)
    return texts, tags


def draw(settings: AugmentSettings, samples: int = 2000, length: int = 20, **kwargs):
    """(original words, their tags, sample) triples, one sample per seeded draw."""
    texts, tags = tagged_sentences(50, length, seed=0)
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    rng = np.random.default_rng(0)
    out = []
    for i in range(samples):
        words, sentence_tags = texts[i % len(texts)].split(), tags[i % len(texts)]
        sample = augment_sentence(words, sentence_tags, rng, settings, vocabulary, MASK, **kwargs)
        out.append((words, sentence_tags, sample.split()))
    return out, vocabulary


def test_mask_rate_matches_p_mask():
    settings = AugmentSettings(p_mask=0.2, p_pos=0.0, p_ng=0.0)
    samples, _ = draw(settings)
    positions = sum(len(words) for words, _, _ in samples)
    masked = sum(sample.count(MASK) for _, _, sample in samples)
    assert masked / positions == pytest.approx(0.2, abs=0.01)


def test_pos_replacement_rate_matches_p_pos():
    settings = AugmentSettings(p_mask=0.0, p_pos=0.3, p_ng=0.0)
    samples, vocabulary = draw(settings)
    positions = replaced = 0
    for words, tags, sample in samples:
        assert len(sample) == len(words)
        for word, tag, new in zip(words, tags, sample, strict=True):
            positions += 1
            if new != word:
                assert new in vocabulary.words[tag]
                replaced += 1
    assert replaced / positions == pytest.approx(0.3, abs=0.01)


def test_ngram_sampling_rate_matches_p_ng():
    settings = AugmentSettings(p_mask=0.0, p_pos=0.0, p_ng=0.4, max_ngram=5)
    samples, _ = draw(settings, length=20)  # every n-gram (n <= 5) is shorter than the sentence
    shortened = sum(len(sample) < len(words) for words, _, sample in samples)
    assert shortened / len(samples) == pytest.approx(0.4, abs=0.03)


def test_zero_probabilities_give_the_input_back():
    settings = AugmentSettings(p_mask=0.0, p_pos=0.0, p_ng=0.0)
    samples, _ = draw(settings, samples=200)
    assert all(sample == words for words, _, sample in samples)


def test_pos_replacement_keeps_the_spacy_tag():
    tags = tag_texts(REAL_SENTENCES, "en_core_web_sm", progress=False)
    vocabulary = PosVocabulary.from_tagged(REAL_SENTENCES, tags)
    settings = AugmentSettings(p_mask=0.0, p_pos=1.0, p_ng=0.0)
    rng = np.random.default_rng(0)
    replaced = 0
    for text, sentence_tags in zip(REAL_SENTENCES, tags, strict=True):
        words = text.split()
        for _ in range(20):
            sample = augment_sentence(words, sentence_tags, rng, settings, vocabulary, MASK)
            for word, tag, new in zip(words, sentence_tags, sample.split(), strict=True):
                if new != word:
                    assert new in vocabulary.words[tag], (word, tag, new)
                    replaced += 1
    assert replaced > 100


def test_a_tags_only_word_type_is_kept():
    texts = ["alpha beta", "gamma beta"]
    tags = [["NN", "UNIQUE"], ["NN", "UNIQUE"]]
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    settings = AugmentSettings(p_mask=0.0, p_pos=1.0, p_ng=0.0)
    rng = np.random.default_rng(0)
    samples = {augment_sentence(["alpha", "beta"], tags[0], rng, settings, vocabulary, MASK)}
    assert samples == {"gamma beta"}


def test_ngram_lengths_stay_within_max_ngram():
    settings = AugmentSettings(p_mask=0.0, p_pos=0.0, p_ng=1.0, max_ngram=3)
    samples, _ = draw(settings, samples=500, length=8)
    lengths = {len(sample) for _, _, sample in samples}
    assert lengths == {1, 2, 3}
    for words, _, sample in samples:  # an n-gram is a contiguous run of the sentence
        text = " " + " ".join(words) + " "
        assert " " + " ".join(sample) + " " in text


def test_whole_word_masking_emits_one_mask_per_piece():
    def count_pieces(word: str) -> int:
        return 1 + len(word) // 3

    settings = AugmentSettings(p_mask=1.0, p_pos=0.0, p_ng=0.0, mask_mode="whole_word")
    samples, _ = draw(settings, samples=20, count_pieces=count_pieces)
    for words, _, sample in samples:
        assert sample == [MASK] * sum(count_pieces(word) for word in words)


def test_generate_masks_whole_words_too():
    texts, tags = ["a film", "the long movie"], [["DT", "NN"], ["DT", "JJ", "NN"]]
    settings = AugmentSettings(p_mask=1.0, p_pos=0.0, p_ng=0.0, n_iter=3, mask_mode="whole_word")
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    samples = generate(texts, tags, settings, vocabulary, MASK, count_pieces=len, progress=False)
    assert samples == [" ".join([MASK] * 5), " ".join([MASK] * 12)]


def test_whole_word_masking_without_count_pieces_is_an_error():
    settings = AugmentSettings(mask_mode="whole_word")
    with pytest.raises(AugmentError, match="count_pieces"):
        draw(settings, samples=1)


def generate_small(seed: int = 0, workers: int = 1, n_iter: int = 10) -> list[str]:
    texts, tags = tagged_sentences(40, 6, seed=1)
    settings = AugmentSettings(seed=seed, n_iter=n_iter)
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    return generate(texts, tags, settings, vocabulary, MASK, workers=workers, progress=False)


def test_same_seed_gives_the_same_set():
    assert generate_small(seed=3) == generate_small(seed=3)


def test_different_seeds_give_different_sets():
    assert set(generate_small(seed=3)) != set(generate_small(seed=4))


def test_two_workers_give_the_same_list_as_one():
    assert generate_small(workers=2) == generate_small(workers=1)


def test_generate_drops_repeats_and_training_texts():
    # Two-word sentences repeat a lot over 30 draws, and "film" is both a training text and a
    # 1-gram of "good film".
    texts = ["good film", "dull movie", "film", "the plot"]
    tags = [["JJ", "NN"], ["JJ", "NN"], ["NN"], ["DT", "NN"]]
    settings = AugmentSettings(n_iter=30, p_ng=0.5)
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    samples = generate(texts, tags, settings, vocabulary, MASK, progress=False)
    assert len(samples) == len(set(samples))
    assert not set(samples) & set(texts)
    assert 0 < len(samples) < len(texts) * settings.n_iter


def test_tags_align_with_whitespace_words():
    tags = tag_texts(REAL_SENTENCES, "en_core_web_sm", progress=False)
    assert [len(t) for t in tags] == [len(text.split()) for text in REAL_SENTENCES]
    assert tags[1][:2] == ["VBZ", "RB"]  # "does n't": spaCy does not re-split the words


def test_tag_cache_is_read_on_the_second_call(tmp_path, monkeypatch):
    cache = tmp_path / "tags.json"
    first = tag_texts(REAL_SENTENCES, "en_core_web_sm", cache_path=cache, progress=False)

    def no_tagger(name: str):
        raise AssertionError("the tagger was loaded although the cache holds the tags")

    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    assert tag_texts(REAL_SENTENCES, "en_core_web_sm", cache_path=cache) == first


def test_tag_cache_is_not_served_for_other_texts(tmp_path, monkeypatch):
    cache = tmp_path / "tags.json"
    tag_texts(REAL_SENTENCES, "en_core_web_sm", cache_path=cache, progress=False)
    loaded = []
    monkeypatch.setattr(pos, "load_pos_tagger", lambda name: loaded.append(name) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tag_texts(REAL_SENTENCES[:2], "en_core_web_sm", cache_path=cache, progress=False)
    assert loaded == ["en_core_web_sm"]


def test_missing_pos_model_names_the_setting():
    with pytest.raises(AugmentError, match=r"augment\.spacy_model.*no_such_pipeline"):
        tag_texts(["a film"], "no_such_pipeline", progress=False)


def test_empty_extra_text_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "extra.txt"
    path.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(AugmentError, match=re.escape(str(path))):
        read_extra_texts(path)


def test_missing_extra_text_file_is_an_error(tmp_path):
    path = tmp_path / "missing.txt"
    with pytest.raises(AugmentError, match=re.escape(str(path))):
        read_extra_texts(path)


def test_transfer_set_adds_each_new_extra_text_once(tmp_path: Path):
    train = REAL_SENTENCES[:3]
    extra = tmp_path / "extra.txt"
    extra.write_text(f"a new text\n\n{train[0]}\na  new text\nanother one\n", encoding="utf-8")
    settings = AugmentSettings(n_iter=3, extra_text_file=str(extra))
    transfer = build_transfer_set(train, settings, tmp_path / "cache", MASK, progress=False)
    assert transfer[-2:] == ["a new text", "another one"]
    assert len(transfer) == len(set(transfer))
    assert not set(transfer) & set(train)
    assert (tmp_path / "cache" / "pos_tags.json").is_file()


def test_extra_texts_that_are_validation_or_test_texts_stay_out(tmp_path: Path, caplog):
    train = REAL_SENTENCES[:3]
    extra = tmp_path / "extra.txt"
    extra.write_text("a new text\na held-out  sentence\nanother one\n", encoding="utf-8")
    settings = AugmentSettings(n_iter=2, p_pos=0.0, extra_text_file=str(extra))
    with caplog.at_level("WARNING"):
        transfer = build_transfer_set(
            train, settings, None, MASK, progress=False, held_out=["a  held-out sentence"]
        )
    assert transfer[-2:] == ["a new text", "another one"]
    assert "a held-out sentence" not in transfer
    assert "1 lines of" in caplog.text and str(extra) in caplog.text


def test_extra_texts_near_a_held_out_text_stay_out(tmp_path: Path, caplog):
    held_out = ["the film is a sprawling , messy and ultimately rewarding look at grief"]
    near = [
        "A Sprawling , Messy And Ultimately Rewarding look",  # 8 words of it, another case
        "is a sprawling , messy",  # 5 words found whole inside it
        "her film is a sprawling , messy and ultimately rewarding tale",  # shares 9 words
    ]
    far = ["a sprawling film", "messy and rewarding grief", "the film is a quiet look at grief"]
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(near + far) + "\n", encoding="utf-8")
    settings = AugmentSettings(n_iter=2, p_pos=0.0, extra_text_file=str(extra))
    train = REAL_SENTENCES[:3]
    with caplog.at_level("WARNING"):
        transfer = build_transfer_set(
            train, settings, None, MASK, progress=False, held_out=held_out
        )
    assert transfer[-3:] == far
    assert not set(near) & set(transfer)
    assert "3 lines of" in caplog.text and "augment.extra_overlap" in caplog.text

    exact_only = AugmentSettings(n_iter=2, p_pos=0.0, extra_text_file=str(extra), extra_overlap=0)
    transfer = build_transfer_set(train, exact_only, None, MASK, progress=False, held_out=held_out)
    assert transfer[-6:] == near + far


def test_held_out_overlap_counts_words_not_characters():
    overlap = HeldOutOverlap(["one two three four five six"], 4)
    assert overlap.touches("one two three four")
    assert overlap.touches("x three four five six y")
    assert not overlap.touches("one two three")  # shorter than 4 words: only if equal
    assert not overlap.touches("one two three fourteen")
    assert HeldOutOverlap(["a b"], 4).touches("a  b")  # equal, spaces collapsed
    with pytest.raises(ConfigError, match=r"augment\.extra_overlap"):
        AugmentSettings(extra_overlap=-1)


def test_pipeline_keeps_the_split_texts_out_of_the_extra_texts(tmp_path: Path, monkeypatch):
    from distilrnn import stage_builds

    seen = {}

    def fake_augment(texts, **kwargs):
        seen["held_out"] = list(kwargs["held_out"])
        raise RuntimeError("stop here")

    monkeypatch.setattr("distilrnn.augmentation.augment", fake_augment)
    monkeypatch.setattr("distilrnn.teacher.load_tokenizer", lambda path: None)
    task = Task.from_lists(
        ["good film", "bad film"],
        [1, 0],
        validation=(["a fine film"], [1]),
        test=(["a dull film"], [0]),
        label_names=["negative", "positive"],
    )
    pipeline = SimpleNamespace(
        config=SimpleNamespace(augment=AugmentSettings()),
        teacher=lambda: SimpleNamespace(value=SimpleNamespace(model_dir=tmp_path)),
        folder=SimpleNamespace(work_dir=tmp_path),
    )
    with pytest.raises(RuntimeError, match="stop here"):
        stage_builds.build_augment(pipeline, None, SimpleNamespace(value=task), {}, [])
    assert sorted(seen["held_out"]) == ["a dull film", "a fine film"]


def no_tagger(name: str):
    raise AssertionError("a POS tagger was loaded although p_pos = 0")


def test_augment_returns_texts_then_generated(monkeypatch):
    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    texts, _ = tagged_sentences(20, 6, seed=2)
    settings = AugmentSettings(p_pos=0.0, n_iter=4)
    transfer = augment(texts, settings=settings, progress=False)
    generated = build_transfer_set(texts, settings, None, MASK, progress=False)
    assert transfer == texts + generated
    assert len(generated) > len(texts)
    assert len(set(generated)) == len(generated) and not set(generated) & set(texts)


def test_augment_overrides_replace_settings(monkeypatch):
    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    texts, _ = tagged_sentences(10, 6, seed=2)
    base = AugmentSettings(p_pos=0.0, n_iter=4)
    overridden = augment(texts, settings=base, n_iter=2, seed=5, progress=False)
    direct = augment(texts, settings=AugmentSettings(p_pos=0.0, n_iter=2, seed=5), progress=False)
    assert overridden == direct


def test_augment_names_an_unknown_override():
    with pytest.raises(ConfigError, match=r"augment\.n_iters"):
        augment(["a film"], n_iters=3)


def test_augment_takes_mask_and_pieces_from_the_tokenizer(monkeypatch):
    class Tokenizer:  # the two things augment reads off a transformers tokenizer
        mask_token = "<mask>"

        def tokenize(self, word: str) -> list[str]:
            return [word[i : i + 2] for i in range(0, len(word), 2)]

    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    transfer = augment(
        ["abcd ef"],
        tokenizer=Tokenizer(),
        p_mask=1.0,
        p_pos=0.0,
        p_ng=0.0,
        n_iter=2,
        mask_mode="whole_word",
        progress=False,
    )
    assert transfer == ["abcd ef", "<mask> <mask> <mask>"]


def test_without_pos_replacement_the_set_is_the_same_as_with_tags(monkeypatch):
    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    texts, tags = tagged_sentences(30, 6, seed=3)
    settings = AugmentSettings(p_pos=0.0, p_mask=0.2, p_ng=0.3, n_iter=5)
    vocabulary = PosVocabulary.from_tagged(texts, tags)
    tagged = generate(texts, tags, settings, vocabulary, MASK, progress=False)
    assert build_transfer_set(texts, settings, None, MASK, progress=False) == tagged


def test_augment_refuses_one_string():
    with pytest.raises(AugmentError, match="one string"):
        augment("a film")
