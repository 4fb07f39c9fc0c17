"""int8 GRU bundles against float: bundle bytes, one-thread latency and batch-64 throughput of
a float GRU bundle, its weight-only int8 (int8 storage, float arithmetic) and the int8 GRU
(`export.gru_int8`: int8 matrix products), on random-weight students: the tests' tiny GRU and
an SST-2-sized BiGRU (embedding 384, hidden 256): `distilrnn.bench.gru_int8`.

    .venv/bin/python benchmarks/gru_int8.py --json docs/benchmarks/gru-int8.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.gru_int8 import SIZES, benchmark_gru_int8, gru_int8_markdown
from distilrnn.bench.tables import record_script, run_script


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="Results file (and its .md).")
    parser.add_argument("--work-dir", type=Path, help="Bundles (default: a temporary folder).")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--texts", type=int, default=512, help="Random sentences timed.")
    parser.add_argument("--repeats", type=int, default=2, help="Throughput passes.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        results = benchmark_gru_int8(
            args.work_dir or Path(scratch), tuple(args.sizes), args.texts, repeats=args.repeats
        )
    arguments = sys.argv[1:] if argv is None else argv
    print(record_script("benchmarks/gru_int8.py", arguments, results, gru_int8_markdown, args.json))
    return results


if __name__ == "__main__":
    run_script(main)
