"""AWD-LSTM regularisers for the student RNN (Merity et al. 2017, "Regularizing and Optimizing
LSTM Language Models", arXiv:1708.02182).

Each regulariser is one small unit that is active only in training mode and is the identity in
eval mode, so the exported (eval) graph holds none of them.
"""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

logger = logging.getLogger(__name__)

# cuDNN warns when an RNN runs on weights outside its flattened buffer, which is exactly what
# DropConnect does at every training step; the warning carries no information here.
_NON_CONTIGUOUS_RNN_WEIGHTS = "RNN module weights are not part of single contiguous chunk"


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


class LockedDropout(nn.Module):
    """Variational ("locked") dropout: one mask per sequence, shared over all time steps.

    Merity et al. 2017, section 4.2 (after Gal & Ghahramani 2016). Input and output are
    `(batch, seq, features)`; the mask is `(batch, 1, features)`. Identity in eval mode.
    """

    def __init__(self, dropout: float) -> None:
        super().__init__()
        _check_probability("dropout", dropout)
        self.dropout = dropout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` `(batch, seq, features)` -> same shape, rescaled by `1 / (1 - dropout)`."""
        if not self.training or self.dropout == 0.0:
            return inputs
        keep = 1.0 - self.dropout
        mask = inputs.new_empty(inputs.size(0), 1, inputs.size(2)).bernoulli_(keep) / keep
        return inputs * mask  # (batch, seq, features)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


def embedded_dropout(
    embedding: nn.Embedding, input_ids: torch.Tensor, dropout: float, training: bool
) -> torch.Tensor:
    """Look up `input_ids` with whole-word dropout on the embedding matrix rows.

    Merity et al. 2017, section 4.3 (after Gal & Ghahramani 2016): each word type is dropped
    for the whole batch (every occurrence of it becomes the zero vector) and the kept rows are
    rescaled by `1 / (1 - dropout)`. The mask is drawn per vocabulary row but applied after the
    lookup, which equals masking the `(vocab_size, embedding_dim)` matrix without materialising
    a masked copy of it; it works whether or not the embedding is frozen.

    Args:
        embedding: the embedding table, weight `(vocab_size, embedding_dim)`.
        input_ids: `(batch, seq)` token ids.
        dropout: probability of dropping a word type, in [0, 1).
        training: apply the dropout only when True.

    Returns:
        `(batch, seq, embedding_dim)` embedded tokens.
    """
    _check_probability("dropout", dropout)
    embedded = embedding(input_ids)  # (batch, seq, embedding_dim)
    if not training or dropout == 0.0:
        return embedded
    keep = 1.0 - dropout
    weight = embedding.weight
    row_mask = weight.new_empty(weight.size(0)).bernoulli_(keep) / keep  # (vocab_size,)
    return embedded * row_mask[input_ids].unsqueeze(-1)  # (batch, seq, embedding_dim)


class WeightDrop(nn.Module):
    """DropConnect on the hidden-to-hidden weights of a single-layer RNN (Merity et al. 2017,
    section 4.1, after Wan et al. 2013).

    At every training forward a fresh dropout mask is applied to `weight_hh_l0` and the wrapped
    `nn.LSTM`/`nn.GRU` runs with the dropped matrix via `torch.func.functional_call`; the
    parameter itself is never replaced, so `state_dict` names (`module.weight_hh_l0`, ...) stay
    those of the plain RNN and the eval path is the plain RNN call.
    """

    def __init__(
        self, module: nn.RNNBase, dropout: float, weight_names: tuple[str, ...] = ("weight_hh_l0",)
    ) -> None:
        super().__init__()
        _check_probability("dropout", dropout)
        for name in weight_names:
            if not isinstance(getattr(module, name, None), nn.Parameter):
                raise ValueError(f"{type(module).__name__} has no weight named {name!r}")
        self.module = module
        self.dropout = dropout
        self.weight_names = weight_names

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Call the wrapped RNN on `args` (e.g. `(batch, seq, input_size)` inputs)."""
        if not self.training or self.dropout == 0.0:
            return self.module(*args)
        dropped = {
            name: F.dropout(getattr(self.module, name), p=self.dropout, training=True)
            for name in self.weight_names
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NON_CONTIGUOUS_RNN_WEIGHTS)
            return functional_call(self.module, dropped, args)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, weight_names={self.weight_names}"
