"""Writing a bundle: a student (and, for benchmarks, a teacher) as the folder `distilrnn.runtime`
runs, with its config, label names, tokenizer and model card.

`export_bundle` works on objects (an `RNNStudent`, a tokenizer, `ExportSettings`);
`export_student` is the same for a student folder, with what its run knows (label names,
teacher, task, transfer set, test half) filled in. Writes are atomic: the bundle is built in a
temporary sibling folder and renamed into place, so a failed export never leaves a half-written
bundle or destroys the previous one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from distilrnn.atomic import write_json_atomic
from distilrnn.config import ExportSettings
from distilrnn.errors import (
    BundleError,
    ConfigError,
    MissingFileError,
    RunFolderError,
    StudentError,
)
from distilrnn.export.files import building, file_bytes, portable_name
from distilrnn.export.fold import FoldedStudent, can_fold, folding_record
from distilrnn.export.graph import BundleModel, export_onnx, export_teacher_onnx
from distilrnn.export.quantize import quantization_record, quantize_onnx
from distilrnn.export.vocabulary import TokenizerSource, load_tokenizer, pruned_model, token_weights
from distilrnn.metrics import CLASSIFICATION, DEFAULT_METRICS, scores
from distilrnn.model_card import model_card
from distilrnn.records import TeacherRecord
from distilrnn.run import Run, StudentRecord, read_texts
from distilrnn.runtime import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CARD_NAME,
    CONFIG_NAME,
    INPUT_NAMES,
    LABELS_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    PAIR_INPUT_NAMES,
    TOKENIZER_NAME,
    Predictor,
    read_label_names,
)
from distilrnn.student import RNNStudent
from distilrnn.timing import latency_ms

logger = logging.getLogger(__name__)

TextSource = Callable[[str], Sequence[str]]  # a text source's name -> its texts
# Sentences for the model card's latency when the caller gives none.
SAMPLE_TEXTS = (
    "a gripping , beautifully acted film .",
    "the plot is thin and the jokes fall flat .",
    "it 's not a masterpiece , but it is never boring either , and the ending lands .",
    "dull .",
    "one of the most charming movies of the year , with a cast that clearly enjoys itself .",
    "too long by half , and the second act drags badly before a rushed finale .",
)
LATENCY_TEXTS = 200  # test sentences timed for the card, from a run's test half
# pairs for a pair bundle's latency: each sample sentence beside the next one
SAMPLE_PAIRS = tuple(zip(SAMPLE_TEXTS, SAMPLE_TEXTS[1:] + SAMPLE_TEXTS[:1], strict=True))


# a student folder ------------------------------------------------------------------------------
def find_student(path: Path, variant: str | None = None, seed: int | None = None) -> Path:
    """The student folder `path` names: `path` itself, or the student `variant` / `seed` of the
    run `path` (default seed: the lowest trained)."""
    run = Run(path)
    if variant is not None:
        return run.resolve_student(variant, seed)
    if seed is not None:
        raise RunFolderError(f"--seed {seed} needs --variant: name the student of {path}")
    if run.is_run() or run.students_dir.is_dir():
        raise RunFolderError(f"{path} is a run directory: name the student with --variant")
    return path


def read_text_source(source: str) -> list[str]:
    """Texts of a text file or a `datasets` folder; `transfer` needs the student's run."""
    if source == "transfer":
        raise RunFolderError(
            "the text source `transfer` needs the student's run: export a student folder "
            "inside a run directory, or give a text file"
        )
    return read_texts(source)


def export_student(
    source: str | Path,
    output_dir: str | Path,
    settings: ExportSettings | None = None,
    *,
    variant: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """`export_bundle` of a student folder: `source` is the folder, or a run folder with
    `variant` (and `seed`). A student inside its run gets the run's label names, teacher and
    task on its card, the text source `transfer` (what it trained on), `rank_texts` =
    `transfer` by default, and the bundle's accuracy on the run's test half; a folder saved by
    `RNNStudent.save_pretrained` gives the label names it holds."""
    settings = settings or ExportSettings()
    student_dir = find_student(Path(source), variant, seed)
    tokenizer_path = student_dir / TOKENIZER_NAME
    if not tokenizer_path.is_file():
        raise MissingFileError(f"student tokenizer not found: {tokenizer_path}")
    student = RNNStudent.load(student_dir)
    record = StudentRecord.read(student_dir)
    run = Run.of_student(student_dir)
    if run is None:  # a folder of `save_pretrained` keeps its label names beside the weights
        saved = student_dir / LABELS_NAME
        labels = settings.labels or (read_label_names(saved) if saved.is_file() else None)
        return export_bundle(
            student, tokenizer_path, output_dir, settings, labels=labels, metrics=record.metrics
        )
    if settings.embedding_rank and not settings.rank_texts:
        settings = dataclasses.replace(settings, rank_texts="transfer")
    context = run.context()
    teacher = {**context["teacher"], **_teacher_origin(TeacherRecord.read(run.teacher_dir))}
    task = run.task()
    evaluation = _test_inputs(task)
    return export_bundle(
        student,
        tokenizer_path,
        output_dir,
        settings,
        labels=settings.labels or context["labels"],
        metrics=record.metrics,
        teacher=teacher,
        task=context["task"],
        evaluation=evaluation,
        latency_texts=evaluation[0][:LATENCY_TEXTS],
        text_source=lambda name: run.text_source(name, record),
        task_metrics=getattr(task, "metrics", None),
    )


def _test_inputs(task: Any) -> tuple[list[Any], list[Any]]:
    """The inputs (texts, or `(text, text_pair)` tuples) and labels of a task's test half."""
    test = task.splits["test"]
    texts = list(test["text"])
    if "text_pair" in test.column_names:
        texts = list(zip(texts, test["text_pair"], strict=True))
    return texts, list(test["label"])


def _teacher_origin(record: TeacherRecord) -> dict[str, Any]:
    """How the run's teacher came to be, for the card: fine-tuned by distilrnn from a backbone,
    or an already fine-tuned checkpoint used as given."""
    if record.settings.get("checkpoint"):
        return {"source": "checkpoint"}
    return {"source": "fine-tuned"} if record.settings.get("model") else {}


# the bundle ------------------------------------------------------------------------------------
def export_bundle(
    student: RNNStudent,
    tokenizer: TokenizerSource,
    output_dir: str | Path,
    settings: ExportSettings | None = None,
    *,
    labels: Sequence[str] | None = None,
    metrics: dict[str, Any] | None = None,
    teacher: dict[str, Any] | None = None,
    task: str | None = None,
    evaluation: tuple[Sequence[Any], Sequence[float]] | None = None,
    latency_texts: Sequence[Any] | None = None,
    text_source: TextSource = read_text_source,
    task_metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Export `student` as a bundle in `output_dir`; an existing bundle there is replaced,
    atomically.

    Args:
        student: the student (e.g. `RNNStudent.load(folder)` or what `distill` returned).
        tokenizer: its tokenizer: a `tokenizer.json` path, or a `tokenizers.Tokenizer` (e.g. a
            `PreTrainedTokenizerFast.backend_tokenizer`).
        settings: compression, label names and truncation (`ExportSettings`).
        labels: label names in logit order; default: `settings.labels`.
        metrics: the student's metrics (metrics.json) for the model card; its
            `settings.max_length` is the default truncation.
        teacher: `{"name": ..., "validation_accuracy": ..., "source": "fine-tuned" |
            "checkpoint"}` for the card; a path as name is shortened to its folder's name.
        task: the task's name for the card and the Hub metadata; `settings.task_name` wins.
        evaluation: inputs (texts, or `(text, text_pair)` tuples for a pair student) and
            label ids (regression: gold scores) to measure the bundle's task metrics on (and
            the primary one's change against the eager student's `test_<metric>`, when they
            are the test half).
        latency_texts: sentences for the card's one-sentence latency; default: a built-in few.
        text_source: turns `settings.prune_vocab` / `settings.rank_texts` into texts; default:
            a text file or a datasets folder (`export_student` adds the run's `transfer`).
        task_metrics: the task's metric names, primary first; default: the student's
            metrics.json `metrics`, else accuracy (classification) / pearson, spearman.

    Returns:
        A summary: files and their bytes, compression counts, latency, evaluation.
    """
    settings = settings or ExportSettings()
    metrics = metrics or {}
    labels = list(labels or settings.labels)
    if not labels:
        raise ConfigError(
            "no label names for the bundle: pass them (--labels) or export a student folder "
            "inside its run directory"
        )
    if len(labels) != student.config.num_labels:
        raise StudentError(
            f"{len(labels)} label names ({', '.join(labels)}) but the student has "
            f"{student.config.num_labels} outputs"
        )
    trained_length = metrics.get("settings", {}).get("max_length")
    max_length = settings.max_length or (None if trained_length is None else int(trained_length))
    output_dir = Path(output_dir)
    with building(output_dir) as tmp:
        config = _write_bundle(student, tokenizer, tmp, settings, labels, max_length, text_source)
        teacher = dict(teacher or {})
        if teacher.get("name"):
            teacher["name"] = portable_name(teacher["name"])
        config.update(teacher=teacher, task=portable_name(settings.task_name or task))
        task_type = student.config.task_type
        config["metrics"] = list(
            task_metrics or metrics.get("metrics") or DEFAULT_METRICS[task_type]
        )
        write_json_atomic(tmp / CONFIG_NAME, config)
        predictor = Predictor(tmp, threads=1)  # also checks that onnxruntime runs the model
        config.update(_measure(predictor, metrics, evaluation, latency_texts))
        write_json_atomic(tmp / CONFIG_NAME, config)
        sizes = file_bytes(tmp)
        card = model_card(config, labels, metrics, sizes)
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    logger.info("exported the student to %s (%d bytes)", output_dir, sum(sizes.values()))
    return {
        "files": sizes,
        "bundle_bytes": sum(sizes.values()),
        "compression": config["compression"],
        "latency_ms": config["latency_ms"],
        "evaluation": config.get("evaluation"),
        "bundle_dir": str(output_dir),
    }


def _write_bundle(
    student: RNNStudent,
    tokenizer: TokenizerSource,
    directory: Path,
    settings: ExportSettings,
    labels: list[str],
    max_length: int | None,
    text_source: TextSource,
) -> dict[str, Any]:
    """Model, tokenizer and labels into `directory`; returns the bundle's config."""
    encoder = load_tokenizer(tokenizer, max_length)  # encodes as the runtime will
    factorised = None
    if settings.embedding_rank:
        weights = None
        if settings.rank_texts:
            weights = token_weights(encoder, text_source(settings.rank_texts), max_length)
        factorised = {
            "from_width": student.config.embedding_dim,
            "rank": settings.embedding_rank,
            "token_weights": "uniform" if weights is None else "frequency in the given texts",
        }
        student = student.narrow(settings.embedding_rank, weights)
    pruning = None
    model = BundleModel(student)
    if settings.prune_vocab:
        model, pruning = pruned_model(student, encoder, text_source(settings.prune_vocab))
    folded = None
    if settings.fold_first_layer and can_fold(model.student):
        rows = model.student.config.vocab_size
        model.student = FoldedStudent(model.student)
        folded = folding_record(model.student, rows)
    quantized = None
    if settings.quantize:
        float_path = directory / "model.float.onnx"
        export_onnx(model, float_path)
        counts = quantize_onnx(
            float_path,
            directory / MODEL_NAME,
            settings.embedding_bits,
            settings.gru_int8,
            settings.lstm_int8,
        )
        quantized = quantization_record(
            settings.embedding_bits,
            float_path.stat().st_size,
            counts["gru"],
            counts["folded"],
            counts["lstm"],
        )
        float_path.unlink()
    else:
        export_onnx(model, directory / MODEL_NAME)
    write_compact_tokenizer(tokenizer, directory / TOKENIZER_NAME)
    write_json_atomic(directory / LABELS_NAME, {"names": labels})
    vocab_size, pad_token_id = student.config.vocab_size, student.config.padding_idx
    config = bundle_config("student", len(labels), vocab_size, pad_token_id, max_length)
    config["student"] = student.config.to_dict()
    config["pair_design"] = student.config.pair_design
    config["task_type"] = student.config.task_type
    if student.config.is_siamese:
        config["inputs"] = list(PAIR_INPUT_NAMES)
    config["compression"] = {
        "embedding_rank": factorised,
        "prune_vocab": pruning,
        "quantize": quantized,
        "fold_first_layer": folded,
    }
    return config


def _measure(
    predictor: Predictor,
    metrics: dict[str, Any],
    evaluation: tuple[Sequence[Any], Sequence[float]] | None,
    latency_texts: Sequence[Any] | None,
) -> dict[str, Any]:
    """The bundle's one-input latency and, with `evaluation`, its task metrics (`metrics` by
    name; the primary one as `metric` / `value`, and for classification `accuracy`) with the
    primary metric's change against the eager student's `test_<metric>`."""
    samples = SAMPLE_PAIRS if predictor.is_pair else SAMPLE_TEXTS
    latency = latency_ms(lambda text: predictor.predict([text]), latency_texts or samples * 20)
    measured: dict[str, Any] = {"latency_ms": {**latency, "threads": 1, "machine": _machine()}}
    if evaluation is not None:
        measured_metrics = bundle_scores(predictor, *evaluation)
        primary = predictor.metrics[0]
        value = measured_metrics[primary]
        student_value = metrics.get(f"test_{primary}")
        measured["evaluation"] = {
            "examples": len(evaluation[0]),
            "metric": primary,
            "value": value,
            "metrics": measured_metrics,
            f"student_test_{primary}": student_value,
            "delta_points": None if student_value is None else 100 * (value - student_value),
        }
        if predictor.task_type == CLASSIFICATION:
            measured["evaluation"]["accuracy"] = measured_metrics["accuracy"]
            measured["evaluation"]["student_test_accuracy"] = metrics.get("test_accuracy")
    return measured


def bundle_config(
    model: str, num_labels: int, vocab_size: int, pad_token_id: int, max_length: int | None
) -> dict[str, Any]:
    """The part of a bundle's config.json that `distilrnn.runtime` reads."""
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "model": model,
        "num_labels": num_labels,
        "vocab_size": vocab_size,
        "pad_token_id": pad_token_id,
        "max_length": max_length,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
    }


def bundle_accuracy(predictor: Predictor, texts: Sequence[Any], labels: Sequence[int]) -> float:
    """Share of `texts` (or pairs) whose most probable label id is the one in `labels`."""
    predicted = predictor.logits(texts).argmax(axis=-1)
    return float((predicted == np.asarray(labels)).mean())


def bundle_scores(
    predictor: Predictor, inputs: Sequence[Any], labels: Sequence[float]
) -> dict[str, float]:
    """The bundle's task metrics (`predictor.metrics`; a classifier's always with accuracy)
    on labelled inputs, by name."""
    names = list(predictor.metrics)
    if predictor.task_type == CLASSIFICATION and "accuracy" not in names:
        names.append("accuracy")
    return scores(names, predictor.logits(inputs), labels, predictor.task_type)


def write_compact_tokenizer(tokenizer: TokenizerSource, target: Path) -> None:
    """The tokenizer as `tokenizers` serialises it, without indentation: the file transformers
    saves is pretty-printed, and a third of its bytes are whitespace."""
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_file(str(tokenizer))
    target.write_text(tokenizer.to_str(), encoding="utf-8")


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


# the teacher, for benchmarks -------------------------------------------------------------------
def export_teacher_bundle(
    teacher_dir: str | Path,
    output_dir: str | Path,
    *,
    labels: Sequence[str],
    max_length: int,
    quantize: bool = False,
) -> dict[str, Any]:
    """The fine-tuned teacher as a bundle, so that `Predictor` times it exactly as it times a
    student (benchmarks/bundle.py, benchmarks/peers.py). Returns its files and bytes.

    `quantize`: int8 through onnxruntime's dynamic quantisation (`quantize_dynamic`: int8
    weights, activations scaled per batch at run time, int8 MatMul kernels), the way a user
    would ship a transformer on CPU; unlike the students' weight-only int8, a text's logits can
    change slightly with the batch it arrives in."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher_dir, output_dir = Path(teacher_dir), Path(output_dir)
    tokenizer_path = teacher_dir / TOKENIZER_NAME
    if not tokenizer_path.is_file():
        raise MissingFileError(f"teacher tokenizer not found: {tokenizer_path}")
    model = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir)).eval()
    if model.config.num_labels != len(labels):
        raise BundleError(
            f"{len(labels)} label names but the teacher in {teacher_dir} has "
            f"{model.config.num_labels} outputs"
        )
    pad_token_id = AutoTokenizer.from_pretrained(str(teacher_dir)).pad_token_id
    with building(output_dir) as tmp:
        export_teacher_onnx(model, tmp / MODEL_NAME)
        extra: dict[str, Any] = {}
        if quantize:
            extra["quantization"] = _quantize_teacher(tmp / MODEL_NAME)
        shutil.copyfile(tokenizer_path, tmp / TOKENIZER_NAME)
        write_json_atomic(tmp / LABELS_NAME, {"names": list(labels)})
        vocab_size = model.config.vocab_size
        config = bundle_config("teacher", len(labels), vocab_size, pad_token_id, max_length)
        name = portable_name(str(teacher_dir))
        write_json_atomic(tmp / CONFIG_NAME, {**config, **extra, "teacher": {"name": name}})
        (tmp / CARD_NAME).write_text(
            f"# Teacher bundle\n\n`{name}` exported to ONNX by distilrnn, to benchmark "
            "it with the runtime that runs the students.\n",
            encoding="utf-8",
        )
        Predictor(tmp)  # checks that onnxruntime loads it and that the files agree
        sizes = file_bytes(tmp)
    return {"bundle_dir": str(output_dir), "files": sizes, "bundle_bytes": sum(sizes.values())}


def _quantize_teacher(model_path: Path) -> dict[str, Any]:
    """`model_path` replaced by its onnxruntime dynamic int8 quantisation; the record for the
    bundle config."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = model_path.with_name("model-float.onnx")
    model_path.rename(float_path)
    float_bytes = float_path.stat().st_size
    # onnxruntime's quantisation tools log a line per tensor on the root logger at INFO, and
    # advise a pre-processing pass (symbolic shape inference) that fails on torch.export's
    # graph; every weight MatMul / Gemm is quantised without it (the attention products,
    # activation by activation, stay float as they would anyway)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(float_path, model_path, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        float_path.unlink()
    return {
        "method": "onnxruntime dynamic quantisation: int8 weights, activations scaled per batch",
        "mode": "dynamic",
        "float_model_bytes": float_bytes,
    }
