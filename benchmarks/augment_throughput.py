"""Time transfer-set generation on SST-2: POS tagging, samples per second, transfer-set size.

    python benchmarks/augment_throughput.py [SST2_DIR_OR_TRAIN_TSV] [--workers 1 2] [--n-iter 20]

The data path defaults to `$SST2_DIR` (a GLUE folder holding train.tsv). Prints a markdown table;
CPU time counts this process and its finished workers, so CPU > wall means several cores worked.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from distilrnn.augment import PosVocabulary, generate, tag_texts
from distilrnn.config import AugmentSettings


def read_sentences(path: Path) -> list[str]:
    """The `sentence` column of a GLUE TSV (no quoting: split on the tab)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("sentence")
    return [line.split("\t")[column] for line in lines[1:] if line]


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


class Timer:
    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu

    def cells(self, detail: str = "") -> tuple[str, str, str]:
        return f"{self.wall:.2f}", f"{self.cpu:.2f}", detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=os.environ.get("SST2_DIR"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-iter", type=int, default=AugmentSettings().n_iter)
    parser.add_argument("--spacy-model", default=AugmentSettings().spacy_model)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N sentences")
    args = parser.parse_args()
    if not args.data:
        sys.exit("give the SST-2 folder (or its train.tsv) as an argument or in $SST2_DIR")
    path = Path(args.data)
    texts = read_sentences(path / "train.tsv" if path.is_dir() else path)
    if args.limit:
        texts = texts[: args.limit]
    settings = AugmentSettings(n_iter=args.n_iter, spacy_model=args.spacy_model)
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as cache_dir:
        cache = Path(cache_dir) / "pos_tags.json"
        with Timer() as timer:
            tags = tag_texts(texts, settings.spacy_model, cache_path=cache, progress=False)
        rows.append(("POS tagging (spaCy, uncached)", *timer.cells(f"{len(texts):,} sentences")))
        with Timer() as timer:
            tag_texts(texts, settings.spacy_model, cache_path=cache, progress=False)
        rows.append(("POS tags read from the cache", *timer.cells()))

    with Timer() as timer:
        vocabulary = PosVocabulary.from_tagged(texts, tags)
    rows.append(
        ("POS vocabulary", *timer.cells(f"{len(vocabulary.flat_words):,} (tag, word) types"))
    )
    drawn = len(texts) * settings.n_iter
    samples: list[str] = []
    for workers in args.workers:
        with Timer() as timer:
            samples = generate(
                texts, tags, settings, vocabulary, "[MASK]", workers=workers, progress=False
            )
        rate = f"{drawn / timer.wall:,.0f} samples/s ({drawn:,} drawn)"
        rows.append((f"generation, workers={workers}", *timer.cells(rate)))
    size = f"{len(samples):,} generated + {len(texts):,} train = {len(samples) + len(texts):,}"
    rows.append(("transfer set after deduplication", "", "", size))

    print("\n| measure | wall s | CPU s | |\n|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
