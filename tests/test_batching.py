"""Tests for `distilrnn.batching`: length-sorted batches with and without a token budget,
padding, and results scattered back to the input order."""

from __future__ import annotations

import numpy as np
import pytest

from distilrnn.batching import interleaved, length_batches, pad_batch, run_batched


def test_batches_follow_length_order_and_cap_their_size():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = length_batches(lengths, batch_size=3)
    assert [list(b) for b in batches] == [[1, 6, 3], [4, 0, 5], [2]]  # stable on ties


def test_a_token_budget_keeps_long_texts_in_small_batches():
    lengths = [2, 2, 2, 2, 10, 10, 30]
    batches = length_batches(lengths, batch_size=8, max_tokens=20)
    assert [list(b) for b in batches] == [[0, 1, 2, 3], [4, 5], [6]]  # 30 > 20 travels alone
    for batch in batches[:-1]:
        assert len(batch) * max(lengths[i] for i in batch) <= 20


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_batches([1, 2], batch_size=0)


def test_padding_and_results_in_input_order():
    encoded = [[5, 6, 7], [8], [9, 10]]
    ids, mask = pad_batch(encoded, pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    out = run_batched(encoded, lambda i, m: m.sum(1, keepdims=True), 1, pad_id=0, batch_size=2)
    np.testing.assert_array_equal(out[:, 0], [3, 1, 2])


def test_batches_that_run_at_once_are_dealt_texts_of_alike_lengths():
    lengths = [1, 2, 3, 4, 5, 6, 7]
    batches = interleaved(length_batches(lengths, batch_size=2), workers=2)
    assert [list(b) for b in batches] == [[0, 2], [1, 3], [4, 6], [5]]
    encoded = [[7] * n for n in lengths]
    one = run_batched(encoded, lambda i, m: m.sum(1, keepdims=True), 1, pad_id=0, batch_size=2)
    two = run_batched(
        encoded, lambda i, m: m.sum(1, keepdims=True), 1, pad_id=0, batch_size=2, workers=2
    )
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(two[:, 0], lengths)
