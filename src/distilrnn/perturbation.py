"""Perturbed copies of sentences: the samples of the transfer set (Tang et al. 2019, §3.3).

Each training sentence yields `n_iter` samples. A sample goes word by word with one uniform draw
u per word: u < p_mask masks the word, p_mask <= u < p_mask + p_pos replaces it by another word
with the same fine-grained POS tag (drawn from that tag's unigram distribution over the training
set), otherwise the word stays. Then, with probability p_ng, only a random n-gram of the words is
kept. A "word" is a whitespace-separated token: the texts are pre-tokenised (GLUE SST-2).

Speed: the draws of one sentence's `n_iter` samples are made at once with numpy, so the Python
work per sample is one string join. Each sentence has its own generator seeded from
(seed, sentence index), which makes the set independent of the number of worker processes.

Pairs (`text_pairs`): each generated pair perturbs each side on its own, with its own generator,
word draws, n-gram coin and n; the POS unigram distributions count the words of both sides.
Deduplication is on the pair.

`generate` and `generate_pairs` draw the samples of a list of tagged texts (in worker processes
when asked); `distilrnn.augmentation` assembles them into the transfer set.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from distilrnn.config import AugmentSettings
from distilrnn.errors import AugmentError
from distilrnn.pos import PosVocabulary

logger = logging.getLogger(__name__)

_CHUNK_SIZE = 1000  # sentences per unit of work (and per progress-bar update)
# Joins a generated pair's two sides inside the worker protocol and the dedupe sets: a side is
# whitespace-split words joined by single spaces, so it never holds a tab.
_PAIR_SEPARATOR = "\t"


# --- sampling -----------------------------------------------------------------------------------


def _replacement_words(
    vocabulary: PosVocabulary, tag_ids: np.ndarray, slots: np.ndarray, uniforms: np.ndarray
) -> np.ndarray:
    """Slots of words drawn from each position's tag distribution, excluding the original word.

    Tang et al. replace a word by *another* word of its tag, so the unigram distribution is
    renormalised without the original word: scale u into [0, 1 - p_word) and step over the
    original word's interval. All arrays are (positions,); the tags must be known.
    """
    known = slots >= 0
    safe = np.where(known, slots, 0)
    word_start = np.where(known, vocabulary.starts[safe], np.inf)
    word_mass = np.where(known, vocabulary.ends[safe] - vocabulary.starts[safe], 0.0)
    points = tag_ids + uniforms * (1.0 - word_mass)
    points = np.where(points >= word_start, points + word_mass, points)
    drawn = np.searchsorted(vocabulary.ends, points, side="right")
    return np.minimum(drawn, vocabulary.last_slot[tag_ids])  # rounding never leaves the tag


def _draw_samples(
    words: Sequence[str],
    tags: Sequence[str],
    rng: np.random.Generator,
    settings: AugmentSettings,
    vocabulary: PosVocabulary,
    mask_strings: Sequence[str],
    count: int,
) -> list[str]:
    """`count` samples of one sentence; `mask_strings[i]` is what a masked word i becomes.

    Draw order (fixed, whatever the probabilities): word uniforms (count, length), replacement
    uniforms (count, length), n-gram coin (count,), n-gram length (count,), n-gram start (count,).
    """
    length = len(words)
    if length == 0:
        return [""] * count
    tag_ids, slots = vocabulary.encode(words, tags)
    u = rng.random((count, length))
    replacement_uniforms = rng.random((count, length))
    use_ngram = rng.random(count) < settings.p_ng
    ngram_length = np.minimum(rng.integers(1, settings.max_ngram + 1, size=count), length)
    ngram_start = rng.integers(0, length - ngram_length + 1)

    known_tag = tag_ids >= 0
    only_type = (slots >= 0) & (vocabulary.tag_sizes[np.where(known_tag, tag_ids, 0)] == 1)
    replaceable = known_tag & ~only_type  # a tag's only word type has nothing to swap in
    masked = u < settings.p_mask
    replaced = ~masked & (u < settings.p_mask + settings.p_pos) & replaceable

    # Token table: the words [0, length), their masks [length, 2 length), replacements after.
    index = np.arange(length) + length * masked  # (count, length)
    rows, columns = np.nonzero(replaced)
    table = [*words, *mask_strings]
    if len(rows):
        drawn = _replacement_words(
            vocabulary, tag_ids[columns], slots[columns], replacement_uniforms[rows, columns]
        )
        index[rows, columns] = 2 * length + np.arange(len(rows))
        flat_words = vocabulary.flat_words
        table.extend(flat_words[slot] for slot in drawn.tolist())

    samples = []
    for row, ngram, start, size in zip(
        index.tolist(),
        use_ngram.tolist(),
        ngram_start.tolist(),
        ngram_length.tolist(),
        strict=True,
    ):
        if ngram:
            row = row[start : start + size]
        samples.append(" ".join([table[i] for i in row]))
    return samples


def _mask_strings(
    words: Sequence[str], mask_token: str, mode: str, count_pieces: Callable[[str], int] | None
) -> list[str]:
    if mode == "word":
        return [mask_token] * len(words)
    if count_pieces is None:
        raise AugmentError(
            "augment.mask_mode: `whole_word` needs count_pieces (the teacher tokenizer's "
            "number of pieces per word)"
        )
    return [" ".join([mask_token] * max(1, count_pieces(word))) for word in words]


def augment_sentence(
    words: list[str],
    tags: list[str],
    rng: np.random.Generator,
    settings: AugmentSettings,
    vocabulary: PosVocabulary,
    mask_token: str,
    count_pieces: Callable[[str], int] | None = None,
) -> str:
    """One augmented sample of a sentence given as words with their POS tags.

    Masking: one `mask_token` per masked word (`mask_mode="word"`), or `count_pieces(word)` of
    them (`"whole_word"`, e.g. the teacher tokenizer's WordPiece count). n-gram sampling works on
    words, so a whole-word mask is never cut in half; n is uniform in 1..max_ngram, then capped
    at the sentence length.
    """
    if len(words) != len(tags):
        raise AugmentError(f"{len(words)} words but {len(tags)} POS tags")
    masks = _mask_strings(words, mask_token, settings.mask_mode, count_pieces)
    return _draw_samples(words, tags, rng, settings, vocabulary, masks, count=1)[0]


# --- the whole set ------------------------------------------------------------------------------


@dataclass
class _Job:
    """What every chunk of work needs; sent to each worker process once, via the initializer."""

    settings: AugmentSettings
    vocabulary: PosVocabulary
    mask_token: str
    masks_by_word: dict[str, str] | None  # whole-word masks, computed once in the parent
    skip: frozenset[str]  # the training texts, never emitted


_Chunk = tuple[int, list[str], list[list[str]], list[str] | None, list[list[str]] | None]


def _side_samples(job: _Job, text: str, tags: list[str], rng: np.random.Generator) -> list[str]:
    """`n_iter` samples of one text (one side of a pair); all empty for an empty text."""
    words = text.split()
    if job.masks_by_word is None:
        masks = [job.mask_token] * len(words)
    else:
        masks = [job.masks_by_word[word] for word in words]
    settings = job.settings
    return _draw_samples(words, tags, rng, settings, job.vocabulary, masks, settings.n_iter)


def _run_chunk(
    job: _Job,
    start: int,
    texts: list[str],
    tags: list[list[str]],
    pairs: list[str] | None = None,
    pair_tags: list[list[str]] | None = None,
) -> list[str]:
    """Samples of sentences (or pairs) start.. in order, without training texts or repeats inside
    the chunk. A pair sample is its two sides joined by `_PAIR_SEPARATOR`."""
    seed, skip, seen, out = job.settings.seed, job.skip, set(), []
    for offset, (text, text_tags) in enumerate(zip(texts, tags, strict=True)):
        index = start + offset
        if pairs is None or pair_tags is None:
            if not text.split():
                continue
            samples = _side_samples(job, text, text_tags, np.random.default_rng([seed, index]))
        else:
            if not text.split() and not pairs[offset].split():
                continue
            # One generator per side: the sides' perturbations are independent draws.
            firsts = _side_samples(job, text, text_tags, np.random.default_rng([seed, index, 0]))
            seconds = _side_samples(
                job, pairs[offset], pair_tags[offset], np.random.default_rng([seed, index, 1])
            )
            samples = [f"{a}{_PAIR_SEPARATOR}{b}" for a, b in zip(firsts, seconds, strict=True)]
        for sample in samples:
            if sample not in skip and sample not in seen:
                seen.add(sample)
                out.append(sample)
    return out


_worker_job: _Job | None = None  # set once per worker process by the pool initializer


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _run_worker_chunk(arguments: _Chunk) -> str:
    assert _worker_job is not None, "worker used without _init_worker"
    # One newline-joined string pickles far faster than a list of strings; samples are
    # whitespace-separated words, so they hold no newline.
    return "\n".join(_run_chunk(_worker_job, *arguments))


def _chunk_results(job: _Job, chunks: list[_Chunk], workers: int) -> Iterator[list[str]]:
    """Each chunk's samples, in chunk order; computed in worker processes when workers > 1."""
    workers = min(workers, len(chunks))
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    if workers > 1 and main_file is not None and not os.path.exists(main_file):
        # spawn re-imports the main script; a script read from stdin cannot be, and the pool
        # would hang restarting workers that die at start-up.
        logger.warning("main script %s cannot be re-imported: generating in-process", main_file)
        workers = 1
    if workers <= 1:
        for chunk in chunks:
            yield _run_chunk(job, *chunk)
        return
    # spawn, not fork: the parent may hold threads (torch, tokenizers) that a fork would copy
    # in a locked state. Workers import only numpy, tqdm and distilrnn's config and perturbation.
    pool = multiprocessing.get_context("spawn").Pool(
        workers, initializer=_init_worker, initargs=(job,)
    )
    try:
        for joined in pool.imap(_run_worker_chunk, chunks):
            yield joined.split("\n") if joined else []
    finally:
        pool.terminate()
        pool.join()


def generate(
    texts: list[str],
    tags: list[list[str]],
    settings: AugmentSettings,
    vocabulary: PosVocabulary,
    mask_token: str,
    count_pieces: Callable[[str], int] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> list[str]:
    """`settings.n_iter` samples of every text, deduplicated, in (text, iteration) order.

    A sample equal to a training text, or to an earlier sample, is dropped. Sentence i draws
    from `np.random.default_rng([settings.seed, i])`, so the result is the same for any
    `workers`; with more than one, contiguous chunks of texts go to spawned processes.
    """
    return _generate(
        texts, tags, None, None, settings, vocabulary, mask_token, count_pieces, workers, progress
    )


def generate_pairs(
    texts: list[str],
    tags: list[list[str]],
    text_pairs: list[str],
    pair_tags: list[list[str]],
    settings: AugmentSettings,
    vocabulary: PosVocabulary,
    mask_token: str,
    count_pieces: Callable[[str], int] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> list[tuple[str, str]]:
    """`settings.n_iter` samples of every pair `(texts[i], text_pairs[i])`, as `generate`.

    Each side is perturbed on its own (side s of pair i draws from `np.random.default_rng(
    [settings.seed, i, s])`): its own masks, replacements, n-gram coin and n. A sample equal to
    a training pair, or to an earlier sample, is dropped; a side may equal a training text.
    """
    if len(text_pairs) != len(pair_tags):
        raise AugmentError(f"{len(text_pairs)} second texts but {len(pair_tags)} tag lists")
    if len(texts) != len(text_pairs):
        raise AugmentError(f"{len(texts)} texts but {len(text_pairs)} second texts of pairs")
    joined = _generate(
        texts,
        tags,
        text_pairs,
        pair_tags,
        settings,
        vocabulary,
        mask_token,
        count_pieces,
        workers,
        progress,
    )
    return [tuple(sample.split(_PAIR_SEPARATOR)) for sample in joined]  # type: ignore[misc]


def _generate(
    texts: list[str],
    tags: list[list[str]],
    pairs: list[str] | None,
    pair_tags: list[list[str]] | None,
    settings: AugmentSettings,
    vocabulary: PosVocabulary,
    mask_token: str,
    count_pieces: Callable[[str], int] | None,
    workers: int,
    progress: bool,
) -> list[str]:
    if len(texts) != len(tags):
        raise AugmentError(f"{len(texts)} texts but {len(tags)} tag lists")
    if settings.seed < 0:
        raise AugmentError(f"augment.seed: must be >= 0, got {settings.seed}")
    masks_by_word = None
    if settings.mask_mode == "whole_word":
        types = sorted({word for text in [*texts, *(pairs or [])] for word in text.split()})
        masks_by_word = dict(
            zip(types, _mask_strings(types, mask_token, "whole_word", count_pieces), strict=True)
        )
    if pairs is None:
        skip = frozenset(" ".join(text.split()) for text in texts)
    else:
        skip = frozenset(
            f"{' '.join(a.split())}{_PAIR_SEPARATOR}{' '.join(b.split())}"
            for a, b in zip(texts, pairs, strict=True)
        )
    job = _Job(settings, vocabulary, mask_token, masks_by_word, skip)
    chunk_size = max(1, min(_CHUNK_SIZE, math.ceil(len(texts) / (4 * workers))))
    chunks: list[_Chunk] = [
        (
            start,
            texts[start : start + chunk_size],
            tags[start : start + chunk_size],
            None if pairs is None else pairs[start : start + chunk_size],
            None if pair_tags is None else pair_tags[start : start + chunk_size],
        )
        for start in range(0, len(texts), chunk_size)
    ]
    seen: set[str] = set()
    samples: list[str] = []
    unit = "sentence" if pairs is None else "pair"
    with tqdm(total=len(texts), desc="augment", unit=unit, disable=not progress) as bar:
        for chunk, chunk_samples in zip(chunks, _chunk_results(job, chunks, workers), strict=True):
            for sample in chunk_samples:  # chunks come in order: the first copy is kept
                if sample not in seen:
                    seen.add(sample)
                    samples.append(sample)
            bar.update(len(chunk[1]))
    logger.info(
        "%d samples from %d %ss (%d iterations each, after deduplication)",
        len(samples),
        len(texts),
        unit,
        settings.n_iter,
    )
    return samples
