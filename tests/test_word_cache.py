"""The word-id cache gives exactly the tokenizer's ids, and steps aside where it cannot."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from distilrnn.export.vocabulary import load_tokenizer
from distilrnn.hub import OFFLINE_MODELS
from distilrnn.runtime import Predictor
from distilrnn.word_cache import WordCacheEncoder

SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"
EDGE_CASES = [
    "",
    " ",
    "\t\n\r",
    "a",
    "A film  that\tfeels\nlong\rand dull.",
    "It's a 10/10 -- (really!) [MASK] [CLS]x [SEP] ##ing",
    "Café naïve résumé déjà vu",  # accents: the tokenizer's own path
    "東京 is big and 北京 too",  # CJK characters are split apart by the normaliser
    "a\x0bb c\x0cd e\x1ff g\x7fh i\x00j",  # controls the normaliser deletes, joining words
    "emoji 🙂 and the replacement char \ufffd here",
    "non-breaking\u00a0space and em\u2003space",
    "x" * 99 + " " + "y" * 100 + " " + "z" * 101,
    "supercalifragilisticexpialidocious unaffable antidisestablishmentarianism",
    " ".join(["longer"] * 400),
]
PIECES = (  # noqa: SIM905 (one line reads better than 24)
    "the Film isn't good , . ! ? -- 's ( ) a B movie's x-ray 3.5 100% @home #1 don't so-so AND tHe"
).split()


def minilm_tokenizer(max_length: int | None) -> Tokenizer:
    path = OFFLINE_MODELS["sentence-transformers/all-MiniLM-L6-v2"]() / "tokenizer.json"
    return load_tokenizer(path, max_length)  # no padding, as the runtime encodes


def sample_texts() -> list[str]:
    rng = random.Random(0)
    texts = list(EDGE_CASES)
    for _ in range(400):
        words = rng.choices(PIECES, k=rng.randint(1, 40))
        separators = rng.choices([" ", "  ", "\t", " \n"], weights=[20, 2, 1, 1], k=len(words))
        texts.append("".join(w + s for w, s in zip(words, separators, strict=True)))
    if SST2_DEV.exists():  # the real sentences of the dev split, when the data is beside us
        texts += [line.split("\t")[0] for line in SST2_DEV.read_text().splitlines()[1:]]
    return texts


@pytest.mark.parametrize("max_length", [128, 12, None])
def test_cached_ids_are_the_tokenizers_own(max_length: int | None):
    tokenizer = minilm_tokenizer(max_length)
    encoder = WordCacheEncoder.for_tokenizer(tokenizer)
    assert encoder is not None and encoder.prefix == [101] and encoder.suffix == [102]
    texts = sample_texts()
    expected = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
    assert encoder.encode(texts) == expected
    assert encoder.encode(texts) == expected  # again, now from the cache
    assert encoder.encode(texts[5:6]) == expected[5:6]
    assert not WordCacheEncoder.fast(EDGE_CASES[6]) and not WordCacheEncoder.fast(EDGE_CASES[8])
    assert WordCacheEncoder.fast(EDGE_CASES[4])


def test_a_full_cache_still_gives_the_tokenizers_ids():
    tokenizer = minilm_tokenizer(128)
    encoder = WordCacheEncoder.for_tokenizer(tokenizer, cache_words=5)
    assert encoder is not None
    texts = sample_texts()[:200]
    assert encoder.encode(texts) == [encoding.ids for encoding in tokenizer.encode_batch(texts)]
    assert len(encoder._cache) == 5


def test_tokenizers_it_cannot_prove_exact_for_are_left_alone():
    assert WordCacheEncoder.for_tokenizer(minilm_tokenizer(2)) is None  # specials fill it
    left = minilm_tokenizer(128)
    left.enable_truncation(128, direction="left")
    assert WordCacheEncoder.for_tokenizer(left) is None
    padded = minilm_tokenizer(128)
    padded.enable_padding(length=32)
    assert WordCacheEncoder.for_tokenizer(padded) is None
    # a byte-pair tokenizer without a BERT normaliser: tokens may cross what split() sees
    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    assert WordCacheEncoder.for_tokenizer(bpe) is None
    no_normaliser = minilm_tokenizer(128)
    no_normaliser.normalizer = normalizers.Lowercase()
    assert WordCacheEncoder.for_tokenizer(no_normaliser) is None


def test_predictor_uses_the_cache_and_agrees_without_it(tmp_path: Path):
    from conftest import build_tiny_student

    from distilrnn.config import ExportSettings
    from distilrnn.export import export_student

    student = build_tiny_student(tmp_path / "student", max_length=8)
    bundle = tmp_path / "bundle"
    export_student(student, bundle, ExportSettings(labels=["negative", "positive"]))
    predictor = Predictor(bundle)
    assert predictor.word_cache is not None
    texts = [
        "the film is good",
        "Dull!",
        "a boring , tedious story that is quite awful indeed",
        "Café naïve",
        "zzz unknown\twords",
    ]
    cached = predictor.logits(texts)
    predictor.word_cache = None
    assert (predictor.logits(texts) == cached).all()
