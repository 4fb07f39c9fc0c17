"""Bundle quantisation modes compared: float, dynamic int8 (before issue 11), weight-only int8
and weight-only int8 with a 4-bit embedding; bytes, accuracy, labels that flip between batch 1
and batch 64, one-thread latency and throughput (`distilrnn.bench.quantize`).

    .venv/bin/python benchmarks/quantize.py STUDENT_DIR data/sst2/dev.tsv \\
        --json docs/benchmarks/quantize.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.quantize import benchmark_quantize, quantize_markdown
from distilrnn.bench.tables import record_script, run_script


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student_dir", type=Path, help="A saved student folder with labels.json.")
    parser.add_argument("labelled", type=Path, help="A TSV with `sentence` and `label` columns.")
    parser.add_argument("--json", type=Path, required=True, help="Results file (and its .md).")
    parser.add_argument("--work-dir", type=Path, default=Path("quantize-bundles"))
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    parser.add_argument("--repeats", type=int, default=2, help="Throughput passes.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results = benchmark_quantize(
        args.student_dir, args.labelled, args.work_dir, args.latency_texts, args.repeats
    )
    arguments = sys.argv[1:] if argv is None else argv
    print(record_script("benchmarks/quantize.py", arguments, results, quantize_markdown, args.json))
    return results


if __name__ == "__main__":
    run_script(main)
