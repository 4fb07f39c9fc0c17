"""Bundle bytes, accuracy and speed for each compression setting, against the teacher.

Exports one student of a finished run under each compression setting (none, prune, quantize,
prune+quantize) and times every bundle and the teacher (onnxruntime and torch) on the test half:
`distilrnn.bench.bundles`. Writes JSON and a markdown table (same name, `.md`); the numbers
belong to the machine that made them.

    .venv/bin/python benchmarks/bundle.py runs/sst2 --variant distilled-gru --seed 0 \\
        --json docs/benchmarks/bundle.json

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes losing at most 0.5
points of test accuracy; one-sentence p50 latency under 1 ms on one thread.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.bundles import SETTINGS, benchmark_bundles, bundles_markdown
from distilrnn.bench.tables import record_script, run_script
from distilrnn.run import Run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="A finished run directory.")
    parser.add_argument("--variant", required=True, help="The student variant.")
    parser.add_argument("--seed", type=int, help="Its seed (default: the lowest trained).")
    parser.add_argument("--json", type=Path, help="Results file (default: RUN/bundles.json).")
    parser.add_argument(
        "--work-dir", type=Path, help="Where the bundles go (default: RUN/bundles)."
    )
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), metavar="SETTING"
    )
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    parser.add_argument("--repeats", type=int, default=3, help="Throughput passes (best kept).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results = benchmark_bundles(
        Run(args.run_dir),
        args.variant,
        args.seed,
        work_dir=args.work_dir,
        settings=args.settings,
        latency_texts=args.latency_texts,
        repeats=args.repeats,
    )
    arguments = sys.argv[1:] if argv is None else argv
    json_path = args.json or args.run_dir / "bundles.json"
    print(record_script("benchmarks/bundle.py", arguments, results, bundles_markdown, json_path))
    return results


if __name__ == "__main__":
    run_script(main)
