"""Students without recurrence, for the fast end of the speed / accuracy frontier: what reads the
embedded tokens before the pooling when `encoder` is `bag` or `cnn` (the `rnn` encoder,
`RecurrentEncoder`, lives in `distilrnn.student.model`).

Every encoder is called as `encoder(inputs, lengths) -> hidden_states`: `inputs` `(batch, seq,
embedding_dim)` right-padded embedded tokens, `lengths` `(batch,)` int64 valid tokens per row (each
>= 1), `hidden_states` `(batch, seq, config.output_size)`, meaningless at padded positions (the
pooling masks them). A row's states at valid positions never depend on how much padding its
batch has, so neither do its logits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from distilrnn.student.regularizers import LockedDropout

if TYPE_CHECKING:
    from distilrnn.student.model import StudentConfig

logger = logging.getLogger(__name__)


def valid_positions(lengths: torch.Tensor, seq: int) -> torch.Tensor:
    """`(batch, seq)` bool, True at the first `lengths[b]` positions of row `b`."""
    positions = torch.arange(seq, device=lengths.device).unsqueeze(0)  # (1, seq)
    return positions < lengths.unsqueeze(1)  # (batch, seq)


class BagEncoder(nn.Module):
    """No encoder at all: the pooling reads the token embeddings themselves. With `mean`
    pooling and the MLP head this is the deep averaging network of Iyyer et al. 2015 ("Deep
    Unordered Composition Rivals Syntactic Methods for Text Classification", ACL); with
    `attention` pooling, a learned weighting of the words. Word order is lost; what is left
    costs one lookup per token and the head."""

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, embedding_dim)` -> the same tensor."""
        return inputs


class ConvolutionalEncoder(nn.Module):
    """`num_layers` 1-D convolutions of `hidden_size` channels over the token axis, each of
    `kernel_size` tokens centred on its token and followed by ReLU (Kim 2014, "Convolutional
    Neural Networks for Sentence Classification", EMNLP, stacked as in Zhang et al. 2015), with
    locked dropout between layers (Merity et al. 2017).

    The padded positions are zeroed before every convolution, so a valid position reads exactly
    what the convolution's own zero padding gives it when its sentence comes alone: states at
    valid positions do not depend on the batch's padding.
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        input_sizes = [config.embedding_dim] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Conv1d(
                input_size,
                config.hidden_size,
                config.kernel_size,
                padding=config.kernel_size // 2,
            )
            for input_size in input_sizes
        )
        self.activation = nn.ReLU()
        self.hidden_dropout = LockedDropout(config.hidden_dropout)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`inputs` `(batch, seq, embedding_dim)` -> `(batch, seq, hidden_size)`."""
        keep = valid_positions(lengths, inputs.size(1)).unsqueeze(-1).to(inputs.dtype)
        return self.layers_from(0, inputs, keep)

    def layers_from(
        self, first: int, hidden_states: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """Layers `first`, `first + 1`, ... on `hidden_states` `(batch, seq, features)`, `keep`
        `(batch, seq, 1)` 1.0 at valid positions; a bundle whose first layer is folded into its
        table (`distilrnn.export.fold`) starts at 1."""
        for index in range(first, len(self.layers)):
            if index > 0:
                hidden_states = self.hidden_dropout(hidden_states)
            channels_first = (hidden_states * keep).transpose(1, 2)  # (batch, features, seq)
            hidden_states = self.activation(self.layers[index](channels_first)).transpose(1, 2)
        # Zero the states at the pads too: besides tidiness, this keeps the last Transpose from
        # feeding the attention pooling's MatMul directly. onnxruntime 1.32's optimiser fuses a
        # Transpose into a following 3-D x 1-D MatMul wrongly (a two-node graph is off by ~8
        # where the unoptimised one is exact); tests/test_student_encoders.py checks the
        # exported graph against the eager student.
        return hidden_states * keep  # (batch, seq, hidden_size)
