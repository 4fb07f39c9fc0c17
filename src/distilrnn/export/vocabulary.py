"""Tokens of a bundle's tokenizer: counting them in texts, the ids a set of texts uses, the
unknown and special tokens, and vocabulary pruning on top of `RNNStudent.prune_vocabulary`.

`token_counts` is the one token counter for raw texts: pruning (`used_token_ids`) and the
weights of an export-time factorisation (`token_weights`) both count through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from distilrnn.errors import BundleError, DataError, MissingFileError
from distilrnn.export.graph import BundleModel
from distilrnn.student import RNNStudent
from distilrnn.student.factorize import frequency_weights

logger = logging.getLogger(__name__)

TokenizerSource = str | Path | Tokenizer  # a tokenizer.json, or a `tokenizers.Tokenizer`


def load_tokenizer(tokenizer: TokenizerSource, max_length: int | None = None) -> Tokenizer:
    """A copy of `tokenizer` (a `tokenizer.json` path or a `tokenizers.Tokenizer`, e.g. a
    `PreTrainedTokenizerFast.backend_tokenizer`) that encodes as the runtime does: no padding,
    truncated to `max_length` tokens (None: not truncated). The caller's object is not changed."""
    if isinstance(tokenizer, Tokenizer):
        loaded = Tokenizer.from_str(tokenizer.to_str())
    else:
        path = Path(tokenizer)
        if not path.is_file():
            raise MissingFileError(f"tokenizer not found: {path}")
        loaded = Tokenizer.from_file(str(path))
    loaded.no_padding()
    if max_length is None:
        loaded.no_truncation()
    else:
        loaded.enable_truncation(max_length)
    return loaded


def token_counts(
    tokenizer: Tokenizer, texts: Iterable[str], vocab_size: int | None = None, chunk: int = 8192
) -> np.ndarray:
    """How often each token id occurs when `tokenizer` encodes `texts`: `(vocab_size,)` int64
    (default size: the tokenizer's, added tokens included). Texts are encoded `chunk` at a time."""
    size = tokenizer.get_vocab_size(with_added_tokens=True) if vocab_size is None else vocab_size
    counts = np.zeros(size, dtype=np.int64)
    batch: list[str] = []
    seen = 0

    def flush() -> None:
        for encoding in tokenizer.encode_batch(batch):
            np.add.at(counts, encoding.ids, 1)
        batch.clear()

    for text in texts:
        batch.append(text)
        seen += 1
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    if seen == 0:
        raise DataError("no texts to count tokens in: the text source is empty")
    return counts


def used_token_ids(tokenizer: Tokenizer, texts: Iterable[str]) -> np.ndarray:
    """Sorted unique ids `(n,)` int64 of the tokens `tokenizer` produces for `texts`."""
    return np.flatnonzero(token_counts(tokenizer, texts)).astype(np.int64)


def token_weights(
    tokenizer: TokenizerSource, texts: Iterable[str], max_length: int | None = None
) -> np.ndarray:
    """`frequency_weights` `(vocab_size,)` of each token's count in `texts`, encoded as the
    bundle encodes them (truncated to `max_length`): the token weights of `RNNStudent.narrow`."""
    return frequency_weights(token_counts(load_tokenizer(tokenizer, max_length), texts))


def unknown_token_id(tokenizer: Tokenizer) -> int:
    """The id that tokens outside the vocabulary get; pruning maps dropped tokens to its row."""
    token = getattr(tokenizer.model, "unk_token", None)
    token_id = tokenizer.token_to_id(token) if token else None
    if token_id is None:
        raise BundleError(
            "the tokenizer has no unknown token, so dropped tokens would have no row to map to; "
            "export without vocabulary pruning"
        )
    return token_id


def special_token_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of the tokenizer's special tokens (padding, unknown, [CLS], ...): pruning keeps them."""
    return [i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special]


def prune_vocabulary(
    student: RNNStudent, keep_ids: np.ndarray, unk_id: int
) -> tuple[BundleModel, dict[str, int]]:
    """A `BundleModel` of `student.prune_vocabulary(keep_ids, unk_id)`: its embedding holds only
    the rows `keep_ids` (plus padding and unknown), its id table maps the tokenizer's ids to them.
    Returns it and counts: kept rows, vocabulary size, bytes removed and saved."""
    config = student.config
    pruned, id_table = student.prune_vocabulary(keep_ids, unk_id)
    kept = pruned.config.vocab_size
    removed_bytes = (config.vocab_size - kept) * config.embedding_dim * 4  # float32 rows
    table_bytes = config.vocab_size * 8  # int64 ids
    counts = {
        "vocab_size": config.vocab_size,
        "kept_rows": kept,
        "embedding_bytes_removed": removed_bytes,
        "id_table_bytes": table_bytes,
        "bytes_saved": removed_bytes - table_bytes,
    }
    logger.info("vocabulary pruning keeps %d of %d rows", kept, config.vocab_size)
    return BundleModel(pruned, id_table), counts


def pruned_model(
    student: RNNStudent, tokenizer: Tokenizer, texts: Iterable[str]
) -> tuple[BundleModel, dict[str, int]]:
    """`prune_vocabulary` keeping the tokens `tokenizer` produces for `texts` and its special
    tokens; dropped tokens read the unknown token's row."""
    keep = np.union1d(used_token_ids(tokenizer, texts), special_token_ids(tokenizer))
    return prune_vocabulary(student, keep, unknown_token_id(tokenizer))
