"""Attention pooling over RNN states, as in DeepMoji (Felbo et al. 2017, "Using millions of emoji
occurrences to learn any-domain representations for detecting sentiment, emotion and sarcasm",
EMNLP, arXiv:1708.00524).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

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
        self, hidden_states: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool `hidden_states` over time.

        Args:
            hidden_states: `(batch, seq, hidden)` RNN outputs.
            mask: `(batch, seq)` bool, True at valid tokens; every row has at least one.

        Returns:
            `(pooled, weights)`: `(batch, hidden)` sentence vectors and `(batch, seq)` attention
            weights that sum to 1 over the valid tokens of each row.
        """
        scores = hidden_states @ self.attention_vector  # (batch, seq)
        # The dtype's lowest finite value rather than -inf keeps softmax NaN-free in any dtype.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)  # (batch, seq)
        pooled = (weights.unsqueeze(-1) * hidden_states).sum(dim=1)  # (batch, hidden)
        return pooled, weights
