"""One timer for every measurement: wall-clock seconds of repeated calls, after a warm-up.

Benchmarks, the bundle's model card and the speed comparisons all time through `time_calls`,
so a latency or a throughput means the same thing wherever it is quoted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def time_calls(call: Callable[[T], object], inputs: Sequence[T], warmup: int = 3) -> np.ndarray:
    """Seconds of `call(x)` for each `x` of `inputs`, `(len(inputs),)` float64, after calling it
    untimed on the first `warmup` inputs."""
    for item in inputs[:warmup]:
        call(item)
    seconds = np.empty(len(inputs))
    for index, item in enumerate(inputs):
        started = time.perf_counter()
        call(item)
        seconds[index] = time.perf_counter() - started
    return seconds


def percentiles_ms(seconds: Iterable[float], points: Sequence[int] = (50, 90)) -> dict[str, float]:
    """`{"p50": ms, "p90": ms, ...}` of timings given in seconds."""
    values = np.asarray(list(seconds), dtype=np.float64)
    return {f"p{point}": float(np.percentile(values, point) * 1e3) for point in points}


def latency_ms(call: Callable[[str], object], texts: Sequence[str], warmup: int = 5) -> dict:
    """p50 / p90 milliseconds of `call(text)`, one text per call, and the number of calls."""
    seconds = time_calls(call, texts, warmup)
    return {**percentiles_ms(seconds), "calls": len(texts)}


def throughput(
    call: Callable[[Sequence[str]], object], texts: Sequence[str], repeats: int = 1
) -> float:
    """Texts per second of `call(texts)` over `repeats` timed passes, after one untimed pass."""
    seconds = time_calls(lambda _: call(texts), [None] * repeats, warmup=1)
    return len(texts) * repeats / float(seconds.sum())
