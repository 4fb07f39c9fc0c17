"""One length-batching loop for every model call over many texts.

Texts are sorted by length so that a batch pads to similar lengths; each batch holds at most
`batch_size` texts and, with `max_tokens`, at most `max_tokens` padded tokens, so short texts
travel in large batches and long ones in small batches. Results are scattered back to the
input order. numpy only: the torch-free runtime uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from itertools import chain

import numpy as np


def length_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int = 0
) -> list[np.ndarray]:
    """Indices grouped into length-sorted batches of at most `batch_size` texts and, when
    `max_tokens` > 0, at most `max_tokens` padded tokens (a batch of n texts of longest length L
    costs n * L). A text longer than `max_tokens` travels alone."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    if max_tokens <= 0:  # batch_size alone decides: cut the sorted order into equal runs
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    budget = max_tokens if max_tokens > 0 else None
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        # lengths ascend, so the last text of the candidate batch sets its padded length
        while (
            end < len(order)
            and end - start < batch_size
            and (budget is None or (end - start + 1) * lengths[order[end]] <= budget)
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists: `input_ids` and `attention_mask`, both `(batch, longest)`
    int64."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    longest = int(lengths.max())
    real = np.arange(longest) < lengths[:, None]  # row-major, as the ids are chained below
    input_ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    input_ids[real] = np.fromiter(chain.from_iterable(sequences), np.int64, int(lengths.sum()))
    return input_ids, real.astype(np.int64)


def run_batched(
    encoded: Sequence[Sequence[int]],
    call: Callable[[np.ndarray, np.ndarray], np.ndarray],
    width: int,
    *,
    pad_id: int,
    batch_size: int,
    max_tokens: int = 0,
    on_batch: Callable[[int], object] | None = None,
    segments: Sequence[Sequence[int]] | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> np.ndarray:
    """`call(input_ids, attention_mask)` over length-sorted padded batches of `encoded` token
    id lists; returns its outputs `(len(encoded), width)` float32 in the input order.
    `on_batch(n)` is told how many texts each batch held (for a progress bar). With `segments`
    (a pair's token type ids, one list per text), `call` gets them padded as a third array.
    With `workers` > 1, up to that many batches are padded and called at once, in threads (for
    a `call` that releases the GIL, as an onnxruntime session does; `executor`: a pool to reuse,
    else one per call), each run of `workers` batches `interleaved`; the outputs are the same."""
    out = np.zeros((len(encoded), width), dtype=np.float32)
    lengths = [len(ids) for ids in encoded]

    def run(index: np.ndarray) -> np.ndarray:
        input_ids, attention_mask = pad_batch([encoded[i] for i in index], pad_id)
        if segments is None:
            return call(input_ids, attention_mask)
        token_type_ids, _ = pad_batch([segments[i] for i in index], 0)
        return call(input_ids, attention_mask, token_type_ids)

    batches = length_batches(lengths, batch_size, max_tokens)
    if workers > 1:
        batches = interleaved(batches, workers)
    _scatter(out, batches, run, workers, on_batch, executor)
    return out


def interleaved(batches: Sequence[np.ndarray], workers: int) -> list[np.ndarray]:
    """Each run of `workers` consecutive length-sorted batches dealt again, text by text, into
    as many batches of the same sizes: batches that run at once then hold texts of alike
    lengths, so none waits on a longer one (the padding stays what the run's longest gives)."""
    out: list[np.ndarray] = []
    for start in range(0, len(batches), workers):
        group = batches[start : start + workers]
        merged = np.concatenate(group)
        out += [merged[offset :: len(group)] for offset in range(len(group))]
    return out


def _scatter(
    out: np.ndarray,
    batches: Sequence[np.ndarray],
    run: Callable[[np.ndarray], np.ndarray],
    workers: int,
    on_batch: Callable[[int], object] | None,
    executor: Executor | None = None,
) -> None:
    """`out[index] = run(index)` for each batch, in up to `workers` threads at once (of
    `executor`, or of a pool made for this call)."""
    if workers <= 1 or len(batches) <= 1:
        results: Iterable[np.ndarray] = map(run, batches)
    elif executor is not None:
        results = executor.map(run, batches)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
            results = list(pool.map(run, batches))
    for index, result in zip(batches, results, strict=True):
        out[index] = result
        if on_batch is not None:
            on_batch(len(index))


def run_batched_pairs(
    encoded: Sequence[Sequence[int]],
    pair_encoded: Sequence[Sequence[int]],
    call: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    width: int,
    *,
    pad_id: int,
    batch_size: int,
    workers: int = 1,
    executor: Executor | None = None,
) -> np.ndarray:
    """`run_batched` for siamese pairs: `call(input_ids, attention_mask, pair_input_ids,
    pair_attention_mask)` over batches sorted by the longer text of each pair, each side
    right-padded on its own; outputs `(len(encoded), width)` float32 in the input order."""
    out = np.zeros((len(encoded), width), dtype=np.float32)
    lengths = [max(len(a), len(b)) for a, b in zip(encoded, pair_encoded, strict=True)]

    def run(index: np.ndarray) -> np.ndarray:
        first = pad_batch([encoded[i] for i in index], pad_id)
        second = pad_batch([pair_encoded[i] for i in index], pad_id)
        return call(*first, *second)

    batches = length_batches(lengths, batch_size)
    if workers > 1:
        batches = interleaved(batches, workers)
    _scatter(out, batches, run, workers, None, executor)
    return out
