"""Fast token ids for single texts from a cache of whitespace-separated words.

A BERT-style tokenizer (BertNormalizer, BertPreTokenizer, WordPiece, special tokens around the
sequence) never lets a token cross whitespace, and on printable ASCII its normaliser works one
character at a time. So on such texts the ids of a text are the special prefix, the ids of each
whitespace-separated word in turn (cut to the length limit) and the special suffix, and a word's
ids can be looked up instead of computed. The `tokenizers` library builds a full `Encoding`
(offsets, tokens, masks) for every text, about 40 µs for an SST-2 sentence on this project's
machine; the lookup is a few µs, which is what the fastest students spend on everything else.

`WordCacheEncoder.for_tokenizer` returns None for any tokenizer it cannot prove this for (another
normaliser, pre-tokeniser, model or template, left truncation, padding) and checks itself against
the tokenizer on probe texts before it is used. Texts outside printable ASCII (plus tab, newline,
carriage return) go to the tokenizer itself, so every result is the tokenizer's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from tokenizers import Tokenizer

_NORMALIZERS = {"BertNormalizer"}
_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_MODELS = {"WordPiece"}
# ASCII characters the BERT normaliser deletes (controls other than tab, newline, return): a
# text holding one may join two words, so it takes the tokenizer's own path.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PROBES = (
    "a",
    "Hello, world!  It's   a (tiny) test -- of [MASK] and [CLS]tokens.",
    "don't stop\tbelieving\nnow\r3.14 e-mail x@y.z #tag 100%",
    "unaffable supercalifragilisticexpialidocious " + "x" * 120,
    " ".join(["word"] * 300),
    "",
    "   ",
)
DEFAULT_CACHE_WORDS = 200_000


class WordCacheEncoder:
    """The ids `tokenizer.encode(text).ids` gives, for single texts, from cached word ids.

    `max_length` is the tokenizer's truncation length including special tokens (None: none).
    At most `cache_words` distinct words are kept; later new words are tokenised each time."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int | None,
        prefix: Sequence[int],
        suffix: Sequence[int],
        *,
        cache_words: int = DEFAULT_CACHE_WORDS,
    ):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.prefix = list(prefix)
        self.suffix = list(suffix)
        self.cache_words = cache_words
        specials = len(self.prefix) + len(self.suffix)
        self._content = None if max_length is None else max_length - specials
        self._words = Tokenizer.from_str(tokenizer.to_str())
        self._words.no_truncation()
        self._words.no_padding()
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def for_tokenizer(
        cls, tokenizer: Tokenizer, *, cache_words: int = DEFAULT_CACHE_WORDS
    ) -> WordCacheEncoder | None:
        """An encoder that gives exactly `tokenizer`'s ids (as configured now: truncation set,
        no padding), or None where the tokenizer is not one this shortcut is exact for."""
        try:
            spec = json.loads(tokenizer.to_str())
        except (ValueError, TypeError):
            return None
        normalizer = spec.get("normalizer") or {}
        pre_tokenizer = spec.get("pre_tokenizer") or {}
        model = spec.get("model") or {}
        truncation = spec.get("truncation")
        if (
            normalizer.get("type") not in _NORMALIZERS
            or pre_tokenizer.get("type") not in _PRE_TOKENIZERS
            or model.get("type") not in _MODELS
            or spec.get("padding") is not None
            or (truncation is not None and truncation.get("direction") != "Right")
            or (truncation is not None and truncation.get("stride", 0) != 0)
        ):
            return None
        prefix, suffix = _special_frame(tokenizer)
        if prefix is None or suffix is None:
            return None
        max_length = None if truncation is None else int(truncation["max_length"])
        if max_length is not None and max_length <= len(prefix) + len(suffix):
            return None
        encoder = cls(tokenizer, max_length, prefix, suffix, cache_words=cache_words)
        probes = list(_PROBES)
        if encoder.encode(probes) != [e.ids for e in tokenizer.encode_batch(probes)]:
            return None
        encoder.clear()
        return encoder

    def clear(self) -> None:
        """Forget every cached word (a cold start, as a fresh process has)."""
        self._cache.clear()

    @staticmethod
    def fast(text: str) -> bool:
        """Whether `text` takes the cached path (printable ASCII, tab, newline, return)."""
        return text.isascii() and (text.isprintable() or _CONTROL.search(text) is None)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, as the tokenizer gives them."""
        cache = self._cache
        prefix = self.prefix
        results: list[list[int] | None] = []
        slow: list[int] = []  # texts for the tokenizer itself
        unseen: list[int] = []  # texts with a word the cache lacks: after it learns them
        for index, text in enumerate(texts):
            # printable ASCII, tab, newline, return: the cached path (`fast`, inlined)
            if not (text.isascii() and (text.isprintable() or _CONTROL.search(text) is None)):
                slow.append(index)
                results.append(None)
                continue
            ids = prefix.copy()
            try:
                for word in text.split():
                    ids += cache[word]
            except KeyError:
                unseen.append(index)
                results.append(None)
                continue
            results.append(self._framed(ids))
        if unseen:
            self._learn(texts, unseen, results)
        if slow:
            encodings = self.tokenizer.encode_batch([texts[index] for index in slow])
            for index, encoding in zip(slow, encodings, strict=True):
                results[index] = encoding.ids
        return results  # type: ignore[return-value]

    def _framed(self, ids: list[int]) -> list[int]:
        """`ids` (the prefix, then the words' ids) cut to the content length, then the suffix."""
        content, start = self._content, len(self.prefix)
        if content is not None and len(ids) - start > content:
            del ids[start + content :]
        ids += self.suffix
        return ids

    def _learn(
        self, texts: Sequence[str], unseen: list[int], results: list[list[int] | None]
    ) -> None:
        """Encode the words of `texts[unseen]` the cache lacks (cached while it has room, the
        rest held for this call only) and fill those texts' `results`."""
        cache = self._cache
        split = [texts[index].split() for index in unseen]
        missing = {word for words in split for word in words if word not in cache}
        ordered = sorted(missing)
        room = max(0, self.cache_words - len(cache))
        extra: dict[str, list[int]] = {}  # new words past the cache's limit: this call only
        encodings = self._words.encode_batch(ordered, add_special_tokens=False)
        for rank, (word, encoding) in enumerate(zip(ordered, encodings, strict=True)):
            (cache if rank < room else extra)[word] = encoding.ids
        prefix = self.prefix
        for index, words in zip(unseen, split, strict=True):
            ids = prefix.copy()
            for word in words:
                piece = cache.get(word)
                ids += extra[word] if piece is None else piece
            results[index] = self._framed(ids)


def _special_frame(tokenizer: Tokenizer) -> tuple[list[int] | None, list[int] | None]:
    """The ids the post-processor puts before and after a single sequence, found by encoding a
    probe word with and without them (None, None when they do not frame it)."""
    probe = "a"
    bare = tokenizer.encode(probe, add_special_tokens=False).ids
    full = tokenizer.encode(probe).ids
    if not bare:
        return None, None
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return None, None
