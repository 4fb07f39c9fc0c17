"""Compressing a bundle's ONNX graph: weight-only int8. Each large float weight (the embedding
table, the LSTM / GRU input and recurrent weights, Conv kernels, MatMul / Gemm weights) is stored
as int8 with one symmetric scale per output channel and turned back into float32 in the graph
(Cast, Mul); every activation stays float32, so a sentence's logits do not depend on the batch
it arrives in (onnxruntime's dynamic quantisation scaled each batch's activations as a whole, so
labels could flip with the batch size). Optionally the embedding is stored in 4-bit blocks
(`GatherBlockQuantized`, also weight-only).

A GRU and an LSTM also compute in int8 (`gru_int8`, `lstm_int8`: `distilrnn.export.gru_int8`,
`distilrnn.export.lstm_int8`): their matrix products become onnxruntime's integer ones, with no
scale shared between the rows of a batch, so they keep that guarantee."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.errors import BundleError, ConfigError
from distilrnn.export.gru_int8 import folded_nodes, gru_to_int8
from distilrnn.export.lstm_int8 import lstm_to_int8

logger = logging.getLogger(__name__)

EMBEDDING_BITS = (8, 4)
EMBEDDING_BLOCK = 32  # 4-bit embedding: one scale and zero point per 32 values of a row
# which input of which operator is a weight to store as int8, and the axis of its output channels
WEIGHT_INPUTS = {("Gather", 0): 0, ("LSTM", 1): 1, ("LSTM", 2): 1, ("GRU", 1): 1, ("GRU", 2): 1}
WEIGHT_INPUTS |= {("MatMul", 1): 1, ("Gemm", 1): 1, ("Conv", 1): 0}
MIN_WEIGHT_VALUES = 256  # smaller float tensors (biases, tiny heads) are not worth a scale


def quantize_onnx(
    source: Path,
    target: Path,
    embedding_bits: int = 8,
    gru_int8: bool = True,
    lstm_int8: bool = True,
) -> dict[str, int]:
    """`source` with its weights stored as int8 (see the module), written to `target`. With
    `embedding_bits` = 4 the embedding is stored in 4-bit blocks of `EMBEDDING_BLOCK` values with
    their own scale and zero point (onnxruntime's `GatherBlockQuantized`, a com.microsoft operator
    its CPU runtime has). With `gru_int8` each GRU layer multiplies in int8
    (`distilrnn.export.gru_int8`), with `lstm_int8` each LSTM layer (`lstm_int8`). Returns how
    many GRU and LSTM nodes do (`gru`, `lstm`), and how many of them look their input
    projection up in a precomputed table (`folded`)."""
    import onnx

    if embedding_bits not in EMBEDDING_BITS:
        raise ConfigError(f"embedding_bits must be one of {EMBEDDING_BITS}, got {embedding_bits}")
    if embedding_bits == 4:
        model = _quantize_embedding_4bit(onnx.load(str(source)), source)
    else:
        model = onnx.load(str(source))
    counts = {
        "gru": gru_to_int8(model) if gru_int8 else 0,
        "lstm": lstm_to_int8(model) if lstm_int8 else 0,
        "folded": 0,
    }
    counts["folded"] = folded_nodes(model)
    onnx.save(weight_only_int8(model), str(target))
    return counts


def weight_only_int8(model: Any) -> Any:
    """`model` (an `onnx.ModelProto`, changed in place and returned) with each float initializer
    read as a weight (`WEIGHT_INPUTS`) of at least `MIN_WEIGHT_VALUES` values replaced by int8
    values, a float32 scale per output channel and the Cast and Mul that give the float back."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    axes: dict[str, set[int]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            axis = WEIGHT_INPUTS.get((node.op_type, index))
            if axis is None or name not in initializers:
                continue
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                axis = 0
            axes.setdefault(name, set()).add(axis)
    dequantize = []
    for name, name_axes in axes.items():
        values = numpy_helper.to_array(initializers[name])
        if values.dtype != np.float32 or values.size < MIN_WEIGHT_VALUES:
            continue
        # one scale per output channel; per tensor when consumers disagree on the channel axis
        axis = next(iter(name_axes)) if len(name_axes) == 1 else None
        quantized, scale = _symmetric_int8(values, axis)
        graph.initializer.remove(initializers[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantized, f"{name}_int8"),
                numpy_helper.from_array(scale, f"{name}_scale"),
            ]
        )
        # int8 -> float32 as Cast and Mul, not DequantizeLinear: onnxruntime folds constant
        # Cast / Mul at session start, but keeps a DequantizeLinear of a constant (for its
        # int8 kernels) and so dequantised the whole embedding table on every call
        dequantize += [
            helper.make_node("Cast", [f"{name}_int8"], [f"{name}_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name]),
        ]
    # the dequantised weights keep their names, so their consumers are unchanged
    for position, node in enumerate(dequantize):
        graph.node.insert(position, node)
    return model


def _symmetric_int8(values: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """int8 values in [-127, 127] and float32 scales that broadcast against them (`values` ~
    int8 * scale), one per index of `axis` (one in all when `axis` is None); an all-zero channel
    gets scale 1."""
    if axis is None:
        peak = np.abs(values).max(keepdims=True)
    else:
        others = tuple(d for d in range(values.ndim) if d != axis)
        peak = np.abs(values).max(axis=others, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    quantized = np.clip(np.rint(values / scale), -127, 127).astype(np.int8)
    return quantized, scale


def _quantize_embedding_4bit(model: Any, source: Path) -> Any:
    """The float embedding Gather of `model` as a 4-bit `GatherBlockQuantized`; the id table
    (an int64 Gather, when the vocabulary is pruned) is left alone."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    gathers = [n for n in model.graph.node if n.op_type == "Gather"]
    embedding = [n.name for n in gathers if n.input[0] in floats]
    tables = {n.input[0] for n in gathers if n.input[0] in floats}
    # a siamese student reads its one embedding table twice (once per text of a pair)
    if len(tables) != 1 or not all(embedding):
        raise BundleError(f"expected one float embedding Gather in {source}, found {embedding}")
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=4,
        block_size=EMBEDDING_BLOCK,
        is_symmetric=False,
        nodes_to_exclude=[n.name for n in gathers if n.name not in embedding],
        op_types_to_quantize=("Gather",),
        quant_axes=(("Gather", 1),),
    )
    # onnxruntime's quantisation tools log a line per tensor on the root logger at INFO.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        # an all-zero block (the padding row) has scale 0; onnxruntime picks its value with
        # np.where after dividing by it anyway, which numpy warns about
        with np.errstate(divide="ignore", invalid="ignore"):
            quantizer.process()
    finally:
        root.setLevel(level)
    return quantizer.model.model


def quantization_record(
    embedding_bits: int,
    float_model_bytes: int,
    gru_int8_nodes: int = 0,
    rnn_folded_nodes: int = 0,
    lstm_int8_nodes: int = 0,
) -> dict[str, Any]:
    """What the bundle config and the model card say about the quantisation; `gru_int8_nodes`,
    `lstm_int8_nodes`: the GRU / LSTM nodes (one per layer and direction) that `quantize_onnx`
    made compute in int8, `rnn_folded_nodes` those of either that look their input projection
    up."""
    method = (
        "weight-only int8 (symmetric, one scale per output channel); "
        "activations float32, so predictions do not depend on the batch"
    )
    cell = "GRU" if gru_int8_nodes else "LSTM" if lstm_int8_nodes else ""
    if cell:
        method = (
            f"int8 weights (symmetric, one scale per output channel); the {cell}'s matrix "
            "products in int8 (each token's input with its own scale, the state with a fixed "
            "one), the rest float32, so predictions do not depend on the batch"
        )
    if rnn_folded_nodes:
        method += f"; the first {cell} layer's input projection precomputed for every embedding row"
    if embedding_bits == 4:
        method += f"; embedding in 4-bit blocks of {EMBEDDING_BLOCK} (GatherBlockQuantized)"
    return {
        "method": method,
        "mode": f"weights+{cell.lower()}-int8" if cell else "weights",
        "embedding_bits": embedding_bits,
        "gru_int8_nodes": gru_int8_nodes,
        "rnn_folded_nodes": rnn_folded_nodes,
        "lstm_int8_nodes": lstm_int8_nodes,
        "float_model_bytes": float_model_bytes,
    }
