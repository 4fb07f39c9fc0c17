"""Split a config's student variants into lanes of about equal training work, for sst2.sh.

Prints `--variant NAME` flags for one lane. The work of a variant is its epochs times its
training-set size, where the augmented transfer set counts as about 1 + 0.6 * n_iter training
sets (SST-2: 896,268 texts from 67,349 with n_iter 20); lanes are filled longest job first.

    python benchmarks/plan_lanes.py configs/sst2.toml --group baselines
    python benchmarks/plan_lanes.py configs/sst2.toml --group distilled --lanes 2 --lane 0
    python benchmarks/plan_lanes.py configs/sst2.toml --group baselines --rnn gru --first
"""

from __future__ import annotations

import argparse

from distilrnn.config import RunConfig, load_config


def work(config: RunConfig, name: str) -> float:
    settings = config.student_for(next(v for v in config.variants if v.name == name))
    size = 1 + 0.6 * config.augment.n_iter if settings.transfer_set == "augmented" else 1
    return settings.epochs * size * len(settings.seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--group", choices=("baselines", "distilled"), required=True)
    parser.add_argument("--rnn", choices=("lstm", "gru"))
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--lane", type=int, default=0)
    parser.add_argument("--first", action="store_true", help="Print only the first name, bare.")
    args = parser.parse_args()

    config = load_config(args.config)
    names = []
    for variant in config.variants:
        settings = config.student_for(variant)
        if (settings.objective == "ce") == (args.group == "baselines") and (
            args.rnn is None or settings.rnn == args.rnn
        ):
            names.append(variant.name)
    if args.first:
        print(names[0] if names else "")
        return
    lanes: list[list[str]] = [[] for _ in range(args.lanes)]
    loads = [0.0] * args.lanes
    for name in sorted(names, key=lambda n: -work(config, n)):
        lightest = loads.index(min(loads))
        lanes[lightest].append(name)
        loads[lightest] += work(config, name)
    order = {name: i for i, name in enumerate(names)}  # each lane keeps the config's order
    print(" ".join(f"--variant {name}" for name in sorted(lanes[args.lane], key=order.get)))


if __name__ == "__main__":
    main()
