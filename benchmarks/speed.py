"""Teacher against student on CPU: size, latency, throughput and training time per epoch.

Reads a finished run directory (data, teacher and one student) and times both models in this one
process on the test texts, with the same token ids: latency one text at a time (p50 / p90), and
throughput in batches of 64, at 1 and 2 threads; then one training pass (forward, backward, AdamW)
of each over the first `--sample` training texts, extrapolated to the whole training split
(`distilrnn.bench.benchmark_student`). Prints the markdown tables quoted in docs/ and writes
everything as JSON.

    python benchmarks/speed.py runs/sst2 --variant distilled-lstm --seed 0 \
        --json docs/benchmarks/speed.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from distilrnn.atomic import write_json_atomic
from distilrnn.bench import benchmark_student, markdown_table
from distilrnn.bench.tables import run_script
from distilrnn.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--variant", required=True, help="student variant in run_dir/students")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=2000, help="training texts timed (0: skip)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    results = benchmark_student(
        Run(args.run_dir),
        args.variant,
        args.seed,
        sample=args.sample,
        threads=tuple(args.threads),
        train_threads=args.train_threads,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    print(markdown_table(results))
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    run_script(main)
