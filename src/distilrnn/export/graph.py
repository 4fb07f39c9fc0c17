"""The ONNX graphs of a bundle: a student behind an optional id table (`BundleModel`), and a
fine-tuned transformers teacher, so that the runtime times both the same way."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from distilrnn.runtime import INPUT_NAMES, OUTPUT_NAME, PAIR_INPUT_NAMES
from distilrnn.student import RNNStudent

ONNX_OPSET = 17
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    OUTPUT_NAME: {0: "batch"},
}
PAIR_DYNAMIC_AXES = {
    **DYNAMIC_AXES,
    "pair_input_ids": {0: "batch", 1: "pair_sequence"},
    "pair_attention_mask": {0: "batch", 1: "pair_sequence"},
}


class BundleModel(nn.Module):
    """The exported graph: token ids -> (id table) -> student -> logits `(batch, num_labels)`."""

    def __init__(self, student: RNNStudent, id_table: torch.Tensor | None = None) -> None:
        """`id_table` `(vocab_size,)` int64 maps a tokenizer id to its row in the student's
        (pruned) embedding; None when the embedding has a row for every id."""
        super().__init__()
        self.student = student.eval()
        self.register_buffer("id_table", id_table)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`input_ids`, `attention_mask` `(batch, seq)` int64, right-padded (and, for a siamese
        student, the second texts' `pair_input_ids`, `pair_attention_mask`) -> logits."""
        if self.id_table is not None:
            input_ids = self.id_table[input_ids]  # (batch, seq) rows of the pruned embedding
            if pair_input_ids is not None:
                pair_input_ids = self.id_table[pair_input_ids]
        if pair_input_ids is None:
            return self.student(input_ids, attention_mask)
        return self.student(input_ids, attention_mask, pair_input_ids, pair_attention_mask)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph's inputs: a siamese student's four, or `input_ids`, `attention_mask`."""
        return PAIR_INPUT_NAMES if self.student.config.is_siamese else INPUT_NAMES


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
    example: tuple[torch.Tensor, ...] = (input_ids, attention_mask)
    siamese = model.input_names == PAIR_INPUT_NAMES
    if siamese:  # the second text of another length, so the two sequence axes stay apart
        example += (
            torch.ones((2, 4), dtype=torch.long),
            torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]]),
        )
    with warnings.catch_warnings(), torch.no_grad():
        # the deprecation notice of the TorchScript exporter (chosen above, on purpose)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # No initial state is passed, so the ONNX LSTM/GRU start from zeros at any batch size;
        # the warning is about graphs that feed one in.
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        # nn.LSTM/nn.GRU check their input width and state shape in Python; both are fixed by
        # the architecture, so tracing them as constants is right.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # a folded convolution's shifted slices end at the (dynamic) sequence length, so they
        # are not constants to fold; the exporter says so under a misleading message
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            model.eval(),
            example,
            str(path),
            input_names=list(model.input_names),
            output_names=[OUTPUT_NAME],
            dynamic_axes=PAIR_DYNAMIC_AXES if siamese else DYNAMIC_AXES,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


class TeacherLogits(nn.Module):
    """A transformers sequence classifier as `(input_ids, attention_mask) -> logits`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_teacher_onnx(model: nn.Module, path: Path) -> None:
    """Write a transformers sequence classifier as ONNX with dynamic batch and sequence axes.

    The teacher goes through torch.export (`dynamo=True`), unlike the student: the TorchScript
    exporter traces transformers' attention-mask construction for the example's shape, and the
    graph's logits are off by ~1e-2 at other lengths; torch.export keeps them within ~1e-8.
    """
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    with warnings.catch_warnings(), torch.no_grad():
        # torch.export's own notices (axis renaming, a pytree deprecation inside torch)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        torch.onnx.export(
            TeacherLogits(model).eval(),
            example,
            str(path),
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
