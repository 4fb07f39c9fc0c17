"""Split a config's student variants into lanes of about equal training work, for sst2.sh.

Prints `--variant NAME` flags for one lane. The work of a variant is its epochs times its
training-set size, where the augmented transfer set counts as about 1 + 0.6 * n_iter training
sets (SST-2: 896,268 texts from 67,349 with n_iter 20); lanes are filled longest job first. A
variant that starts from another (`init_from`) goes in the same lane, after it, so that two lanes
never train the same student.

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


def root(config: RunConfig, name: str, names: list[str]) -> str:
    """The earliest variant among `names` that `name` starts from, through `init_from`."""
    while True:
        parent = config.student_for(config.variant(name)).init_from
        if not parent or parent not in names:
            return name
        name = parent


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
    families: dict[str, list[str]] = {}  # the first variant of an init_from chain in the group
    for name in names:
        families.setdefault(root(config, name, names), []).append(name)
    lanes: list[list[str]] = [[] for _ in range(args.lanes)]
    loads = [0.0] * args.lanes
    for family in sorted(families.values(), key=lambda f: -sum(work(config, n) for n in f)):
        lightest = loads.index(min(loads))
        lanes[lightest] += family
        loads[lightest] += sum(work(config, n) for n in family)
    order = {name: i for i, name in enumerate(names)}  # each lane keeps the config's order
    print(" ".join(f"--variant {name}" for name in sorted(lanes[args.lane], key=order.get)))


if __name__ == "__main__":
    main()
