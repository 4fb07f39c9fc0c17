"""Split a config's student variants into lanes of about equal training work, for sst2.sh.

Prints `--variant NAME` flags for one lane of `distilrnn.bench.lanes.plan_lanes`: lanes are
filled heaviest job first, and a variant that starts from another (`init_from`) goes in the same
lane, after it, so that two lanes never train the same student.

    python benchmarks/plan_lanes.py configs/sst2.toml --group baselines
    python benchmarks/plan_lanes.py configs/sst2.toml --group distilled --lanes 2 --lane 0
    python benchmarks/plan_lanes.py configs/sst2.toml --group baselines --rnn gru --first
"""

from __future__ import annotations

import argparse

from distilrnn.bench.lanes import GROUPS, RNNS, group_variants, plan_lanes
from distilrnn.bench.tables import run_script
from distilrnn.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--group", choices=GROUPS, required=True)
    parser.add_argument("--rnn", choices=RNNS)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--lane", type=int, default=0)
    parser.add_argument("--first", action="store_true", help="Print only the first name, bare.")
    args = parser.parse_args()

    config = load_config(args.config)
    if args.first:
        names = group_variants(config, args.group, args.rnn)
        print(names[0] if names else "")
        return
    lane = plan_lanes(config, args.lanes, args.group, args.rnn)[args.lane]
    print(" ".join(f"--variant {name}" for name in lane))


if __name__ == "__main__":
    run_script(main)
