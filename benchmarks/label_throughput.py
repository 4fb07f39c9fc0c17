"""Labelling throughput: distilrnn's length-sorted, token-budget batches against the naive way.

The naive way runs fixed batches of 32 texts in file order, each padded to `max_length`. Both run
in this one process, on the same texts, with the same teacher, one after the other
(`distilrnn.bench.throughput.label_throughput`); the script prints texts/s for each and the
ratio, and checks that both give the same logits.

    python benchmarks/label_throughput.py --teacher runs/sst2/teacher/model \
        --texts runs/sst2/augment/transfer --sample 20000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distilrnn.atomic import write_json_atomic
from distilrnn.bench.tables import run_script
from distilrnn.bench.throughput import label_throughput, label_throughput_text, sample_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="fine-tuned teacher folder")
    parser.add_argument(
        "--texts",
        required=True,
        type=Path,
        help="a saved transfer set (Arrow folder) or a TSV file",
    )
    parser.add_argument("--sample", type=int, default=20000, help="texts to label (0: all)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = label_throughput(
        args.teacher,
        sample_texts(args.texts, args.sample, args.seed),
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        threads=args.threads,
    )
    print(label_throughput_text(results), end="")
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    run_script(main)
