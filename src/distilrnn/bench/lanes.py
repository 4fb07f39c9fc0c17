"""Split a config's student variants into lanes of about equal training work.

On a few cores, several one-thread processes (lanes) train more students per hour than one
process with several threads (small RNNs scale poorly across threads); benchmarks/sst2.sh runs
one `distilrnn student` per lane. The work of a variant is its epochs times its seeds times its
training-set size, where the augmented transfer set counts as about 1 + 0.6 * n_iter training
sets (SST-2: 896,268 texts from 67,349 with n_iter 20). Lanes are filled heaviest job first. A
variant that starts from another (`init_from`) goes in the same lane, after it, so that two
lanes never train the same student.
"""

from __future__ import annotations

from distilrnn.config import RunConfig
from distilrnn.errors import ConfigError
from distilrnn.variants import chain

GROUPS = ("baselines", "distilled")  # `ce` students, and every other objective
RNNS = ("lstm", "gru")
AUGMENTED_SHARE = 0.6  # generated texts kept per sample drawn, after deduplication (SST-2)


def variant_work(config: RunConfig, name: str) -> float:
    """Training work of variant `name`, in passes over the training split."""
    settings = config.student_for(config.variant(name))
    size = (
        1 + AUGMENTED_SHARE * config.augment.n_iter if settings.transfer_set == "augmented" else 1
    )
    return settings.epochs * size * len(settings.seeds)


def chain_root(config: RunConfig, name: str, names: list[str]) -> str:
    """The earliest variant among `names` that `name` starts from, through `init_from`."""
    root = name
    for parent in chain(config, name)[1:]:
        if parent not in names:
            break
        root = parent
    return root


def group_variants(config: RunConfig, group: str, rnn: str | None = None) -> list[str]:
    """The names of the config's variants in `group` (`baselines`: objective `ce`;
    `distilled`: any other), of cell `rnn` when given, in the config's order."""
    if group not in GROUPS:
        raise ConfigError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    if rnn is not None and rnn not in RNNS:
        raise ConfigError(f"rnn must be one of {', '.join(RNNS)}, got {rnn!r}")
    names = []
    for variant in config.variants:
        settings = config.student_for(variant)
        baseline = settings.objective == "ce"
        if baseline == (group == "baselines") and rnn in (None, settings.rnn):
            names.append(variant.name)
    return names


def plan_lanes(
    config: RunConfig, lanes: int, group: str, rnn: str | None = None
) -> list[list[str]]:
    """`lanes` lists of variant names of `group` (see `group_variants`) of about equal
    `variant_work`; an `init_from` chain stays in one lane, and each lane keeps the config's
    order (so a chain's first variant trains first). A lane may be empty."""
    if lanes < 1:
        raise ConfigError(f"lanes must be >= 1, got {lanes}")
    names = group_variants(config, group, rnn)
    families: dict[str, list[str]] = {}  # the first variant of an init_from chain in the group
    for name in names:
        families.setdefault(chain_root(config, name, names), []).append(name)
    plan: list[list[str]] = [[] for _ in range(lanes)]
    loads = [0.0] * lanes

    def family_work(family: list[str]) -> float:
        return sum(variant_work(config, name) for name in family)

    for family in sorted(families.values(), key=family_work, reverse=True):
        lightest = loads.index(min(loads))
        plan[lightest] += family
        loads[lightest] += family_work(family)
    order = {name: index for index, name in enumerate(names)}
    return [sorted(lane, key=order.__getitem__) for lane in plan]
