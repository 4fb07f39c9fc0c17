"""Transfer-set generation: perturbed copies of the training sentences (Tang et al. 2019, §3.3).

The samples themselves (masking, POS-guided replacement, n-gram sampling, one generator per
sentence, over worker processes) are drawn by `distilrnn.perturbation`; this module assembles
them, with any extra texts, into the transfer set.

`augment(texts)` is the object-level entry point: the transfer set's texts (or pairs) for a list
of training texts (`distilrnn.run.TRANSFER_SET_RULE`). POS tagging lives in `distilrnn.pos`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from distilrnn.config import AugmentSettings
from distilrnn.errors import AugmentError
from distilrnn.inputs import split_inputs
from distilrnn.perturbation import (
    augment_sentence,  # noqa: F401 (re-exported)
    generate,
    generate_pairs,
)
from distilrnn.pos import PosVocabulary, tag_pairs, tag_texts
from distilrnn.validation import settings_with

logger = logging.getLogger(__name__)

_NO_TAG = "-"  # every word's tag when replacement is off (p_pos = 0) and nothing is tagged
DEFAULT_MASK_TOKEN = "[MASK]"


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


class HeldOutOverlap:
    """Which extra texts come too near the validation and test texts (`augment.extra_overlap`).

    A text is near when it equals a held-out text (spaces collapsed), shares a run of `n` words
    with one, or, shorter than `n` words but at least `MIN_CONTAINED` long, is found whole inside
    one; words compare lower-cased. With `n = 0` only equal texts are near. A treebank's phrases
    are fragments of its sentences, so another task's training phrases can hold a test
    sentence's words without being equal to it; those fragments stay out of the transfer set.
    """

    MIN_CONTAINED = 4

    def __init__(self, held_out: Iterable[str], n: int) -> None:
        self.n = n
        self.shortest = min(self.MIN_CONTAINED, n)  # the fewest words a contained text has
        self.equal = {" ".join(text.split()) for text in held_out}
        self.grams: set[tuple[str, ...]] = set()
        if n <= 0:
            return
        for text in self.equal:
            words = tuple(text.lower().split())
            for size in range(self.shortest, n + 1):
                self.grams.update(words[i : i + size] for i in range(len(words) - size + 1))

    @property
    def rule(self) -> str:
        """What besides equality makes a text near, for a warning."""
        if self.n <= 0:
            return "(augment.extra_overlap = 0: equal texts only)"
        return f"or share a run of {self.n} words with one (augment.extra_overlap)"

    def touches(self, text: str) -> bool:
        words = text.split()
        if " ".join(words) in self.equal:
            return True
        if self.n <= 0:
            return False
        words = tuple(word.lower() for word in words)
        if len(words) < self.n:
            return len(words) >= self.shortest and words in self.grams
        return any(words[i : i + self.n] in self.grams for i in range(len(words) - self.n + 1))


def build_transfer_set(
    train_texts: list[str],
    settings: AugmentSettings,
    cache_dir: Path | None,
    mask_token: str,
    count_pieces: Callable[[str], int] | None = None,
    progress: bool = True,
    text_pairs: list[str] | None = None,
    held_out: Iterable[str] = (),
) -> list[str] | list[tuple[str, str]]:
    """Generated samples plus the extra texts, none repeated and none equal to a training text.
    An extra text equal to a `held_out` text (the validation and test texts), or sharing a run of
    `settings.extra_overlap` words with one (`HeldOutOverlap`), is dropped: what a student is
    chosen and scored on never enters its transfer set.

    The training texts themselves are not included (the caller puts them first). POS tags are
    cached in `cache_dir/pos_tags.json` (no cache without `cache_dir`). With `p_pos = 0` no word
    is replaced, so no tagger is loaded: the samples are the same as with tags.

    With `text_pairs` (the second texts of pairs), the samples are `(text, text_pair)` tuples
    (`generate_pairs`), the POS vocabulary counts both sides and the tags are cached in
    `cache_dir/pos_tags_pairs.json`. Extra texts are refused for pairs: a line is not a pair.
    """
    if text_pairs is not None:
        return _pair_transfer_set(
            train_texts, text_pairs, settings, cache_dir, mask_token, count_pieces, progress
        )
    if settings.p_pos > 0:
        cache_path = Path(cache_dir) / "pos_tags.json" if cache_dir is not None else None
        tags = tag_texts(train_texts, settings.spacy_model, cache_path, progress=progress)
    else:
        tags = _no_tags(train_texts)
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
    overlaps = HeldOutOverlap(held_out, settings.extra_overlap)
    extra, dropped = [], 0
    for text in read_extra_texts(extra_path):
        if overlaps.touches(text):
            dropped += 1
        elif text not in seen:
            seen.add(text)
            extra.append(text)
    if dropped:
        logger.warning(
            "augment.extra_text_file: %d lines of %s are validation or test texts %s; they are "
            "left out of the transfer set",
            dropped,
            extra_path,
            overlaps.rule,
        )
    logger.info("%d extra texts from %s added to the transfer set", len(extra), extra_path)
    return samples + extra


def _no_tags(texts: list[str]) -> list[list[str]]:
    return [[_NO_TAG] * len(text.split()) for text in texts]


def _pair_transfer_set(
    texts: list[str],
    text_pairs: list[str],
    settings: AugmentSettings,
    cache_dir: Path | None,
    mask_token: str,
    count_pieces: Callable[[str], int] | None,
    progress: bool,
) -> list[tuple[str, str]]:
    if len(texts) != len(text_pairs):
        raise AugmentError(
            f"augment: {len(texts)} texts but {len(text_pairs)} text_pairs; a pair task needs "
            "one second text per text"
        )
    if settings.extra_text_file:
        raise AugmentError(
            f"augment.extra_text_file: {settings.extra_text_file} holds one text a line, but "
            "this task's inputs are pairs; extra texts are not supported for pair tasks"
        )
    if settings.p_pos > 0:
        cache_path = Path(cache_dir) / "pos_tags_pairs.json" if cache_dir is not None else None
        tags, pair_tags = tag_pairs(
            texts, text_pairs, settings.spacy_model, cache_path, progress=progress
        )
    else:
        tags, pair_tags = _no_tags(texts), _no_tags(text_pairs)
    # Tang et al.'s unigram distributions per tag: over the words of both sides.
    vocabulary = PosVocabulary.from_tagged([*texts, *text_pairs], [*tags, *pair_tags])
    return generate_pairs(
        texts,
        tags,
        text_pairs,
        pair_tags,
        settings,
        vocabulary,
        mask_token,
        count_pieces=count_pieces,
        workers=settings.workers,
        progress=progress,
    )


# --- the object-level entry point ---------------------------------------------------------------


class PieceCounter:
    """Subword pieces per word under a transformers tokenizer (picklable, for workers)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, word: str) -> int:
        return max(1, len(self.tokenizer.tokenize(word)))


def _one_piece(word: str) -> int:
    return 1


def augment_settings(settings: AugmentSettings | None = None, **overrides: Any) -> AugmentSettings:
    """`settings` (default: the defaults) with `overrides` of its fields, validated."""
    return settings_with(settings or AugmentSettings(), "augment", **overrides)


def augment(
    texts: Sequence[str],
    *,
    text_pairs: Sequence[str] | None = None,
    tokenizer: Any = None,
    settings: AugmentSettings | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    held_out: Iterable[str] = (),
    **overrides: Any,
) -> list[str] | list[tuple[str, str]]:
    """The transfer set's texts for the training texts `texts` (`distilrnn.run.TRANSFER_SET_RULE`):
    `texts` as given, then the generated samples and extra texts, each once and none equal to a
    training text (`build_transfer_set`).

    With `text_pairs` (one second text per text), or `(text, text_pair)` tuples as `texts` (e.g.
    `task.train.inputs`), the transfer set is pairs: `(text, text_pair)`
    tuples, the given pairs first, then the generated ones (each side perturbed on its own, each
    pair once and none equal to a given pair).

    `overrides` replace fields of `settings` (e.g. `n_iter=20, p_pos=0.0`). `tokenizer` (a
    transformers tokenizer, the teacher's) gives the mask token and, for `mask_mode =
    "whole_word"`, the pieces per word; without one a mask is `[MASK]`, one per word. POS tags
    are cached in `cache_dir` when given. Lines of `extra_text_file` equal to a `held_out` text
    (pass the validation and test texts) are left out.

        transfer = distilrnn.augment(train_texts, tokenizer=teacher.tokenizer, n_iter=20)
        pairs = distilrnn.augment(task.train.inputs)  # a pair task: (text, text_pair) tuples
    """
    if isinstance(texts, str):
        raise AugmentError("augment: `texts` is one string; pass a list of texts")
    if isinstance(text_pairs, str):
        raise AugmentError("augment: `text_pairs` is one string; pass a list of texts")
    texts = list(texts)
    if text_pairs is None and any(isinstance(text, tuple | list) for text in texts):
        try:  # (text, text_pair) tuples, as `task.train.inputs` gives them
            texts, text_pairs = split_inputs(texts)
        except ValueError as error:
            raise AugmentError(f"augment: {error}") from None
    pairs = None if text_pairs is None else list(text_pairs)
    if pairs is not None and len(pairs) != len(texts):
        raise AugmentError(
            f"augment: {len(texts)} texts but {len(pairs)} text_pairs; a pair task needs one "
            "second text per text"
        )
    settings = augment_settings(settings, **overrides)
    mask_token, count_pieces = DEFAULT_MASK_TOKEN, _one_piece
    if tokenizer is not None:
        mask_token, count_pieces = tokenizer.mask_token, PieceCounter(tokenizer)
        if mask_token is None and settings.p_mask > 0:
            raise AugmentError(
                f"augment.p_mask: the tokenizer {type(tokenizer).__name__} has no mask token; "
                "set p_mask = 0 or use a tokenizer with one"
            )
    generated = build_transfer_set(
        texts,
        settings,
        cache_dir,
        mask_token,
        count_pieces,
        progress=progress,
        text_pairs=pairs,
        held_out=held_out,
    )
    if pairs is None:
        return texts + generated
    return list(zip(texts, pairs, strict=True)) + generated
