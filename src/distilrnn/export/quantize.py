"""Compressing a bundle's ONNX graph: int8 dynamic quantisation of the weights (onnxruntime's
`quantize_dynamic`), optionally with the embedding in 4-bit blocks (`GatherBlockQuantized`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.errors import BundleError, ConfigError

logger = logging.getLogger(__name__)

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
        raise ConfigError(f"embedding_bits must be one of {EMBEDDING_BITS}, got {embedding_bits}")
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
        raise BundleError(f"expected one float embedding Gather in {source}, found {embedding}")
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


def quantization_record(embedding_bits: int, float_model_bytes: int) -> dict[str, Any]:
    """What the bundle config and the model card say about the quantisation."""
    method = "onnxruntime quantize_dynamic, int8 weights"
    if embedding_bits == 4:
        method += f"; embedding in 4-bit blocks of {EMBEDDING_BLOCK} (GatherBlockQuantized)"
    return {
        "method": method,
        "embedding_bits": embedding_bits,
        "float_model_bytes": float_model_bytes,
    }
