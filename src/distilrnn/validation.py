"""Checks of setting values, shared by the settings dataclasses (`distilrnn.config`) and the
student model (`distilrnn.student.StudentConfig`), and the coercion of TOML values to a field's
type. A check returns None when a value is fine, else what is wrong with it; `require` and
`report_problem` raise it as a `ConfigError` that names the setting.

Imports no torch: the CLI reads configs in the runtime-only install.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, get_type_hints

from distilrnn.errors import ConfigError
from distilrnn.registry import CELLS, POOLINGS, one_of

Check = Callable[[Any], str | None]  # None: the value is fine; else what is wrong with it


def require(condition: bool, name: str, message: str) -> None:
    """Raise `ConfigError("<name>: <message>")` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{name}: {message}")


def report_problem(name: str, problem: str | None) -> None:
    """Raise `problem` (a check's result: None when the value is fine) as `name`'s error."""
    if problem is not None:
        raise ConfigError(f"{name}: {problem}")


def fraction_check(value: object) -> str | None:
    """A check that a value is a number in [0, 1) (a dropout rate, a warm-up share)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        return f"must be a number in [0, 1), got {value!r}"
    return None


def require_choice(value: object, choices: tuple[str, ...], name: str) -> None:
    """Raise `ConfigError` naming `name` unless `value` is one of `choices`."""
    require(value in choices, name, f"must be {one_of(choices)}, got {value!r}")


def integer_check(minimum: int, maximum: int | None = None) -> Check:
    """A check that a value is an int (not a bool) in [minimum, maximum]."""
    allowed = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"

    def check(value: object) -> str | None:
        in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        if not in_range or (maximum is not None and value > maximum):
            return f"must be an integer {allowed}, got {value!r}"
        return None

    return check


def boolean_check(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


MAX_LAYERS = 4
DROPOUT_FIELDS = (
    "embedding_dropout",
    "input_dropout",
    "hidden_dropout",
    "weight_dropout",
    "head_dropout",
)
# a student's shape: what must agree between a student and the variant it starts from
SHAPE_FIELDS = (
    "encoder",
    "rnn",
    "num_layers",
    "hidden_size",
    "bidirectional",
    "kernel_size",
    "pooling",
    "head_hidden_size",
)
# what reads the embedded tokens before the pooling (`distilrnn.student.encoders`)
ENCODERS = ("rnn", "bag", "cnn")
# the settings each encoder does not read, and why; they must keep their defaults (a dropout
# may also be 0), so that no setting seems to shape a student it never touches
UNUSED_BY_ENCODER: dict[str, dict[str, str]] = {
    "rnn": {"kernel_size": "it has no convolution"},
    "bag": {
        "rnn": "it has no recurrent cell",
        "num_layers": "it has no layers: the pooling reads the embeddings",
        "hidden_size": "its width is the embedding's (narrow it with embedding_projection)",
        "bidirectional": "it reads no direction",
        "kernel_size": "it has no convolution",
        "hidden_dropout": "it has no layers to drop between",
        "weight_dropout": "it has no recurrent weights",
    },
    "cnn": {
        "rnn": "it has no recurrent cell",
        "bidirectional": "each convolution reads both sides of a token",
        "weight_dropout": "it has no recurrent weights",
    },
}
# poolings that read a recurrent state, so only the rnn encoder has what they take
RECURRENT_POOLINGS = ("last",)


def encoder_check(value: object) -> str | None:
    return None if value in ENCODERS else f"must be {one_of(ENCODERS)}, got {value!r}"


def odd_check(value: object) -> str | None:
    """A check that a value is an odd int >= 1 (a convolution centred on its token)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        return f"must be an odd integer >= 1 (the window centred on its token), got {value!r}"
    return None


# One check per architecture field, read by both the config (`StudentSettings`) and the model
# (`distilrnn.student.StudentConfig`). Cells and poolings are checked against their registries,
# so registered ones pass.
ARCHITECTURE_CHECKS: dict[str, Check] = {
    "encoder": encoder_check,
    "rnn": CELLS.problem,
    "num_layers": integer_check(1, MAX_LAYERS),
    "hidden_size": integer_check(1),
    "bidirectional": boolean_check,
    "kernel_size": odd_check,
    "pooling": POOLINGS.problem,
    "head_hidden_size": integer_check(0),
    **dict.fromkeys(DROPOUT_FIELDS, fraction_check),
}


def check_fields(values: Any, checks: dict[str, Check], prefix: str) -> None:
    """Run `checks` (field -> check) on the attributes of `values`; raise `ConfigError` naming
    the first bad field as `<prefix><field>`."""
    for name, check in checks.items():
        report_problem(f"{prefix}{name}", check(getattr(values, name)))


def check_architecture(values: Any, prefix: str) -> None:
    """Check the architecture fields (`ARCHITECTURE_CHECKS`) of `values`: `StudentSettings`
    with prefix "student.", `StudentConfig` with "StudentConfig."; then that the encoder
    reads each of them (`UNUSED_BY_ENCODER`, `RECURRENT_POOLINGS`)."""
    check_fields(values, ARCHITECTURE_CHECKS, prefix)
    encoder = values.encoder
    defaults = {f.name: f.default for f in dataclasses.fields(values)}
    for name, why in UNUSED_BY_ENCODER[encoder].items():
        value, default = getattr(values, name), defaults[name]
        allowed = (default, 0.0) if name in DROPOUT_FIELDS else (default,)
        require(
            value in allowed and isinstance(value, bool) == isinstance(default, bool),
            f"{prefix}{name}",
            f"the {encoder} encoder does not use it ({why}); leave it at its default "
            f"{default!r}{' or 0' if name in DROPOUT_FIELDS else ''}, got {value!r}",
        )
    require(
        encoder == "rnn" or values.pooling not in RECURRENT_POOLINGS,
        f"{prefix}pooling",
        f"{values.pooling!r} takes the last recurrent state, which the {encoder} encoder does "
        "not have; use mean, max or attention",
    )


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Check a TOML value against a field's type; ints are accepted for floats."""
    hint_name = getattr(hint, "__name__", str(hint))
    accepts_float = hint is float or float in getattr(hint, "__args__", ())
    if accepts_float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, hint):
            raise ConfigError(f"{name}: expected {hint_name}, got {value!r}")
        return value
    origin = getattr(hint, "__origin__", None)
    if origin is list:
        (item,) = hint.__args__
        if isinstance(value, tuple):  # a Python caller's sequence
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


def build_section(cls: type, values: dict[str, Any], section: str) -> Any:
    """A settings dataclass `cls` from TOML-shaped `values`: unknown keys are named as
    `<section>.<key>`, each value is coerced to its field's type, then `cls` validates."""
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'{section}.{k}' for k in unknown)}; known: {', '.join(sorted(known))}"
        )
    kwargs = {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def settings_with(base: Any, section: str, **overrides: Any) -> Any:
    """The settings dataclass `base` with `overrides` of its fields, checked as TOML values are
    (`build_section`): `settings_with(AugmentSettings(), "augment", n_iter=5)`."""
    return build_section(type(base), {**dataclasses.asdict(base), **overrides}, section)
