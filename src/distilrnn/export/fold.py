"""Folding a CNN student's first convolution into its embedding table, for the bundle.

Once a student is trained its embedding is a constant, and its first convolution is linear in
the embedded tokens: the layer's output at token t is `bias + sum_j W_j e(id[t + j - k // 2])`
for a kernel of `k` taps `W_j` `(channels, embedding_dim)`. Each term depends on one token id
only, so `table_j[v] = W_j e(v)` can be computed once per vocabulary row. The bundle then looks
up `k` precomputed rows per token (one table per tap, each read at its shifted position, with an
all-zero row for the pads and the sentence's ends) and adds them, instead of multiplying every
token's embedding by the kernel: the first layer costs no multiply-adds at inference, whatever
the embedding's width. The tables hold `k * channels` columns in all instead of
`embedding_dim`, so a bundle trades bytes for speed (`ExportSettings.fold_first_layer` turns it
off).

`FoldedStudent` computes exactly what the student computes in eval mode (the dropouts are
off), up to float rounding; tests/test_export_fold.py checks the exported graph against it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from distilrnn.student import RNNStudent
from distilrnn.student.encoders import ConvolutionalEncoder, valid_positions


def can_fold(student: RNNStudent) -> bool:
    """Whether `student`'s first layer folds into its table: a `cnn` encoder."""
    return isinstance(student.encoder, ConvolutionalEncoder)


class FoldedStudent(nn.Module):
    """`student` (a `cnn` one, in eval mode) with its first convolution precomputed per
    vocabulary row: same call, same logits. `config` is the student's, so `BundleModel` and the
    bundle's config read it as they read the student's."""

    def __init__(self, student: RNNStudent) -> None:
        super().__init__()
        if not can_fold(student):
            raise ValueError(f"only a cnn student folds, got encoder {student.config.encoder!r}")
        self.student = student.eval()
        self.config = student.config
        convolution = student.encoder.layers[0]
        weight = convolution.weight.detach()  # (channels, embedding_dim, k)
        channels, _, width = weight.shape
        self.width, self.channels = width, channels
        embedding = student.embedding.weight.detach()  # (vocab, embedding_dim)
        self.blank = embedding.size(0)  # the id of an all-zero row: pads and the ends read it
        with torch.no_grad():
            for tap in range(width):
                # table_j[v] = W_j e(v): what token v adds to the state j - k // 2 places away
                table = embedding @ weight[:, :, tap].T  # (vocab, channels)
                table = torch.cat([table, table.new_zeros(1, channels)])  # (vocab + 1, channels)
                self.register_buffer(f"table_{tap}", table.contiguous())
        self.register_buffer("bias", convolution.bias.detach().clone())

    def _states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """The encoder's `(batch, seq, channels)` states and the `(batch, seq)` bool mask."""
        mask = attention_mask != 0
        seq = input_ids.size(1)
        keep = valid_positions(mask.sum(dim=1), seq)  # (batch, seq)
        ids = torch.where(keep, input_ids, self.blank)  # pads read nothing, as in the student
        half = self.width // 2
        ids = F.pad(ids, (half, half), value=self.blank)  # (batch, seq + 2 half)
        # state t = bias + sum_j table_j[id at t + j - half]: one Gather per tap, no products
        states = self.bias + sum(
            getattr(self, f"table_{tap}")[ids[:, tap : tap + seq]] for tap in range(self.width)
        )
        encoder = self.student.encoder
        keep = keep.unsqueeze(-1).to(states.dtype)
        return encoder.layers_from(1, encoder.activation(states), keep), mask

    def _pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states, mask = self._states(input_ids, attention_mask)
        return self.student.pooling(states, mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """As `RNNStudent.forward` in eval mode: logits `(batch, num_labels)`."""
        pooled = self._pooled(input_ids, attention_mask)
        if pair_input_ids is None or pair_attention_mask is None:
            return self.student.head(pooled)
        pair_pooled = self._pooled(pair_input_ids, pair_attention_mask)
        return self.student.head(self.student.pair_features(pooled, pair_pooled))


def folding_record(model: FoldedStudent, vocab_rows: int) -> dict[str, Any]:
    """What the bundle config says about the fold."""
    return {
        "layer": "the first convolution, precomputed for every embedding row",
        "kernel_size": model.width,
        "table_columns": model.width * model.channels,
        "table_rows": vocab_rows,
    }
