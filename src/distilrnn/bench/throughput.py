"""Throughput of the two bulk stages: labelling the transfer set with the teacher, and
generating it (Tang et al. 2019 augmentation).

Labelling is measured against the naive way (fixed batches of 32 texts in file order, each
padded to `max_length`); generation is measured as wall and CPU seconds, where CPU counts this
process and its finished workers, so CPU > wall means several cores worked.
"""

from __future__ import annotations

import resource
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from distilrnn.bench.models import cpu_threads
from distilrnn.config import AugmentSettings
from distilrnn.errors import DataError
from distilrnn.run import read_texts
from distilrnn.timing import time_calls

T = TypeVar("T")
NAIVE_BATCH_SIZE = 32


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """`call()`'s result, its wall seconds (`distilrnn.timing`, no warm-up) and CPU seconds."""
    result: list[T] = []
    cpu = cpu_seconds()
    (wall,) = time_calls(lambda _: result.append(call()), [None], warmup=0)
    return result[0], float(wall), cpu_seconds() - cpu


# labelling ---------------------------------------------------------------------------------
def naive_logits(model, tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Teacher logits `(len(texts), num_labels)` the naive way: batches of 32 texts in the
    given order, each padded to `max_length`."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), NAIVE_BATCH_SIZE):
            batch = tokenizer(
                list(texts[start : start + NAIVE_BATCH_SIZE]),
                truncation=True,
                max_length=max_length,
                padding="max_length",
                return_tensors="pt",
            )
            out.append(model(**batch).logits.float().numpy())
    return np.concatenate(out)


def sample_texts(path: Path, sample: int, seed: int) -> list[str]:
    """Texts of a saved transfer set (a `datasets` folder) or a GLUE-style TSV (text in the
    first column, a header line); a seeded sample of `sample` of them (0: all), in file
    order."""
    path = Path(path)
    if path.is_dir():
        texts = read_texts(path)
    else:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        texts = [line.split("\t")[0] for line in lines if line.strip()]
    if sample and sample < len(texts):
        index = np.random.default_rng(seed).choice(len(texts), sample, replace=False)
        texts = [texts[i] for i in sorted(index)]  # file order is kept
    return texts


def label_throughput(
    teacher_dir: str | Path,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 512,
    max_tokens: int = 8192,
    threads: int = 2,
) -> dict[str, Any]:
    """Texts/s of labelling `texts` with the teacher the naive way and distilrnn's way
    (`predict_logits`: length-sorted, under a token budget), one after the other in this
    process at `threads` threads, with the ratio and the largest logit difference."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilrnn.labeling import predict_logits

    if not texts:
        raise DataError("no texts to label")
    with cpu_threads(threads):
        tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
        model = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir)).eval()
        predict_logits(model, tokenizer, texts[:256], 64, max_length)  # warm-up
        naive, naive_seconds, _ = timed(lambda: naive_logits(model, tokenizer, texts, max_length))
        ours, ours_seconds, _ = timed(
            lambda: predict_logits(
                model, tokenizer, texts, batch_size, max_length, max_tokens=max_tokens
            )
        )
    return {
        "texts": len(texts),
        "threads": threads,
        "max_length": max_length,
        "naive_texts_per_s": len(texts) / naive_seconds,
        "distilrnn_texts_per_s": len(texts) / ours_seconds,
        "ratio": naive_seconds / ours_seconds,
        "max_abs_logit_difference": float(np.abs(naive - ours).max()),
        "batch_size": batch_size,
        "max_tokens": max_tokens,
    }


def label_throughput_text(results: dict[str, Any]) -> str:
    """`label_throughput` results as a small text table."""
    return (
        f"{'way':<36}{'texts/s':>10}\n"
        f"{'naive (32 in file order, padded)':<36}{results['naive_texts_per_s']:>10.0f}\n"
        f"{'distilrnn (sorted, token budget)':<36}{results['distilrnn_texts_per_s']:>10.0f}\n"
        f"ratio {results['ratio']:.2f}x; max |logit difference| "
        f"{results['max_abs_logit_difference']:.2e}\n"
    )


# generation --------------------------------------------------------------------------------
def glue_sentences(path: Path) -> list[str]:
    """The `sentence` column of a GLUE TSV (no quoting: split on the tab)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("sentence")
    return [line.split("\t")[column] for line in lines[1:] if line]


def _cells(wall: float, cpu: float, detail: str = "") -> tuple[str, str, str]:
    return f"{wall:.2f}", f"{cpu:.2f}", detail


def augment_throughput(
    texts: Sequence[str], settings: AugmentSettings, workers: Sequence[int] = (1, 2)
) -> list[tuple[str, str, str, str]]:
    """Rows `(measure, wall s, CPU s, detail)`: POS tagging uncached and cached, the POS
    vocabulary, generation with each of `workers` processes, and the transfer set's size."""
    from distilrnn.augmentation import PosVocabulary, generate, tag_texts

    texts = list(texts)
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = Path(cache_dir) / "pos_tags.json"

        def tag() -> list:
            return tag_texts(texts, settings.spacy_model, cache_path=cache, progress=False)

        tags, wall, cpu = timed(tag)
        rows.append(
            ("POS tagging (spaCy, uncached)", *_cells(wall, cpu, f"{len(texts):,} sentences"))
        )
        _, wall, cpu = timed(tag)
        rows.append(("POS tags read from the cache", *_cells(wall, cpu)))
    vocabulary, wall, cpu = timed(lambda: PosVocabulary.from_tagged(texts, tags))
    types = f"{len(vocabulary.flat_words):,} (tag, word) types"
    rows.append(("POS vocabulary", *_cells(wall, cpu, types)))
    drawn = len(texts) * settings.n_iter
    samples: list[str] = []
    for count in workers:
        samples, wall, cpu = timed(
            lambda count=count: generate(
                texts, tags, settings, vocabulary, "[MASK]", workers=count, progress=False
            )
        )
        rate = f"{drawn / wall:,.0f} samples/s ({drawn:,} drawn)"
        rows.append((f"generation, workers={count}", *_cells(wall, cpu, rate)))
    size = f"{len(samples):,} generated + {len(texts):,} train = {len(samples) + len(texts):,}"
    rows.append(("transfer set after deduplication", "", "", size))
    return rows


def augment_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """`augment_throughput` rows as a markdown table."""
    lines = ["| measure | wall s | CPU s | |", "|---|---:|---:|---|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
