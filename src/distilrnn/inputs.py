"""What a model reads: a text, or a pair of texts (`text`, `text_pair`).

Datasets carry a pair's second text in a `text_pair` column beside `text`. The teacher is a
cross-encoder: it reads the pair as one sequence (`tokenizer(text, text_pair)`: `[CLS] a [SEP]
b [SEP]` for BERT-style tokenizers). A student reads a pair by its `pair_design`:

- `joint`: the same one sequence as the teacher;
- `siamese` (Tang et al. 2019): each text on its own (`input_ids` and `pair_input_ids`),
  through one shared encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PAIR_COLUMN = "text_pair"
PAIR_DESIGNS = ("siamese", "joint")
SINGLE = "none"  # the pair design of a student of single texts

Input = str | tuple[str, str]


def is_pair(dataset: Any) -> bool:
    """Whether a datasets `Dataset` (or its column names) holds pairs."""
    names = dataset if isinstance(dataset, list | tuple) else dataset.column_names
    return PAIR_COLUMN in names


def columns(dataset: Any) -> tuple[list[str], list[str] | None]:
    """A dataset's texts and, for pairs, its second texts."""
    pairs = list(dataset[PAIR_COLUMN]) if is_pair(dataset) else None
    return list(dataset["text"]), pairs


def split_inputs(inputs: Sequence[Input]) -> tuple[list[str], list[str] | None]:
    """Inputs given as strings or `(text, text_pair)` tuples -> texts and second texts (None
    when they are single texts). Mixing the two is refused."""
    inputs = list(inputs)
    pair = [isinstance(item, tuple | list) for item in inputs]
    if not any(pair):
        return [str(item) for item in inputs], None
    if not all(pair):
        raise ValueError("inputs mix single texts and (text, text_pair) pairs")
    for index, item in enumerate(inputs):
        if len(item) != 2:
            raise ValueError(f"input {index}: a pair has two texts, got {len(item)}")
    return [str(a) for a, _ in inputs], [str(b) for _, b in inputs]


def encode_joint(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
) -> list[list[int]]:
    """Token ids of each text, or of each pair read as one sequence (the cross-encoder's and
    the joint student's input), truncated to `max_length` tokens."""
    if pairs is None:
        return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return tokenizer(list(texts), list(pairs), truncation=True, max_length=max_length)["input_ids"]


def encode_student(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    design: str,
) -> dict[str, list[list[int]]]:
    """A student's token ids: `input_ids`, and for a siamese student `pair_input_ids` (each
    text of a pair on its own, each truncated to `max_length`)."""
    if pairs is None or design != "siamese":
        return {"input_ids": encode_joint(tokenizer, texts, pairs, max_length)}
    return {
        "input_ids": encode_joint(tokenizer, texts, None, max_length),
        "pair_input_ids": encode_joint(tokenizer, pairs, None, max_length),
    }
