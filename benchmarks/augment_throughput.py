"""Time transfer-set generation on SST-2: POS tagging, samples per second, transfer-set size.

    python benchmarks/augment_throughput.py [SST2_DIR_OR_TRAIN_TSV] [--workers 1 2] [--n-iter 20]

The data path defaults to `$SST2_DIR` (a GLUE folder holding train.tsv). Prints a markdown table
(`distilrnn.bench.throughput.augment_throughput`); CPU time counts this process and its finished
workers, so CPU > wall means several cores worked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from distilrnn.bench.tables import run_script
from distilrnn.bench.throughput import augment_table, augment_throughput, glue_sentences
from distilrnn.config import AugmentSettings


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
    texts = glue_sentences(path / "train.tsv" if path.is_dir() else path)
    if args.limit:
        texts = texts[: args.limit]
    settings = AugmentSettings(n_iter=args.n_iter, spacy_model=args.spacy_model)
    rows = augment_throughput(texts, settings, args.workers)
    print()
    print(augment_table(rows), end="")


if __name__ == "__main__":
    run_script(main)
