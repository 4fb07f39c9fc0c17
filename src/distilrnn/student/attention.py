"""Pooling of RNN states into one sentence vector: DeepMoji attention (Felbo et al. 2017, "Using
millions of emoji occurrences to learn any-domain representations for detecting sentiment, emotion
and sarcasm", EMNLP, arXiv:1708.00524), max, mean and last state.

Every pooling is an `nn.Module` called as `pooling(hidden_states, mask) -> pooled` with
`hidden_states` `(batch, seq, output_size)`, `mask` `(batch, seq)` bool (True at valid tokens, right
padded, at least one per row) and `pooled` `(batch, output_size)`. Each is registered in
`distilrnn.registry.POOLINGS` by a factory `(StudentConfig) -> nn.Module` (the `*_pooling`
functions below); `distilrnn.student.register_pooling` adds one of your own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from distilrnn.student.model import StudentConfig

logger = logging.getLogger(__name__)


class AttentionPooling(nn.Module):
    """DeepMoji attention (Felbo et al. 2017, section 3.2): one learned vector `w` scores each
    time step, `score_t = h_t · w`; a softmax over the valid time steps gives the weights and the
    sentence vector is the weighted sum of the states. Padded positions get weight exactly 0.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.attention_vector = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # DeepMoji initialises the attention vector from N(0, 0.05^2).
        nn.init.normal_(self.attention_vector, mean=0.0, std=0.05)

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Pool `hidden_states` over time.

        Args:
            hidden_states: `(batch, seq, hidden)` RNN outputs.
            mask: `(batch, seq)` bool, True at valid tokens; every row has at least one.
            return_weights: also return the attention weights.

        Returns:
            `(batch, hidden)` sentence vectors, or `(pooled, weights)` with `(batch, seq)`
            attention weights that sum to 1 over the valid tokens of each row.
        """
        scores = hidden_states @ self.attention_vector  # (batch, seq)
        # The dtype's lowest finite value rather than -inf keeps softmax NaN-free in any dtype.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)  # (batch, seq)
        # one batched product reads the states once (a product then a sum writes them again)
        pooled = (weights.unsqueeze(1) @ hidden_states).squeeze(1)  # (batch, hidden)
        return (pooled, weights) if return_weights else pooled


class MaxPooling(nn.Module):
    """The elementwise maximum over the valid time steps."""

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, hidden)`, `(batch, seq)` -> `(batch, hidden)`."""
        lowest = torch.finfo(hidden_states.dtype).min
        return hidden_states.masked_fill(~mask.unsqueeze(-1), lowest).amax(dim=1)


class MeanPooling(nn.Module):
    """The mean over the valid time steps."""

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, hidden)`, `(batch, seq)` -> `(batch, hidden)`."""
        weights = mask.unsqueeze(1).to(hidden_states.dtype)  # (batch, 1, seq)
        total = (weights @ hidden_states).squeeze(1)  # (batch, hidden): one pass over the states
        return total / mask.sum(dim=1).unsqueeze(-1).to(hidden_states.dtype)


class LastStatePooling(nn.Module):
    """The forward state at the last valid token and, if bidirectional, the backward state at
    token 0, which is where the backward direction has read the whole sentence."""

    def __init__(self, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, hidden * directions)`, `(batch, seq)` -> `(batch, hidden * directions)`,
        forward states first."""
        hidden_size = self.hidden_size
        lengths = mask.sum(dim=1)  # (batch,)
        last_index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden_size)  # (batch, 1, hidden)
        forward_last = hidden_states[..., :hidden_size].gather(1, last_index).squeeze(1)
        if not self.bidirectional:
            return forward_last  # (batch, hidden)
        backward_first = hidden_states[:, 0, hidden_size:]  # (batch, hidden)
        return torch.cat([forward_last, backward_first], dim=-1)  # (batch, 2 * hidden)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, bidirectional={self.bidirectional}"


# The factories `distilrnn.registry.POOLINGS` names for the built-in poolings.


def attention_pooling(config: StudentConfig) -> AttentionPooling:
    return AttentionPooling(config.output_size)


def max_pooling(config: StudentConfig) -> MaxPooling:
    return MaxPooling()


def mean_pooling(config: StudentConfig) -> MeanPooling:
    return MeanPooling()


def last_pooling(config: StudentConfig) -> LastStatePooling:
    return LastStatePooling(config.hidden_size, config.bidirectional)
