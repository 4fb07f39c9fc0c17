"""Peers on the same data: TF-IDF + logistic regression, fastText and the teacher in onnxruntime.

Trains the peers on the run's training split (hyper-parameters chosen on the validation half),
exports the run's teacher as float32 and int8 bundles (and, with --variants, those students with
the config's [export] settings), scores every model on the validation and test halves and times
it on the test texts, all in this process: `distilrnn.bench.peers`. Writes peers.json into the
run folder (the report plots it) and a markdown table beside it (same name, `.md`), with speed
ratios against the int8 teacher; --out writes a copy. The numbers belong to the machine that
made them.

    SST2_DIR=../shared/data/sst2 .venv/bin/python benchmarks/peers.py configs/sst2.toml \\
        --variants kl-auto-lstm-augmented --out docs/benchmarks/peers.json

Needs `pip install -e '.[peers]'`; a peer whose package is missing is skipped with a line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilrnn.bench.peers import PEERS, PEERS_NAME, benchmark_peers, peers_markdown
from distilrnn.bench.tables import record_script, run_script, write_results
from distilrnn.config_io import load_config
from distilrnn.run import Run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="The run's config.")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Config override."
    )
    parser.add_argument("--run-dir", type=Path, help="The run folder (default: the config's).")
    parser.add_argument("--out", type=Path, help="Also write the results here (and its .md).")
    parser.add_argument("--variants", nargs="+", default=[], help="Students to time alongside.")
    parser.add_argument(
        "--peers", nargs="+", choices=list(PEERS), default=list(PEERS), metavar="PEER"
    )
    parser.add_argument("--work-dir", type=Path, help="Bundles (default: RUN/peers).")
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    parser.add_argument("--repeats", type=int, default=3, help="Throughput passes (best kept).")
    parser.add_argument("--fasttext-dim", type=int, default=100, help="fastText vector size.")
    parser.add_argument(
        "--fasttext-bucket", type=int, default=200_000, help="fastText word-bigram hash rows."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("distilrnn.bench").setLevel(logging.INFO)  # a line per candidate
    config = load_config(args.config, args.set)
    run = Run(args.run_dir or config.run_dir)
    results = benchmark_peers(
        run,
        peers=args.peers,
        variants=args.variants,
        export_settings=config.export,
        work_dir=args.work_dir,
        latency_texts=args.latency_texts,
        repeats=args.repeats,
        options={"fasttext": {"dim": args.fasttext_dim, "bucket": args.fasttext_bucket}},
    )
    arguments = sys.argv[1:] if argv is None else argv
    script = "benchmarks/peers.py"
    markdown = record_script(script, arguments, results, peers_markdown, run.root / PEERS_NAME)
    if args.out is not None:
        write_results(args.out, results, markdown)
    print(markdown)
    return results


if __name__ == "__main__":
    run_script(main)
