"""The speed frontier: every student over its seeds, the teacher in fp32 and int8, and the peers.

For each of --variants (default: every variant of the config with a finished seed): accuracy on
validation and test over its seeds; bytes, one-sentence p50 / p90 latency on one thread and
throughput at batch 64 on one and two threads of its lowest seed's bundle; multiply-adds per
sentence at the test texts' mean length and the GFLOP/s each throughput run achieves; all
against the teacher's fp32 and int8 bundles, in this process (`distilrnn.bench.frontier`).
TF-IDF + logistic regression and fastText join unless --no-peers. Students are exported with
the config's [export] when it sets anything, else with int8 weights (every embedding row).
Writes frontier.json, its markdown (`.md`) and the Pareto plot frontier.png into the run folder
(the report shows them); --out writes copies. The numbers belong to the machine that made them.

    SST2_DIR=../shared/data/sst2 .venv/bin/python benchmarks/frontier.py configs/sst2.toml \\
        --out docs/benchmarks/frontier.json
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.frontier import benchmark_frontier
from distilrnn.bench.frontier_report import frontier_markdown
from distilrnn.bench.peers import PEERS
from distilrnn.bench.tables import record_script, run_script, write_results
from distilrnn.config import ExportSettings
from distilrnn.config_io import load_config
from distilrnn.report.plots import plot_frontier
from distilrnn.run import Run

PLOT_NAME = "frontier.png"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="The run's config.")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Config override."
    )
    parser.add_argument("--run-dir", type=Path, help="The run folder (default: the config's).")
    parser.add_argument("--out", type=Path, help="Also write the results here (.md, .png beside).")
    parser.add_argument(
        "--variants", nargs="+", help="Students (default: every variant with a finished seed)."
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Train and time TF-IDF + logistic regression and fastText too.",
    )
    parser.add_argument("--work-dir", type=Path, help="Bundles (default: RUN/frontier).")
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    parser.add_argument("--repeats", type=int, default=3, help="Throughput passes (best kept).")
    parser.add_argument(
        "--breakdown", help="The student whose time is split up (default: the first variant)."
    )
    parser.add_argument(
        "--peak-size", type=int, default=1024, help="Matrix side of the runtime's peak product."
    )
    parser.add_argument("--fasttext-dim", type=int, default=100, help="fastText vector size.")
    parser.add_argument(
        "--fasttext-bucket", type=int, default=200_000, help="fastText word-bigram hash rows."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("distilrnn.bench").setLevel(logging.INFO)
    config = load_config(args.config, args.set)
    run = Run(args.run_dir or config.run_dir)
    finished = {folder.parent.name for folder in run.finished_students()}
    named = [v.name for v in config.variants if v.name in finished]
    variants = args.variants or named or sorted(finished)
    results = benchmark_frontier(
        run,
        variants,
        config.export if config.export != ExportSettings() else None,
        peers=PEERS if args.peers else (),
        work_dir=args.work_dir,
        latency_texts=args.latency_texts,
        repeats=args.repeats,
        peer_options={"fasttext": {"dim": args.fasttext_dim, "bucket": args.fasttext_bucket}},
        breakdown_variant=args.breakdown,
        peak_size=args.peak_size,
    )
    arguments = sys.argv[1:] if argv is None else argv
    script = "benchmarks/frontier.py"
    markdown = record_script(script, arguments, results, frontier_markdown, run.frontier_file)
    plot = run.root / PLOT_NAME
    plot_frontier(results, plot)
    if args.out is not None:
        write_results(args.out, results, markdown)
        shutil.copyfile(plot, args.out.with_suffix(".png"))
    print(markdown)
    return results


if __name__ == "__main__":
    run_script(main)
