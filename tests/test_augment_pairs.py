"""Transfer sets of sentence pairs: each side perturbed on its own, dedupe on the pair."""

from __future__ import annotations

import pytest

from distilrnn import pos
from distilrnn.augmentation import (
    AugmentError,
    PosVocabulary,
    augment,
    generate_pairs,
)
from distilrnn.config import AugmentSettings
from distilrnn.pos import tag_pairs, tag_texts

MASK = "[MASK]"
FIRSTS = [
    "the film is a charming and moving story",
    "an awful , tedious movie with a weak plot",
    "the director keeps the pace brisk",
]
SECONDS = [
    "a charming story that moves",
    "the plot is weak and the movie tedious",
    "the pace never slows",
]
EIGHT_WORDS = "one two three four five six seven eight"


def no_tagger(name: str):
    raise AssertionError("a POS tagger was loaded although it should not be")


def untagged(texts: list[str]) -> list[list[str]]:
    return [["-"] * len(text.split()) for text in texts]


def generate_untagged(texts: list[str], pairs: list[str], workers: int = 1, **settings):
    tags, pair_tags = untagged(texts), untagged(pairs)
    vocabulary = PosVocabulary.from_tagged([*texts, *pairs], [*tags, *pair_tags])
    return generate_pairs(
        texts,
        tags,
        pairs,
        pair_tags,
        AugmentSettings(p_pos=0.0, **settings),
        vocabulary,
        MASK,
        workers=workers,
        progress=False,
    )


def test_pair_transfer_set_is_the_given_pairs_then_generated_pairs():
    transfer = augment(FIRSTS, text_pairs=SECONDS, n_iter=4, progress=False)
    given = list(zip(FIRSTS, SECONDS, strict=True))
    assert transfer[: len(given)] == given
    generated = transfer[len(given) :]
    assert len(generated) > len(given)
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in generated)


def test_full_masking_masks_every_word_of_both_sides(monkeypatch):
    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    transfer = augment(
        ["good film", "a dull movie"],
        text_pairs=["it is fine", "bad"],
        p_mask=1.0,
        p_pos=0.0,
        p_ng=0.0,
        n_iter=3,
        progress=False,
    )
    assert transfer[2:] == [
        ("[MASK] [MASK]", "[MASK] [MASK] [MASK]"),
        ("[MASK] [MASK] [MASK]", "[MASK]"),
    ]


def test_sides_of_a_pair_mask_different_positions():
    # Both sides are the same text: seeded alike, the sides would mask alike.
    samples = generate_untagged([EIGHT_WORDS], [EIGHT_WORDS], n_iter=20, p_mask=0.5, p_ng=0.0)
    masked = [([w == MASK for w in a.split()], [w == MASK for w in b.split()]) for a, b in samples]
    assert any(first != second for first, second in masked)
    assert all(len(first) == len(second) == 8 for first, second in masked)


def test_sides_of_a_pair_draw_their_own_ngram():
    samples = generate_untagged([EIGHT_WORDS], [EIGHT_WORDS], n_iter=20, p_mask=0.0, p_ng=0.5)
    lengths = {(len(a.split()), len(b.split())) for a, b in samples}
    assert any(first != second for first, second in lengths)  # n differs between the sides
    assert any(first == 8 and second < 8 for first, second in lengths)  # one side cut only


def test_pair_samples_are_unique_and_never_a_given_pair():
    # The 1-gram "film" of "good film" makes pair 0 yield pair 1 ("film", "the plot") often.
    texts, pairs = ["good film", "film", "the plot"], ["the plot", "the plot", "plot"]
    samples = generate_untagged(texts, pairs, n_iter=200, p_mask=0.3, p_ng=0.5)
    assert len(samples) == len(set(samples))
    assert not set(samples) & set(zip(texts, pairs, strict=True))
    assert any(first in texts for first, _ in samples)  # a side may be a training text
    assert 0 < len(samples) < len(texts) * 200


def test_same_seed_gives_the_same_pair_set():
    first = augment(FIRSTS, text_pairs=SECONDS, n_iter=5, seed=7, progress=False)
    assert augment(FIRSTS, text_pairs=SECONDS, n_iter=5, seed=7, progress=False) == first
    assert augment(FIRSTS, text_pairs=SECONDS, n_iter=5, seed=8, progress=False) != first


def test_two_workers_give_the_same_pairs_as_one():
    texts = [f"{EIGHT_WORDS} {i}" for i in range(12)]
    pairs = [f"pair {i} of {EIGHT_WORDS}" for i in range(12)]
    one = generate_untagged(texts, pairs, workers=1, n_iter=5)
    assert generate_untagged(texts, pairs, workers=2, n_iter=5) == one


def test_pos_replacement_draws_words_of_both_sides():
    # "film" is the first texts' only NN; "movie", another NN, occurs only in a second text.
    transfer = augment(
        ["the film"], text_pairs=["the movie"], p_mask=0.0, p_pos=1.0, p_ng=0.0, progress=False
    )
    assert ("the movie", "the film") in transfer[1:]


def test_whole_word_masks_cover_words_of_the_second_texts():
    class Tokenizer:  # the two things augment reads off a transformers tokenizer
        mask_token = "<mask>"

        def tokenize(self, word: str) -> list[str]:
            return [word[i : i + 2] for i in range(0, len(word), 2)]

    transfer = augment(
        ["ab"],
        text_pairs=["abcdef"],
        tokenizer=Tokenizer(),
        mask_mode="whole_word",
        p_mask=1.0,
        p_pos=0.0,
        p_ng=0.0,
        progress=False,
    )
    assert transfer[1:] == [("<mask>", "<mask> <mask> <mask>")]


def test_pairs_of_another_length_than_texts_are_an_error():
    with pytest.raises(AugmentError, match="3 texts but 2 text_pairs"):
        augment(FIRSTS, text_pairs=SECONDS[:2], progress=False)


def test_extra_text_file_is_refused_for_pairs(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("a new text\n", encoding="utf-8")
    with pytest.raises(AugmentError, match=r"augment\.extra_text_file.*pairs"):
        augment(FIRSTS, text_pairs=SECONDS, p_pos=0.0, extra_text_file=str(extra))


def test_pair_tags_align_with_the_words_of_each_side():
    tags, pair_tags = tag_pairs(FIRSTS, SECONDS, "en_core_web_sm", progress=False)
    assert [len(t) for t in tags] == [len(text.split()) for text in FIRSTS]
    assert [len(t) for t in pair_tags] == [len(text.split()) for text in SECONDS]
    assert pair_tags[0][:2] == ["DT", "JJ"]  # "a charming"


def test_pair_tag_cache_is_read_on_the_second_call(tmp_path, monkeypatch):
    cache = tmp_path / "tags.json"
    first = tag_pairs(FIRSTS, SECONDS, "en_core_web_sm", cache_path=cache, progress=False)
    monkeypatch.setattr(pos, "load_pos_tagger", no_tagger)
    assert tag_pairs(FIRSTS, SECONDS, "en_core_web_sm", cache_path=cache) == first


def test_pair_tag_cache_is_not_served_to_single_texts(tmp_path, monkeypatch):
    cache = tmp_path / "tags.json"
    tag_pairs(FIRSTS, SECONDS, "en_core_web_sm", cache_path=cache, progress=False)
    loaded = []
    monkeypatch.setattr(pos, "load_pos_tagger", lambda name: loaded.append(name) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # the same words, as one list: tagged anew
        tag_texts([*FIRSTS, *SECONDS], "en_core_web_sm", cache_path=cache, progress=False)
    assert loaded == ["en_core_web_sm"]


def test_pair_transfer_set_caches_tags_beside_single_text_tags(tmp_path):
    augment(FIRSTS, text_pairs=SECONDS, n_iter=2, cache_dir=tmp_path, progress=False)
    assert (tmp_path / "pos_tags_pairs.json").is_file()
    assert not (tmp_path / "pos_tags.json").exists()
