"""A config's student variants as a graph: which are selected, which they start from
(`init_from`), and what they need from the stages before them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from distilrnn.config import RunConfig, Variant
from distilrnn.errors import ConfigError


def select(config: RunConfig, names: Iterable[str] = ()) -> list[Variant]:
    """The variants called `names` (all when empty), in the config's order."""
    names = set(names)
    unknown = names - {v.name for v in config.variants}
    if unknown:
        raise ConfigError(f"--variant: unknown variant(s) {', '.join(sorted(unknown))}")
    return [v for v in config.variants if not names or v.name in names]


def chain(config: RunConfig, name: str) -> list[str]:
    """`name` and the variants it starts from through `init_from`, nearest first (the config
    has no cycles: `config_io` checks that when it loads)."""
    names = [name]
    while parent := config.student_for(config.variant(names[-1])).init_from:
        names.append(parent)
    return names


def with_parents(config: RunConfig, variants: Iterable[Variant]) -> list[Variant]:
    """`variants` and every variant they start from, transitively, each once."""
    out: list[Variant] = []
    for variant in variants:
        for name in chain(config, variant.name):
            parent = config.variant(name)
            if parent not in out:
                out.append(parent)
    return out


def needs_teacher_logits(config: RunConfig, variants: Iterable[Variant]) -> bool:
    """Whether any of `variants`, or a variant one starts from, distils (objective not `ce`)."""
    return any(config.student_for(v).objective != "ce" for v in with_parents(config, variants))


def needs_transfer_set(config: RunConfig) -> bool:
    """Whether any distilled variant of the config trains on the augmented transfer set; the
    label stage then labels it for all of them, so a subset never relabels."""
    settings = [config.student_for(v) for v in config.variants]
    return any(s.objective != "ce" and s.transfer_set == "augmented" for s in settings)


GROUPS = ("baselines", "distilled")  # `ce` students, and every other objective


def encoder_name(student: Any) -> str:
    """What a student reads its tokens with, as logs, results and reports name it: its
    recurrent cell (`lstm`, `gru` or a registered one) for the `rnn` encoder, else the encoder
    (`bag`, `cnn`). `student`: `StudentSettings`, a `StudentConfig` or their dict (a student
    record's settings); a dict without `encoder` is of an rnn student."""
    values = student if isinstance(student, Mapping) else vars(student)
    encoder = values.get("encoder", "rnn")
    return str(values.get("rnn", "lstm")) if encoder == "rnn" else str(encoder)


def group_variants(config: RunConfig, group: str, rnn: str | None = None) -> list[str]:
    """The names of the config's variants in `group` (`baselines`: objective `ce`;
    `distilled`: any other), of cell `rnn` when given (an `encoder_name`: `lstm`, `gru`, or
    `bag` / `cnn` for students without a recurrent cell), in the config's order."""
    if group not in GROUPS:
        raise ConfigError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    names = []
    for variant in config.variants:
        settings = config.student_for(variant)
        baseline = settings.objective == "ce"
        if baseline == (group == "baselines") and rnn in (None, encoder_name(settings)):
            names.append(variant.name)
    return names
