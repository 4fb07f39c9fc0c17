"""Bundle bytes and test accuracy of narrowed students over their seeds, against the student each
one started from.

For each variant and each of its trained seeds, exports a bundle per compression setting (float,
int8, int8 with a 4-bit embedding), at its own width or factorised at export to each of
`--ranks`, and compares it with the eager student of the same seed of `--reference` (default:
the variant's `init_from`, else the variant itself), summarised over seeds with a paired
bootstrap: `distilrnn.bench.narrow`. Writes JSON and a markdown table (same name, `.md`).

    SST2_DIR=../shared/data/sst2 .venv/bin/python benchmarks/narrow.py configs/sst2.toml \\
        --variants kl-auto-lstm-augmented kl-auto-lstm-augmented-f96 \\
        --json docs/benchmarks/narrow.json

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes (its safetensors)
losing at most 0.5 points of test accuracy.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.narrow import SETTINGS, benchmark_narrow, narrow_markdown
from distilrnn.bench.tables import record_script, run_script
from distilrnn.config_io import load_config
from distilrnn.run import Run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="The run's config (variants and seeds).")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Config override."
    )
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--reference", help="Compare against this variant (same seed).")
    parser.add_argument(
        "--ranks", nargs="+", type=int, help="Factorise each student to these widths at export."
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=["none", "quantize"],
        metavar="SETTING",
    )
    parser.add_argument("--json", type=Path, help="Results file (default: RUN/narrow.json).")
    parser.add_argument("--work-dir", type=Path, help="Bundles (default: RUN/bundles-narrow).")
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("distilrnn.bench").setLevel(logging.INFO)  # a line per bundle
    config = load_config(args.config, args.set)
    results = benchmark_narrow(
        config,
        args.variants,
        reference=args.reference,
        ranks=args.ranks or (),
        settings=args.settings,
        work_dir=args.work_dir,
        latency_texts=args.latency_texts,
    )
    arguments = sys.argv[1:] if argv is None else argv
    json_path = args.json or Run(config.run_dir).root / "narrow.json"
    print(record_script("benchmarks/narrow.py", arguments, results, narrow_markdown, json_path))
    return results


if __name__ == "__main__":
    run_script(main)
