"""Reading a `RunConfig`: a TOML file, `section.key=value` overrides and Python values, built
into the settings dataclasses of `distilrnn.config` and checked across sections (variants and
the `init_from` chains between them). Also the settings listing of `distilrnn settings`.

Imports no torch: the CLI reads configs in the runtime-only install.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from distilrnn.config import SECTIONS, RunConfig, StudentSettings, Variant
from distilrnn.errors import ConfigError, RunFolderError
from distilrnn.run import check_name
from distilrnn.validation import SHAPE_FIELDS, build_section, require, settings_with

DEFAULT_VARIANTS = [
    {"name": "baseline-lstm", "rnn": "lstm", "objective": "ce"},
    {"name": "baseline-gru", "rnn": "gru", "objective": "ce"},
    {"name": "distilled-lstm", "rnn": "lstm", "objective": "mse"},
    {"name": "distilled-gru", "rnn": "gru", "objective": "mse"},
]


def load_config(
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
) -> RunConfig:
    """Read a TOML config (or start from defaults), apply `section.key=value` overrides (TOML
    values), then `values` (`{"run_dir": ..., "export": {"quantize": True}}`: Python values, set
    as they are, never spliced into TOML text)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    for text in overrides:
        keys, value = parse_override(text)
        target = raw
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {text!r}: {key} is not a table")
        target[keys[-1]] = value
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            section = raw.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{key}: expected a table [{key}]")
            section.update(value)
        else:
            raw[key] = value
    return config_from_dict(raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `section.key=value` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, value_text = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text
    return key.strip().split("."), value


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from a TOML-shaped dict."""
    top_known = {"run_dir", "variant", *SECTIONS}
    unknown = sorted(set(raw) - top_known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(top_known))}"
        )
    parts = {}
    for name, cls in SECTIONS.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: expected a table [{name}]")
        parts[name] = build_section(cls, section, name)
    run_dir = raw.get("run_dir", "runs/default")
    if not isinstance(run_dir, str):
        raise ConfigError(f"run_dir: expected a string, got {run_dir!r}")
    config = RunConfig(run_dir=run_dir, variants=_variants(raw.get("variant", DEFAULT_VARIANTS)))
    for name, value in parts.items():
        setattr(config, name, value)
    for variant in config.variants:  # validate each variant's merged settings now, not mid-run
        try:
            config.student_for(variant)
        except ConfigError as error:
            raise ConfigError(f"variant {variant.name!r}: {error}") from None
    _check_init_from(config)
    return config


def _variants(raw: Any) -> list[Variant]:
    if not isinstance(raw, list):
        raise ConfigError("variant: expected an array of tables ([[variant]])")
    student_keys = {f.name for f in dataclasses.fields(StudentSettings)}
    variants, names = [], set()
    for i, table in enumerate(raw):
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise ConfigError(f"variant[{i}]: needs a string `name`")
        overrides = {k: v for k, v in table.items() if k != "name"}
        unknown = sorted(set(overrides) - student_keys)
        if unknown:
            raise ConfigError(f"variant {table['name']!r}: unknown setting(s) {', '.join(unknown)}")
        try:
            check_name(table["name"])  # it becomes a folder of the run
        except RunFolderError as error:
            raise ConfigError(str(error)) from None
        if table["name"] in names:
            raise ConfigError(f"variant {table['name']!r}: name used twice")
        names.add(table["name"])
        variants.append(Variant(table["name"], overrides))
    return variants


def _check_init_from(config: RunConfig) -> None:
    """Each `init_from` names another variant with the same architecture, without a cycle, and
    narrows (or keeps) its embedding width."""
    names = [v.name for v in config.variants]
    for variant in config.variants:
        settings = config.student_for(variant)
        if not settings.init_from:
            continue
        where = f"variant {variant.name!r}: student.init_from"
        chain = [variant.name]
        parent = settings
        while parent.init_from:
            require(
                parent.init_from in names,
                where,
                f"names {parent.init_from!r}, which is not a variant of this config "
                f"(variants: {', '.join(names)})",
            )
            require(
                parent.init_from not in chain,
                where,
                f"makes a cycle: {' -> '.join([*chain, parent.init_from])}",
            )
            chain.append(parent.init_from)
            parent = config.student_for(config.variant(parent.init_from))
        source = config.student_for(config.variant(settings.init_from))
        for name in SHAPE_FIELDS:
            require(
                getattr(source, name) == getattr(settings, name),
                where,
                f"{settings.init_from!r} has {name} = {getattr(source, name)!r} but this variant "
                f"{getattr(settings, name)!r}; a student starts only from one of its own shape",
            )
        if settings.embedding_projection:
            require(
                not source.embedding_projection
                or source.embedding_projection > settings.embedding_projection,
                where,
                f"{settings.init_from!r} is already {source.embedding_projection} wide; "
                f"embedding_projection = {settings.embedding_projection} must be narrower",
            )


def student_settings(base: StudentSettings | None = None, **overrides: Any) -> StudentSettings:
    """`base` (default: the defaults) with `overrides` applied, checked as TOML values are:
    `student_settings(objective="kl", rnn="gru")`."""
    return settings_with(base or StudentSettings(), "student", **overrides)


def describe_settings() -> list[tuple[str, str, str]]:
    """(name, default, help) for every setting, for the CLI's help."""
    rows = [
        (
            "run_dir",
            json.dumps("runs/default"),
            RunConfig.__dataclass_fields__["run_dir"].metadata["help"],
        )
    ]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{section}.{f.name}", json.dumps(default), f.metadata.get("help", "")))
    rows.append(
        (
            "[[variant]]",
            "baseline/distilled x lstm/gru",
            "Named students: `name` plus any `student.*` setting to override.",
        )
    )
    return rows
