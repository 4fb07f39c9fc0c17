"""Run an exported bundle with onnxruntime, tokenizers and numpy only: no torch, no transformers.

A bundle is a folder written by `distilrnn.export`:

    model.onnx       input_ids, attention_mask (batch, seq) int64, right-padded (a siamese
                     pair student also pair_input_ids, pair_attention_mask) -> logits
    tokenizer.json   the student's (the teacher's) tokenizer, as `tokenizers` saves it
    labels.json      {"names": [...]}, in logit order
    config.json      format, version, num_labels, vocab_size, pad_token_id, max_length, ...
    README.md        the model card

This module is the whole predict path; `distilrnn[runtime]` installs what it needs and nothing
else, and a test checks that using it imports neither torch nor transformers. A bundle that is
missing, corrupt or of another version raises `MissingFileError` / `BundleError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from distilrnn.batching import run_batched, run_batched_pairs
from distilrnn.errors import BundleError, ConfigError, DataError, MissingFileError
from distilrnn.labelled import (  # noqa: F401 (re-exported: they lived here)
    LABELLED_FORMATS,
    decoded_lines,
    label_ids,
    read_labelled,
)
from distilrnn.metrics import CLASSIFICATION, DEFAULT_METRICS, REGRESSION, TASK_TYPES, scores
from distilrnn.word_cache import WordCacheEncoder

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "distilrnn-bundle"
BUNDLE_VERSION = 1
MODEL_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
LABELS_NAME = "labels.json"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
BUNDLE_FILES = (MODEL_NAME, TOKENIZER_NAME, LABELS_NAME, CONFIG_NAME)
INPUT_NAMES = ("input_ids", "attention_mask")
PAIR_INPUT_NAMES = (*INPUT_NAMES, "pair_input_ids", "pair_attention_mask")  # siamese students
PAIR_DESIGNS = ("none", "joint", "siamese")
OUTPUT_NAME = "logits"
_REQUIRED_CONFIG = ("num_labels", "vocab_size", "pad_token_id", "max_length")


@dataclass(frozen=True)
class Prediction:
    """One input's prediction: for a classifier its label (its name and its id, the logit's
    index) and the probability of every label; for a regression bundle its `score`.
    `text_pair` is the second text of a pair (None for single texts)."""

    text: str
    label: str | None = None
    probabilities: dict[str, float] | None = None
    label_id: int = -1
    text_pair: str | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"text": self.text}
        if self.text_pair is not None:
            row["text_pair"] = self.text_pair
        if self.score is not None:
            return {**row, "score": self.score}
        return {
            **row,
            "label": self.label,
            "label_id": self.label_id,
            "probabilities": self.probabilities,
        }


@dataclass(frozen=True)
class Score:
    """A bundle's predictions scored against labelled inputs: `metrics` by name (the task's:
    accuracy [, f1] for classification, pearson and spearman for regression); `correct` is
    None for regression."""

    examples: int
    correct: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        if "accuracy" in self.metrics:
            return self.metrics["accuracy"]
        if self.correct is None:
            raise BundleError("a regression bundle has no accuracy: read Score.metrics")
        return self.correct / self.examples


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"corrupt bundle file {path}: {error}") from None


def read_bundle_config(bundle_dir: str | Path) -> dict[str, Any]:
    """`config.json` of a bundle, checked for format, version and required keys.

    Raises:
        MissingFileError: the folder or one of its files is missing; the message names it.
        BundleError: the config is corrupt, of another format or version, or incomplete.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise MissingFileError(f"bundle not found: {bundle_dir} is not a directory")
    for name in BUNDLE_FILES:
        if not (bundle_dir / name).is_file():
            raise MissingFileError(f"bundle file missing: {bundle_dir / name}")
    path = bundle_dir / CONFIG_NAME
    config = _read_json(path)
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a distilrnn bundle config (no format {BUNDLE_FORMAT!r})")
    if config.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{path}: bundle version {config.get('version')!r}, this distilrnn reads version "
            f"{BUNDLE_VERSION}; export the student again"
        )
    missing = [key for key in _REQUIRED_CONFIG if key not in config]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}")
    return config


def read_label_names(path: Path) -> list[str]:
    """The label names of a `labels.json` (`{"names": [...]}`)."""
    raw = _read_json(path)
    names = raw.get("names") if isinstance(raw, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BundleError(f"{path} must hold {{'names': [label, ...]}} with at least one name")
    return names


def texts_from_lines(lines: Iterable[str]) -> list[str]:
    """One text per line, line ends stripped, blank lines skipped."""
    texts = (line.rstrip("\r\n") for line in lines)
    return [text for text in texts if text.strip()]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of `(n, num_labels)` logits, computed stably in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


PARALLEL_MODES = ("auto", "batches", "operators")  # how Predictor uses threads > 1


class Predictor:
    """Classify texts with an exported bundle.

    Inputs are strings, or `(text, text_pair)` tuples for a pair bundle: a joint bundle reads
    a pair as one sequence with the tokenizer's pair template (as `tokenizer(text, text_pair)`
    of transformers, longest-first truncation), a siamese bundle each text on its own.
    Texts are tokenised with the bundle's `tokenizer.json` (truncated to its `max_length`; single
    texts of a BERT-style tokenizer through a cache of word ids that gives the tokenizer's own ids
    ten times faster, `distilrnn.word_cache`),
    sorted by length, right-padded in batches of at most `batch_size` (`distilrnn.batching`)
    and run through onnxruntime on `threads` CPU threads (0: onnxruntime's default). The
    student ignores padding, so batching changes no result beyond float rounding.

    `parallel` says how `threads` > 1 are used: `operators` splits each model call's operators
    across them (onnxruntime's intra-op threads), `batches` runs up to `threads` batches at
    once, one thread each, cutting a call's texts into that many batches when they would fill
    fewer. A recurrent student gains from `batches` (its loop of small operators does not split:
    SST-2's BiLSTM 128 ran 1.9x faster at two threads on calls of 64 texts), a transformer, a bag
    or a CNN from `operators` (their few large operators do); `auto` picks `batches` for a
    recurrent student's bundle and `operators` for any other.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        *,
        batch_size: int = 64,
        threads: int = 1,
        parallel: str = "auto",
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads must be an int >= 0, got {threads!r}")
        if parallel not in PARALLEL_MODES:
            raise ConfigError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
        self.bundle_dir = Path(bundle_dir)
        self.batch_size = batch_size
        self.threads = threads
        self.config = read_bundle_config(self.bundle_dir)
        if parallel == "auto":  # a recurrent student's loop of small operators does not split
            encoder = (self.config.get("student") or {}).get("encoder", "rnn")
            recurrent = self.config.get("model") == "student" and encoder == "rnn"
            parallel = "batches" if recurrent else "operators"
        self.parallel = parallel
        # `batches`: that many one-thread calls at once; threads = 0 leaves it to onnxruntime
        self.workers = threads if parallel == "batches" and threads > 1 else 1
        self._pool: ThreadPoolExecutor | None = None  # `batches`: made on first use, kept
        self.labels = read_label_names(self.bundle_dir / LABELS_NAME)
        self.num_labels = int(self.config["num_labels"])
        self.pad_token_id = int(self.config["pad_token_id"])
        self.pair_design = str(self.config.get("pair_design") or "none")
        self.task_type = str(self.config.get("task_type") or CLASSIFICATION)
        if self.pair_design not in PAIR_DESIGNS or self.task_type not in TASK_TYPES:
            raise BundleError(
                f"{self.bundle_dir / CONFIG_NAME}: unknown pair_design {self.pair_design!r} or "
                f"task_type {self.task_type!r}"
            )
        self.metrics = list(self.config.get("metrics") or DEFAULT_METRICS[self.task_type])
        if len(self.labels) != self.num_labels:
            raise BundleError(
                f"{self.bundle_dir / LABELS_NAME} names {len(self.labels)} labels but "
                f"{self.bundle_dir / CONFIG_NAME} says the model has {self.num_labels}"
            )
        self.tokenizer = self._load_tokenizer()
        # single texts of a BERT-style tokenizer: the same ids from cached words, 10x faster
        self.word_cache = WordCacheEncoder.for_tokenizer(self.tokenizer)
        self.session = self._load_session()

    def _load_tokenizer(self) -> Tokenizer:
        path = self.bundle_dir / TOKENIZER_NAME
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception on a bad file
            raise BundleError(f"cannot read the tokenizer {path}: {error}") from None
        vocab_size = int(self.config["vocab_size"])
        if tokenizer.get_vocab_size(with_added_tokens=True) > vocab_size:
            raise BundleError(
                f"{path} has {tokenizer.get_vocab_size(with_added_tokens=True)} tokens but the "
                f"model in {self.bundle_dir} takes ids below {vocab_size}: they do not belong "
                "together"
            )
        tokenizer.no_padding()  # padding is ours, per length-sorted batch
        max_length = self.config["max_length"]
        if max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(int(max_length))
        return tokenizer

    def _load_session(self) -> ort.InferenceSession:
        path = self.bundle_dir / MODEL_NAME
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.workers > 1 else self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only; onnxruntime's warnings go to stderr
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own error types on a bad model
            raise BundleError(f"cannot load the ONNX model {path}: {error}") from None
        inputs = tuple(i.name for i in session.get_inputs())
        outputs = session.get_outputs()
        expected = PAIR_INPUT_NAMES if self.pair_design == "siamese" else INPUT_NAMES
        if inputs != expected or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise BundleError(
                f"{path} takes {list(inputs)} and gives {[o.name for o in outputs]}; a bundle "
                f"model (pair_design {self.pair_design!r}) takes {list(expected)} and gives "
                f"[{OUTPUT_NAME!r}]"
            )
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != self.num_labels:
            raise BundleError(
                f"{path} gives {width} logits per text but {self.bundle_dir / LABELS_NAME} "
                f"names {self.num_labels} labels"
            )
        return session

    @property
    def is_pair(self) -> bool:
        """Whether the bundle reads `(text, text_pair)` pairs."""
        return self.pair_design != "none"

    def _wants_pairs(self) -> BundleError:
        """The error for single texts given to a pair bundle."""
        return BundleError(
            f"{self.bundle_dir} reads pairs (pair_design {self.pair_design!r}): pass "
            "(text, text_pair) tuples"
        )

    def _split(self, inputs: Sequence[Any]) -> tuple[list[str], list[str] | None]:
        """Texts and second texts (None for single texts), checked against the bundle."""
        if isinstance(inputs, str):
            raise TypeError("pass a list of texts, not a single string")
        inputs = list(inputs)
        if not inputs:
            raise DataError("no texts to classify: the input is empty")
        if set(map(type, inputs)) == {str}:  # the common case, checked in one C-level pass
            if self.is_pair:
                raise self._wants_pairs()
            return inputs, None
        pair = [isinstance(item, tuple | list) for item in inputs]
        if any(pair) and not all(pair):
            raise BundleError("the inputs mix single texts and (text, text_pair) pairs")
        if all(pair):
            for index, item in enumerate(inputs):
                if len(item) != 2:
                    raise BundleError(f"input {index}: a pair has two texts, got {len(item)}")
        for index, item in enumerate(inputs):
            for text in item if pair[index] else (item,):
                if not isinstance(text, str):
                    raise TypeError(f"text {index} is a {type(text).__name__}, not a str")
        if all(pair) and not self.is_pair:
            raise BundleError(f"{self.bundle_dir} reads single texts, not (text, text_pair) pairs")
        if not all(pair) and self.is_pair:
            raise self._wants_pairs()
        if all(pair):
            return [a for a, _ in inputs], [b for _, b in inputs]
        return inputs, None

    def _encode(self, texts: Sequence[Any], pairs: bool = False) -> list[list[int]]:
        """Token ids of single texts, or (`pairs`) of `(text, text_pair)` tuples read as one
        sequence."""
        # `encode` for one text: `encode_batch` would wake tokenizers' thread pool for nothing.
        if self.word_cache is not None and not pairs:
            token_ids = self.word_cache.encode(texts)
        elif len(texts) == 1:
            item = texts[0]
            encodings = [
                self.tokenizer.encode(*item)
                if isinstance(item, tuple)
                else self.tokenizer.encode(item)
            ]
            token_ids = [encoding.ids for encoding in encodings]
        else:
            token_ids = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        if not all(token_ids):
            index = next(i for i, ids in enumerate(token_ids) if not ids)
            raise DataError(f"text {index} ({texts[index]!r}) has no tokens")
        return token_ids

    def encode(self, inputs: Sequence[Any]) -> dict[str, list[list[int]]]:
        """The token ids the model reads: `input_ids` (a joint bundle: each pair as one
        sequence), and for a siamese bundle `pair_input_ids` (the second texts on their own)."""
        texts, pairs = self._split(inputs)
        if pairs is None:
            return {"input_ids": self._encode(texts)}
        if self.pair_design == "joint":
            return {"input_ids": self._encode(list(zip(texts, pairs, strict=True)), pairs=True)}
        return {"input_ids": self._encode(texts), "pair_input_ids": self._encode(pairs)}

    def logits(self, texts: Sequence[Any]) -> np.ndarray:
        """Logits `(len(texts), num_labels)` float32, in the order of `texts` (a regression
        bundle: `(n, 1)` predicted scores); `texts` are strings or `(text, text_pair)` tuples."""
        encoded = self.encode(texts)
        batch_size = self.batch_size
        if self.workers > 1:  # enough batches for every thread
            batch_size = max(1, min(batch_size, -(-len(encoded["input_ids"]) // self.workers)))
        if "pair_input_ids" in encoded:
            return run_batched_pairs(
                encoded["input_ids"],
                encoded["pair_input_ids"],
                self._run,
                self.num_labels,
                pad_id=self.pad_token_id,
                batch_size=batch_size,
                workers=self.workers,
                executor=self._executor(),
            )
        return run_batched(
            encoded["input_ids"],
            self._run,
            self.num_labels,
            pad_id=self.pad_token_id,
            batch_size=batch_size,
            workers=self.workers,
            executor=self._executor(),
        )

    def _executor(self) -> ThreadPoolExecutor | None:
        """The threads that run batches at once (`parallel="batches"`), made once."""
        if self.workers > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="distilrnn-batch")
        return self._pool

    def _run(self, *arrays: np.ndarray) -> np.ndarray:
        """The model on one padded batch (`input_ids`, `attention_mask` `(batch, seq)` int64,
        and a siamese bundle's pair ids and mask) -> logits `(batch, num_labels)`."""
        names = PAIR_INPUT_NAMES if len(arrays) == 4 else INPUT_NAMES
        (logits,) = self.session.run([OUTPUT_NAME], dict(zip(names, arrays, strict=True)))
        return logits

    def predict_proba(self, texts: Sequence[Any]) -> np.ndarray:
        """Label probabilities `(len(texts), num_labels)` float64, rows summing to 1."""
        if self.task_type == REGRESSION:
            raise BundleError(
                f"{self.bundle_dir} is a regression bundle: it predicts a score, not label "
                "probabilities (use predict or logits)"
            )
        return softmax(self.logits(texts))

    def predict(self, texts: Sequence[Any]) -> list[Prediction]:
        """Each input's most probable label, with every label's probability; a regression
        bundle: each input's predicted `score`."""
        texts = texts if isinstance(texts, str) else list(texts)  # a str is refused below
        first, second = self._split(texts)
        seconds: list[str | None] = [None] * len(first) if second is None else list(second)
        if self.task_type == REGRESSION:
            values = self.logits(texts)[:, 0]
            return [
                Prediction(text=text, text_pair=pair, score=float(value))
                for text, pair, value in zip(first, seconds, values, strict=True)
            ]
        probabilities = self.predict_proba(texts)
        return [
            Prediction(
                text=text,
                label=self.labels[int(row.argmax())],
                probabilities={name: float(p) for name, p in zip(self.labels, row, strict=True)},
                label_id=int(row.argmax()),
                text_pair=pair,
            )
            for text, pair, row in zip(first, seconds, probabilities, strict=True)
        ]

    def score(self, texts: Sequence[Any], labels: Sequence[float]) -> Score:
        """The bundle's task metrics on labelled inputs (label ids, or gold scores for a
        regression bundle); a classifier's `correct` counts most-probable labels that match."""
        logits = self.logits(texts)
        names = list(self.metrics)
        if self.task_type == REGRESSION:
            return Score(examples=len(logits), metrics=scores(names, logits, labels, REGRESSION))
        if "accuracy" not in names:
            names.append("accuracy")
        correct = int((logits.argmax(axis=-1) == np.asarray(labels)).sum())
        measured = scores(names, logits, labels, CLASSIFICATION)
        return Score(examples=len(logits), correct=correct, metrics=measured)
