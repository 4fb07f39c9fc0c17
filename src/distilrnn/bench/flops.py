"""Multiply-adds per sentence, for students and BERT-like teachers: what each model asks of the
machine, so a measured latency can be set against the machine's peak.

One MAC is one multiply-add of a matrix product, a recurrent gate's input or state product, a
convolution tap, or a pooling's weighted sum; FLOPs are 2 x MACs (`torch.utils.flop_counter`'s
convention). An embedding lookup counts 0. Elementwise work (activations, gate and cell-state
products, biases, softmax, layer norms, masks, a siamese head's `h1 * h2`) is not counted: it is
O(width) per token against the O(width²) of the products. Counts are for one input of `length`
tokens, padded to nothing; a batch padded to its longest input costs that length for each row.

Imports no torch, except to read the gate count of a registered recurrent cell.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distilrnn.student.model import StudentConfig

logger = logging.getLogger(__name__)

GATES = {"lstm": 4, "gru": 3}  # input and state products per step: one per gate
BUILTIN_POOLINGS = ("attention", "mean", "max", "last")


def cell_gates(rnn: str, hidden_size: int) -> int:
    """Gates of a recurrent cell: 4 (LSTM), 3 (GRU), or for a registered cell its input weight's
    rows over `hidden_size` (`weight_ih_l0` is `(gates * hidden_size, input_size)`)."""
    if rnn in GATES:
        return GATES[rnn]
    from distilrnn.registry import CELLS

    cell = CELLS.get(rnn)(1, hidden_size, batch_first=True)
    weight = getattr(cell, "weight_ih_l0", None)
    if weight is None or weight.shape[0] % hidden_size:
        raise ValueError(f"cell {rnn!r} has no weight_ih_l0 of (gates * {hidden_size}) rows")
    return weight.shape[0] // hidden_size


def encoder_macs(config: StudentConfig, length: int) -> int:
    """The encoder's MACs for `length` tokens: a recurrent layer `length x gates x hidden x
    (input + hidden)` per direction; a convolution `length x channels x input x kernel_size`
    (the taps that fall on the zero padding at the ends included, as a Conv kernel computes
    them); a bag 0."""
    if config.encoder == "bag":
        return 0
    if config.encoder == "cnn":
        inputs = [config.embedding_dim] + [config.hidden_size] * (config.num_layers - 1)
        return sum(length * config.hidden_size * size * config.kernel_size for size in inputs)
    gates = cell_gates(config.rnn, config.hidden_size)
    inputs = [config.embedding_dim] + [config.output_size] * (config.num_layers - 1)
    per_direction = sum(
        length * gates * config.hidden_size * (size + config.hidden_size) for size in inputs
    )
    return per_direction * config.num_directions


def folded_macs(config: StudentConfig, length: int, directions: int = 1) -> int:
    """The MACs a bundle saves by looking the first layer's map of each token's embedding up
    instead of computing it (`distilrnn.export.fold`, and `gru_int8`'s folded input
    projection, one per forward direction node): a convolution's whole first layer, or a
    recurrent layer's input product `length x gates x hidden x embedding_dim` per direction."""
    if config.encoder == "cnn":
        return length * config.hidden_size * config.embedding_dim * config.kernel_size
    if config.encoder == "rnn":
        gates = cell_gates(config.rnn, config.hidden_size)
        return directions * length * gates * config.hidden_size * config.embedding_dim
    return 0


def pooling_macs(config: StudentConfig, length: int) -> int:
    """The pooling's MACs for `length` states of `output_size`: attention scores each state
    and sums them weighted (2 per value), mean sums them (1 per value), max and last compare or
    pick (0). A registered pooling counts 0: its cost is not known here."""
    values = length * config.output_size
    if config.pooling not in BUILTIN_POOLINGS:
        logger.debug("pooling %r is not counted: its cost is unknown", config.pooling)
    return {"attention": 2 * values, "mean": values}.get(config.pooling, 0)


def head_macs(config: StudentConfig) -> int:
    """The MLP head's MACs: `input x hidden + hidden x num_labels`, or `input x num_labels`
    without a hidden layer (`input`: the pooled vector, 4x it for a siamese student)."""
    width = config.head_input_size
    if config.head_hidden_size:
        return width * config.head_hidden_size + config.head_hidden_size * config.num_labels
    return width * config.num_labels


def student_macs(config: StudentConfig, length: int, pair_length: int | None = None) -> int:
    """Multiply-adds of one student forward pass on one input.

    Args:
        config: the student's architecture.
        length: tokens of the input (a joint pair student: of the pair as one sequence; a
            siamese student: of the first text).
        pair_length: a siamese student's second text's tokens (default: `length`); only for
            siamese students.

    Returns:
        encoder + pooling over each text, plus the head.
    """
    if length < 1 or (pair_length is not None and pair_length < 1):
        raise ValueError(f"lengths must be >= 1, got {length} and {pair_length}")
    texts = [length]
    if config.is_siamese:
        texts.append(length if pair_length is None else pair_length)
    elif pair_length is not None:
        raise ValueError(
            f"pair_length is for siamese students; this one ({config.pair_design!r}) reads one "
            "sequence of `length` tokens"
        )
    encoded = sum(encoder_macs(config, n) + pooling_macs(config, n) for n in texts)
    return encoded + head_macs(config)


def _first(hf_config: Any, *names: str) -> int:
    """The first of `names` that `hf_config` has (BERT and DistilBERT name sizes apart)."""
    for name in names:
        value = getattr(hf_config, name, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(hf_config).__name__} has none of {', '.join(names)}")


def teacher_macs(hf_config: Any, length: int) -> int:
    """Multiply-adds of a BERT-like sequence classifier on one input of `length` tokens.

    Per layer: the query, key, value and output projections (`4 x length x hidden²`), the
    attention scores and the weighted sum of values (`2 x length² x hidden`, whatever the
    heads), the feed-forward (`2 x length x hidden x intermediate`); then the classifier: the
    pooler / pre-classifier on the first token (`hidden²`) and the output layer
    (`hidden x num_labels`). An ALBERT-style factorised embedding adds its projection
    (`length x embedding_size x hidden`). Sizes come from a transformers config (BERT's
    `hidden_size`, `num_hidden_layers`, `intermediate_size`, or DistilBERT's `dim`,
    `n_layers`, `hidden_dim`).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    hidden = _first(hf_config, "hidden_size", "dim")
    layers = _first(hf_config, "num_hidden_layers", "n_layers")
    intermediate = _first(hf_config, "intermediate_size", "hidden_dim")
    num_labels = int(getattr(hf_config, "num_labels", 2))
    per_layer = 4 * length * hidden**2 + 2 * length**2 * hidden + 2 * length * hidden * intermediate
    embedding_size = getattr(hf_config, "embedding_size", None) or hidden
    projection = length * embedding_size * hidden if embedding_size != hidden else 0
    return projection + layers * per_layer + hidden**2 + hidden * num_labels
