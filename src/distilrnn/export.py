"""Export a trained student as a self-contained bundle that `distilrnn.runtime` runs without torch.

The bundle (see `distilrnn.runtime`) holds the ONNX graph, the tokenizer, the label names, a
config and a model card. Two optional compressions, each reported in bytes:

- vocabulary pruning: only the embedding rows of tokens that occur in a set of texts (the transfer
  set) and the special tokens are kept. The graph still takes the tokenizer's ids: an int64 id
  table inside it (an initializer read by a Gather before the embedding) maps each id to its row
  in the pruned embedding, and every dropped id to the row of the unknown token, so the
  tokenizer ships unchanged.
- embedding rank: the embedding and the first recurrent layer factorised to N columns
  (`distilrnn.student.factorize`), with no training; tokens weighted by their frequency in a set
  of texts (the transfer set).
- int8 dynamic quantisation of the weights (onnxruntime's `quantize_dynamic`), optionally with
  the embedding in 4-bit blocks (onnxruntime's `GatherBlockQuantized`).

Writes are atomic: the bundle is built in a temporary sibling folder and renamed into place, so a
failed export never leaves a half-written bundle or destroys the previous one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.model_card import model_card
from distilrnn.run_dir import (
    find_run_dir,
    read_text_source,
    resolve_student_dir,
    run_context,
    run_test_split,
)
from distilrnn.runtime import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CARD_NAME,
    CONFIG_NAME,
    INPUT_NAMES,
    LABELS_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    TOKENIZER_NAME,
    Predictor,
)
from distilrnn.student import RNNStudent, StudentConfig
from distilrnn.student.factorize import factorize_embedding, frequency_weights

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    OUTPUT_NAME: {0: "batch"},
}
# Sentences for the model card's latency when the caller gives none.
SAMPLE_TEXTS = (
    "a gripping , beautifully acted film .",
    "the plot is thin and the jokes fall flat .",
    "it 's not a masterpiece , but it is never boring either , and the ending lands .",
    "dull .",
    "one of the most charming movies of the year , with a cast that clearly enjoys itself .",
    "too long by half , and the second act drags badly before a rushed finale .",
)


class BundleModel(nn.Module):
    """The exported graph: token ids -> (id table) -> student -> logits `(batch, num_labels)`."""

    def __init__(self, student: RNNStudent, id_table: torch.Tensor | None = None) -> None:
        """`id_table` `(vocab_size,)` int64 maps a tokenizer id to its row in the student's
        (pruned) embedding; None when the embedding has a row for every id."""
        super().__init__()
        self.student = student.eval()
        self.register_buffer("id_table", id_table)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`input_ids`, `attention_mask` `(batch, seq)` int64, right-padded -> logits."""
        if self.id_table is not None:
            input_ids = self.id_table[input_ids]  # (batch, seq) rows of the pruned embedding
        return self.student(input_ids, attention_mask)


def export_onnx(model: BundleModel, path: Path) -> None:
    """Write `model` as ONNX with dynamic batch and sequence axes.

    This uses the TorchScript exporter (`dynamo=False`), not torch 2.13's default
    torch.export-based one: the latter bakes the example's sequence length into a Reshape of a
    unidirectional GRU (a model exported at length 5 fails at length 9), a silent shape error;
    the TorchScript exporter maps `nn.LSTM`/`nn.GRU` to ONNX LSTM/GRU ops with both axes free and
    matches the eager logits to ~1e-7 for every architecture (tests/test_export.py). Should torch
    drop it, the parity test is what says whether the other exporter has caught up.
    """
    input_ids = torch.ones((2, 3), dtype=torch.long)
    attention_mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with warnings.catch_warnings(), torch.no_grad():
        # the deprecation notice of the TorchScript exporter (chosen above, on purpose)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # No initial state is passed, so the ONNX LSTM/GRU start from zeros at any batch size;
        # the warning is about graphs that feed one in.
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        # nn.LSTM/nn.GRU check their input width and state shape in Python; both are fixed by
        # the architecture, so tracing them as constants is right.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model.eval(),
            (input_ids, attention_mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=DYNAMIC_AXES,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


EMBEDDING_BITS = (8, 4)
EMBEDDING_BLOCK = 32  # 4-bit embedding: one scale and zero point per 32 values of a row


def quantize_onnx(source: Path, target: Path, embedding_bits: int = 8) -> None:
    """int8 dynamic quantisation of `source`'s weights (embedding Gather, LSTM, MatMul/Gemm);
    activations are quantised on the fly at run time. GRU weights stay float32, as onnxruntime
    has no quantised GRU kernel. With `embedding_bits` = 4 the embedding is stored in 4-bit
    blocks of `EMBEDDING_BLOCK` values with their own scale and zero point (onnxruntime's
    `GatherBlockQuantized`, a com.microsoft operator its CPU runtime has)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if embedding_bits not in EMBEDDING_BITS:
        raise ValueError(f"embedding_bits must be one of {EMBEDDING_BITS}, got {embedding_bits}")
    # The pre-processing onnxruntime asks for (shape inference, graph clean-up) before
    # quantising; it changes no result.
    prepared = target.with_name(target.stem + ".prepared.onnx")
    blocked = target.with_name(target.stem + ".blocked.onnx")
    # onnxruntime's quantisation tools log a line per tensor on the root logger at INFO.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        op_types = None
        if embedding_bits == 4:
            _quantize_embedding_4bit(source, blocked)
            source = blocked
            op_types = ["LSTM", "MatMul", "Gemm"]  # the embedding Gather is done
        quant_pre_process(str(source), str(prepared))
        quantize_dynamic(
            str(prepared), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=op_types
        )
    finally:
        root.setLevel(level)
        prepared.unlink(missing_ok=True)
        blocked.unlink(missing_ok=True)


def _quantize_embedding_4bit(source: Path, target: Path) -> None:
    """The float embedding Gather of `source` as a 4-bit `GatherBlockQuantized`; the id table
    (an int64 Gather, when the vocabulary is pruned) is left alone."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    gathers = [n for n in model.graph.node if n.op_type == "Gather"]
    embedding = [n.name for n in gathers if n.input[0] in floats]
    if len(embedding) != 1 or not embedding[0]:
        raise ValueError(f"expected one float embedding Gather in {source}, found {embedding}")
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=4,
        block_size=EMBEDDING_BLOCK,
        is_symmetric=False,
        nodes_to_exclude=[n.name for n in gathers if n.name != embedding[0]],
        op_types_to_quantize=("Gather",),
        quant_axes=(("Gather", 1),),
    )
    # an all-zero block (the padding row) has scale 0; onnxruntime picks its value with
    # np.where after dividing by it anyway, which numpy warns about
    with np.errstate(divide="ignore", invalid="ignore"):
        quantizer.process()
    onnx.save(quantizer.model.model, str(target))


def write_compact_tokenizer(source: Path, target: Path) -> None:
    """The same tokenizer, serialised by `tokenizers` without indentation: the file
    transformers saves is pretty-printed, and a third of its bytes are whitespace."""
    target.write_text(Tokenizer.from_file(str(source)).to_str(), encoding="utf-8")


# vocabulary pruning -------------------------------------------------------------------------
def load_tokenizer(path: Path, max_length: int | None) -> Tokenizer:
    """The bundle's tokenizer, truncating as the runtime does."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    if max_length is not None:
        tokenizer.enable_truncation(max_length)
    return tokenizer


def used_token_ids(tokenizer: Tokenizer, texts: Iterable[str]) -> np.ndarray:
    """Sorted unique ids `(n,)` int64 of the tokens `tokenizer` produces for `texts`."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    return np.flatnonzero(token_counts(tokenizer, texts, size)).astype(np.int64)


def token_counts(
    tokenizer: Tokenizer, texts: Iterable[str], vocab_size: int, chunk: int = 8192
) -> np.ndarray:
    """How often each token id occurs when `tokenizer` encodes `texts`: `(vocab_size,)`."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    batch: list[str] = []
    count = 0

    def flush() -> None:
        for encoding in tokenizer.encode_batch(batch):
            np.add.at(counts, encoding.ids, 1)

    for text in texts:
        batch.append(text)
        count += 1
        if len(batch) == chunk:
            flush()
            batch = []
    if batch:
        flush()
    if count == 0:
        raise ValueError("no texts to count tokens in: the text source is empty")
    return counts


def token_weights(tokenizer_path: Path, texts: Iterable[str], max_length: int | None) -> np.ndarray:
    """`frequency_weights` of each token's count in `texts` under the bundle's tokenizer, for
    `export_bundle(embedding_rank=...)`."""
    tokenizer = load_tokenizer(tokenizer_path, max_length)
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    return frequency_weights(token_counts(tokenizer, texts, size))


def unknown_token_id(tokenizer: Tokenizer, path: Path) -> int:
    token = getattr(tokenizer.model, "unk_token", None)
    token_id = tokenizer.token_to_id(token) if token else None
    if token_id is None:
        raise ValueError(
            f"{path} has no unknown token, so dropped tokens would have no row to map to; "
            "export without vocabulary pruning"
        )
    return token_id


def special_token_ids(tokenizer: Tokenizer) -> list[int]:
    return [i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special]


def prune_vocabulary(
    student: RNNStudent, keep_ids: np.ndarray, unk_id: int
) -> tuple[BundleModel, dict[str, int]]:
    """A `BundleModel` whose embedding holds only the rows `keep_ids` (plus the padding and
    unknown rows), with the id table that maps every original id to its new row (dropped ids to
    the unknown token's row). Returns it and counts: kept rows, vocabulary size, bytes saved."""
    config = student.config
    keep = np.union1d(keep_ids, [config.padding_idx, unk_id]).astype(np.int64)
    if keep[-1] >= config.vocab_size:
        raise ValueError(
            f"token id {int(keep[-1])} is outside the student's vocabulary of {config.vocab_size}"
        )
    new_row = np.full(config.vocab_size, np.searchsorted(keep, unk_id), dtype=np.int64)
    new_row[keep] = np.arange(len(keep))
    pruned_config = StudentConfig.from_dict(
        {
            **config.to_dict(),
            "vocab_size": len(keep),
            "padding_idx": int(new_row[config.padding_idx]),
        }
    )
    pruned = RNNStudent(pruned_config)
    state = student.state_dict()
    state["embedding.weight"] = state["embedding.weight"][torch.from_numpy(keep)]
    pruned.load_state_dict(state, strict=True)
    removed_bytes = (config.vocab_size - len(keep)) * config.embedding_dim * 4
    table_bytes = config.vocab_size * 8
    counts = {
        "vocab_size": config.vocab_size,
        "kept_rows": len(keep),
        "embedding_bytes_removed": removed_bytes,
        "id_table_bytes": table_bytes,
        "bytes_saved": removed_bytes - table_bytes,
    }
    return BundleModel(pruned, torch.from_numpy(new_row)), counts


# measurements -------------------------------------------------------------------------------
def latency_ms(call: Callable[[str], object], texts: Sequence[str], warmup: int = 5) -> dict:
    """p50 / p90 milliseconds of `call(text)`, one text per call, after `warmup` untimed calls."""
    for text in texts[:warmup]:
        call(text)
    seconds = np.empty(len(texts))
    for index, text in enumerate(texts):
        started = time.perf_counter()
        call(text)
        seconds[index] = time.perf_counter() - started
    return {
        "p50": float(np.percentile(seconds, 50) * 1e3),
        "p90": float(np.percentile(seconds, 90) * 1e3),
        "calls": len(texts),
    }


def bundle_accuracy(predictor: Predictor, texts: Sequence[str], labels: Sequence[int]) -> float:
    """Share of `texts` whose most probable label id is the one in `labels`."""
    predicted = predictor.logits(texts).argmax(axis=-1)
    return float((predicted == np.asarray(labels)).mean())


def file_bytes(directory: Path, names: Sequence[str] = BUNDLE_FILES) -> dict[str, int]:
    return {name: (directory / name).stat().st_size for name in names}


def export_student(
    source: str | Path,
    output_dir: str | Path,
    *,
    variant: str | None = None,
    seed: int | None = None,
    prune_vocab: str | Path | None = None,
    quantize: bool = False,
    labels: Sequence[str] | None = None,
    max_length: int | None = None,
    embedding_rank: int | None = None,
    rank_texts: str | Path | None = None,
    embedding_bits: int = 8,
) -> dict[str, Any]:
    """`export_bundle` for the CLI: `source` is a student folder, or a run folder with `variant`
    (and `seed`); `prune_vocab` and `rank_texts` text sources for `read_text_source` (the
    latter defaults to `transfer` for a student inside its run). A student inside its run is
    also measured on the run's test half, against the eager student's test accuracy."""
    student_dir = resolve_student_dir(Path(source), variant, seed)
    if not student_dir.is_dir():
        raise FileNotFoundError(f"student folder not found: {student_dir}")
    run_dir = find_run_dir(student_dir)
    metrics = _student_metrics(student_dir)
    texts = read_text_source(prune_vocab, run_dir, metrics) if prune_vocab is not None else None
    weights = None
    if embedding_rank is not None:
        if rank_texts is None and run_dir is not None:
            rank_texts = "transfer"
        if rank_texts is not None:
            weights = token_weights(
                student_dir / TOKENIZER_NAME,
                read_text_source(rank_texts, run_dir, metrics),
                _max_length(metrics) if max_length is None else max_length,
            )
    evaluation = run_test_split(run_dir) if run_dir else None
    return export_bundle(
        student_dir,
        output_dir,
        labels=labels,
        prune_vocab_texts=texts,
        quantize=quantize,
        embedding_rank=embedding_rank,
        token_weights=weights,
        embedding_bits=embedding_bits,
        metrics=metrics,
        max_length=max_length,
        evaluation=evaluation,
        latency_texts=evaluation[0][:200] if evaluation else None,
    )


# the bundle ----------------------------------------------------------------------------------
def _check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a folder that is not a bundle: replacing it would delete its files."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise ValueError(f"output {output_dir} exists and is not a directory")
    config_path = output_dir / CONFIG_NAME
    is_bundle = False
    if config_path.is_file():
        try:
            is_bundle = json.loads(config_path.read_text()).get("format") == BUNDLE_FORMAT
        except (json.JSONDecodeError, AttributeError):
            is_bundle = False
    if any(output_dir.iterdir()) and not is_bundle:
        raise ValueError(
            f"output {output_dir} exists and is not a distilrnn bundle; choose another folder"
        )


@contextlib.contextmanager
def _building(output_dir: Path) -> Iterator[Path]:
    """A temporary sibling of `output_dir` to build the bundle in; moved to `output_dir` when
    the block succeeds, removed (leaving `output_dir` as it was) when it fails."""
    _check_output_dir(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-"))
    try:
        yield tmp
        replace_directory(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _student_metrics(student_dir: Path) -> dict[str, Any]:
    path = student_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _max_length(metrics: dict[str, Any]) -> int | None:
    value = metrics.get("settings", {}).get("max_length")
    return int(value) if value is not None else None


def export_bundle(
    student_dir: str | Path,
    output_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    prune_vocab_texts: Iterable[str] | None = None,
    quantize: bool = False,
    embedding_rank: int | None = None,
    token_weights: np.ndarray | None = None,
    embedding_bits: int = 8,
    metrics: dict[str, Any] | None = None,
    max_length: int | None = None,
    teacher: dict[str, Any] | None = None,
    task: str | None = None,
    evaluation: tuple[Sequence[str], Sequence[int]] | None = None,
    latency_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Export the student in `student_dir` (a `distilrnn student` output) as a bundle.

    Args:
        student_dir: holds model.safetensors, config.json, tokenizer.json and metrics.json.
        output_dir: the bundle folder; an existing bundle there is replaced, atomically.
        labels: label names in logit order; default: the run's `data/labels.json`.
        prune_vocab_texts: keep only the embedding rows of tokens in these texts (and the
            special tokens); None keeps every row.
        quantize: int8 dynamic quantisation of the weights.
        embedding_rank: factorise the embedding and the first recurrent layer to this many
            columns first (no training); None keeps the width.
        token_weights: `(vocab_size,)` weight of each token in that factorisation (see
            `token_weights`); None weighs every token alike.
        embedding_bits: with `quantize`, 8 (int8 like the rest) or 4 (4-bit blocks).
        metrics: the student's metrics for the model card; default: its metrics.json.
        max_length: tokens per text (truncation); default: the student's training max_length.
        teacher: `{"name": ..., "validation_accuracy": ..., ...}`; default: from the run.
        task: the task's name or path; default: from the run.
        evaluation: texts and label ids to measure the bundle's accuracy on (and its change
            against the eager student's `test_accuracy`, when they are the test half).
        latency_texts: sentences for the card's one-sentence latency; default: a built-in few.

    Returns:
        A summary: files and their bytes, compression counts, latency, evaluation.
    """
    student_dir, output_dir = Path(student_dir), Path(output_dir)
    tokenizer_path = student_dir / TOKENIZER_NAME
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"student tokenizer not found: {tokenizer_path}")
    student = RNNStudent.load(student_dir)
    run_dir = find_run_dir(student_dir)
    context = run_context(run_dir) if run_dir else {}
    metrics = _student_metrics(student_dir) if metrics is None else metrics
    max_length = _max_length(metrics) if max_length is None else max_length
    labels = list(labels) if labels else context.get("labels")
    if not labels:
        raise ValueError(
            f"no label names for {student_dir}: pass them (--labels) or export a student "
            "folder inside its run directory"
        )
    if embedding_bits not in EMBEDDING_BITS:
        raise ValueError(f"embedding_bits must be one of {EMBEDDING_BITS}, got {embedding_bits}")
    if embedding_bits != 8 and not quantize:
        raise ValueError("a 4-bit embedding is a quantisation: pass quantize as well")
    if len(labels) != student.config.num_labels:
        raise ValueError(
            f"{len(labels)} label names ({', '.join(labels)}) but the student in {student_dir} "
            f"has {student.config.num_labels} outputs"
        )
    with _building(output_dir) as tmp:
        summary = _build_bundle(
            student,
            tokenizer_path,
            tmp,
            labels=labels,
            prune_vocab_texts=prune_vocab_texts,
            quantize=quantize,
            embedding_rank=embedding_rank,
            token_weights=token_weights,
            embedding_bits=embedding_bits,
            metrics=metrics,
            max_length=max_length,
            teacher=teacher or context.get("teacher") or {},
            task=task or context.get("task"),
            evaluation=evaluation,
            latency_texts=latency_texts,
        )
    summary["bundle_dir"] = str(output_dir)
    logger.info("exported %s to %s (%d bytes)", student_dir, output_dir, summary["bundle_bytes"])
    return summary


def _build_bundle(
    student: RNNStudent,
    tokenizer_path: Path,
    directory: Path,
    *,
    labels: list[str],
    prune_vocab_texts: Iterable[str] | None,
    quantize: bool,
    embedding_rank: int | None,
    token_weights: np.ndarray | None,
    embedding_bits: int,
    metrics: dict[str, Any],
    max_length: int | None,
    teacher: dict[str, Any],
    task: str | None,
    evaluation: tuple[Sequence[str], Sequence[int]] | None,
    latency_texts: Sequence[str] | None,
) -> dict[str, Any]:
    tokenizer = load_tokenizer(tokenizer_path, max_length)
    factorised = None
    if embedding_rank is not None:
        width = student.config.embedding_dim
        student = factorize_embedding(student, embedding_rank, token_weights)
        factorised = {
            "from_width": width,
            "rank": embedding_rank,
            "token_weights": "uniform" if token_weights is None else "frequency in the given texts",
        }
    pruning = None
    if prune_vocab_texts is not None:
        keep = np.union1d(
            used_token_ids(tokenizer, prune_vocab_texts), special_token_ids(tokenizer)
        )
        model, pruning = prune_vocabulary(
            student, keep, unknown_token_id(tokenizer, tokenizer_path)
        )
        logger.info(
            "vocabulary pruning keeps %d of %d rows", pruning["kept_rows"], pruning["vocab_size"]
        )
    else:
        model = BundleModel(student)
    if quantize:
        float_path = directory / "model.float.onnx"
        export_onnx(model, float_path)
        float_bytes = float_path.stat().st_size
        quantize_onnx(float_path, directory / MODEL_NAME, embedding_bits)
        float_path.unlink()
    else:
        export_onnx(model, directory / MODEL_NAME)
    write_compact_tokenizer(tokenizer_path, directory / TOKENIZER_NAME)
    write_json_atomic(directory / LABELS_NAME, {"names": labels})
    compression = {
        "embedding_rank": factorised,
        "prune_vocab": pruning,
        "quantize": (
            {
                "method": "onnxruntime quantize_dynamic, int8 weights"
                + (
                    f"; embedding in 4-bit blocks of {EMBEDDING_BLOCK} (GatherBlockQuantized)"
                    if embedding_bits == 4
                    else ""
                ),
                "embedding_bits": embedding_bits,
                "float_model_bytes": float_bytes,
            }
            if quantize
            else None
        ),
    }
    config = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "model": "student",
        "num_labels": len(labels),
        "vocab_size": student.config.vocab_size,
        "pad_token_id": student.config.padding_idx,
        "max_length": max_length,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "student": student.config.to_dict(),
        "teacher": teacher,
        "task": task,
        "compression": compression,
    }
    write_json_atomic(directory / CONFIG_NAME, config)

    predictor = Predictor(directory, threads=1)  # also checks that onnxruntime runs the model
    latency = latency_ms(lambda text: predictor.predict([text]), latency_texts or SAMPLE_TEXTS * 20)
    config["latency_ms"] = {**latency, "threads": 1, "machine": _machine()}
    if evaluation is not None:
        accuracy = bundle_accuracy(predictor, *evaluation)
        student_accuracy = metrics.get("test_accuracy")
        config["evaluation"] = {
            "examples": len(evaluation[0]),
            "accuracy": accuracy,
            "student_test_accuracy": student_accuracy,
            "delta_points": None
            if student_accuracy is None
            else 100 * (accuracy - student_accuracy),
        }
    write_json_atomic(directory / CONFIG_NAME, config)
    sizes = file_bytes(directory)
    (directory / CARD_NAME).write_text(model_card(config, labels, metrics, sizes), encoding="utf-8")
    return {
        "files": sizes,
        "bundle_bytes": sum(sizes.values()),
        "compression": compression,
        "latency_ms": config["latency_ms"],
        "evaluation": config.get("evaluation"),
    }


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


# the teacher, for benchmarks -------------------------------------------------------------------
class TeacherLogits(nn.Module):
    """A transformers sequence classifier as `(input_ids, attention_mask) -> logits`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_teacher_bundle(
    teacher_dir: str | Path, output_dir: str | Path, *, labels: Sequence[str], max_length: int
) -> dict[str, Any]:
    """The fine-tuned teacher as a bundle, so that `Predictor` times it exactly as it times a
    student (benchmarks/bundle.py). Returns its files and bytes.

    The teacher goes through torch.export (`dynamo=True`), unlike the student: the TorchScript
    exporter traces transformers' attention-mask construction for the example's shape, and the
    graph's logits are off by ~1e-2 at other lengths; torch.export keeps them within ~1e-8.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher_dir, output_dir = Path(teacher_dir), Path(output_dir)
    tokenizer_path = teacher_dir / TOKENIZER_NAME
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"teacher tokenizer not found: {tokenizer_path}")
    model = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir)).eval()
    if model.config.num_labels != len(labels):
        raise ValueError(
            f"{len(labels)} label names but the teacher in {teacher_dir} has "
            f"{model.config.num_labels} outputs"
        )
    pad_token_id = AutoTokenizer.from_pretrained(str(teacher_dir)).pad_token_id
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    with _building(output_dir) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            # torch.export's own notices (axis renaming, a pytree deprecation inside torch)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
            torch.onnx.export(
                TeacherLogits(model).eval(),
                example,
                str(tmp / MODEL_NAME),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={
                    "input_ids": {0: batch, 1: sequence},
                    "attention_mask": {0: batch, 1: sequence},
                },
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        shutil.copyfile(tokenizer_path, tmp / TOKENIZER_NAME)
        write_json_atomic(tmp / LABELS_NAME, {"names": list(labels)})
        config = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "model": "teacher",
            "num_labels": len(labels),
            "vocab_size": model.config.vocab_size,
            "pad_token_id": pad_token_id,
            "max_length": max_length,
            "inputs": list(INPUT_NAMES),
            "output": OUTPUT_NAME,
            "teacher": {"name": str(teacher_dir)},
        }
        write_json_atomic(tmp / CONFIG_NAME, config)
        (tmp / CARD_NAME).write_text(
            f"# Teacher bundle\n\n`{teacher_dir}` exported to ONNX by distilrnn, to benchmark "
            "it with the runtime that runs the students.\n",
            encoding="utf-8",
        )
        Predictor(tmp)  # checks that onnxruntime loads it and that the files agree
        sizes = file_bytes(tmp)
    return {"bundle_dir": str(output_dir), "files": sizes, "bundle_bytes": sum(sizes.values())}
