"""The student: an embedding, a stacked (bi)directional LSTM/GRU, a pooling step and an MLP head.

The recurrent stack is built from single-layer, single-direction RNNs and never packs its input:
the forward direction runs on the right-padded batch as is (outputs at valid positions cannot see
the trailing pads) and the backward direction runs on each sequence reversed within its own length.
That keeps every row's logits independent of how much padding its batch has, and keeps the graph
free of `pack_padded_sequence`, which exports poorly to ONNX.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from distilrnn.atomic import write_atomically
from distilrnn.student.attention import AttentionPooling
from distilrnn.student.regularizers import LockedDropout, WeightDrop, embedded_dropout

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

RNN_TYPES = ("lstm", "gru")
POOLINGS = ("attention", "max", "mean", "last")
MAX_LAYERS = 4
_DROPOUT_FIELDS = (
    "embedding_dropout",
    "input_dropout",
    "hidden_dropout",
    "weight_dropout",
    "head_dropout",
)


@dataclass
class StudentConfig:
    """Architecture and regularisation of an `RNNStudent`; saved as `config.json` next to it."""

    vocab_size: int
    embedding_dim: int
    num_labels: int = 2
    rnn: str = "lstm"  # "lstm" | "gru"
    num_layers: int = 1  # 1..4
    hidden_size: int = 256  # per direction
    bidirectional: bool = True
    pooling: str = "attention"  # "attention" | "max" | "mean" | "last"
    head_hidden_size: int = 256  # MLP head hidden width; 0 = a single linear layer
    padding_idx: int = 0
    embedding_dropout: float = 0.1  # whole-word dropout on embedding rows (Merity et al. 2017)
    input_dropout: float = 0.25  # locked dropout on the RNN input (Merity et al. 2017)
    hidden_dropout: float = 0.25  # locked dropout between RNN layers (Merity et al. 2017)
    weight_dropout: float = 0.3  # DropConnect on hidden-to-hidden weights (Merity et al. 2017)
    head_dropout: float = 0.1
    freeze_embeddings: bool = True

    def __post_init__(self) -> None:
        _check_int("vocab_size", self.vocab_size, minimum=1)
        _check_int("embedding_dim", self.embedding_dim, minimum=1)
        _check_int("num_labels", self.num_labels, minimum=1)
        _check_choice("rnn", self.rnn, RNN_TYPES)
        _check_int("num_layers", self.num_layers, minimum=1, maximum=MAX_LAYERS)
        _check_int("hidden_size", self.hidden_size, minimum=1)
        _check_bool("bidirectional", self.bidirectional)
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_int("head_hidden_size", self.head_hidden_size, minimum=0)
        _check_int("padding_idx", self.padding_idx, minimum=0, maximum=self.vocab_size - 1)
        for name in _DROPOUT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
            setattr(self, name, float(value))
        _check_bool("freeze_embeddings", self.freeze_embeddings)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of the pooled sentence vector: `hidden_size * num_directions`."""
        return self.hidden_size * self.num_directions

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudentConfig:
        """Build a config from `to_dict` output; unknown or missing required keys raise."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown StudentConfig keys: {unknown}; allowed: {sorted(fields)}")
        missing = sorted(
            name
            for name, field in fields.items()
            if name not in values
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ValueError(f"missing required StudentConfig keys: {missing}")
        return cls(**values)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int {allowed}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {allowed}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def reverse_within_length(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each right-padded sequence within its own length, leaving the padding in place.

    Applying it twice gives back `inputs`, so the same call undoes it.

    Args:
        inputs: `(batch, seq, features)`.
        lengths: `(batch,)` int64 number of valid tokens per row, each >= 1.

    Returns:
        `(batch, seq, features)` where `out[b, t] = inputs[b, lengths[b] - 1 - t]` for
        `t < lengths[b]` and `out[b, t] = inputs[b, t]` otherwise.
    """
    positions = torch.arange(inputs.size(1), device=inputs.device).unsqueeze(0)  # (1, seq)
    lengths = lengths.unsqueeze(1)  # (batch, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (batch, seq)
    index = index.unsqueeze(-1).expand(-1, -1, inputs.size(2))  # (batch, seq, features)
    return inputs.gather(1, index)


class RecurrentLayer(nn.Module):
    """One RNN layer: a forward RNN and, if bidirectional, a backward one, each a single-layer
    `nn.LSTM`/`nn.GRU` with DropConnect on its hidden-to-hidden weights (Merity et al. 2017)."""

    def __init__(
        self,
        rnn: str,
        input_size: int,
        hidden_size: int,
        bidirectional: bool,
        weight_dropout: float,
    ) -> None:
        super().__init__()
        rnn_class = nn.LSTM if rnn == "lstm" else nn.GRU

        def make_direction() -> WeightDrop:
            return WeightDrop(rnn_class(input_size, hidden_size, batch_first=True), weight_dropout)

        self.forward_rnn = make_direction()
        self.backward_rnn = make_direction() if bidirectional else None

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`inputs` `(batch, seq, input_size)`, `lengths` `(batch,)` -> `(batch, seq, hidden *
        num_directions)`, forward states first. States at padded positions are meaningless."""
        forward_states, _ = self.forward_rnn(inputs)  # (batch, seq, hidden)
        if self.backward_rnn is None:
            return forward_states
        reversed_inputs = reverse_within_length(inputs, lengths)
        backward_states, _ = self.backward_rnn(reversed_inputs)  # (batch, seq, hidden)
        backward_states = reverse_within_length(backward_states, lengths)
        return torch.cat([forward_states, backward_states], dim=-1)  # (batch, seq, 2 * hidden)


class RecurrentEncoder(nn.Module):
    """A stack of `RecurrentLayer`s with locked dropout between layers (Merity et al. 2017)."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        input_sizes = [config.embedding_dim] + [config.output_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            RecurrentLayer(
                config.rnn,
                input_size,
                config.hidden_size,
                config.bidirectional,
                config.weight_dropout,
            )
            for input_size in input_sizes
        )
        self.hidden_dropout = LockedDropout(config.hidden_dropout)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`inputs` `(batch, seq, embedding_dim)` -> `(batch, seq, output_size)`."""
        hidden_states = inputs
        for index, layer in enumerate(self.layers):
            if index > 0:
                hidden_states = self.hidden_dropout(hidden_states)
            hidden_states = layer(hidden_states, lengths)  # (batch, seq, output_size)
        return hidden_states


class ClassifierHead(nn.Module):
    """Pooled vector -> dropout -> Linear -> ReLU -> dropout -> Linear(num_labels), or
    dropout -> Linear(num_labels) when `hidden_size` is 0."""

    def __init__(self, input_size: int, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(input_size, hidden_size) if hidden_size > 0 else None
        self.activation = nn.ReLU()
        self.output = nn.Linear(hidden_size if hidden_size > 0 else input_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """`pooled` `(batch, input_size)` -> logits `(batch, num_labels)`."""
        features = self.dropout(pooled)
        if self.hidden is not None:
            features = self.dropout(self.activation(self.hidden(features)))
        return self.output(features)


class RNNStudent(nn.Module):
    """Embedding -> locked input dropout -> stacked (bi)RNN -> pooling -> MLP head -> logits."""

    def __init__(self, config: StudentConfig, embedding_weight: torch.Tensor | None = None) -> None:
        """Build the student.

        Args:
            config: the architecture.
            embedding_weight: `(vocab_size, embedding_dim)` initial embedding, copied in (e.g. the
                teacher's `get_input_embeddings().weight`); None keeps a random initialisation.
        """
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.padding_idx
        )
        if embedding_weight is not None:
            expected = (config.vocab_size, config.embedding_dim)
            if tuple(embedding_weight.shape) != expected:
                raise ValueError(
                    f"embedding_weight has shape {tuple(embedding_weight.shape)}, "
                    f"expected (vocab_size, embedding_dim) = {expected}"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(embedding_weight.detach())
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.input_dropout = LockedDropout(config.input_dropout)
        self.encoder = RecurrentEncoder(config)
        self.attention = (
            AttentionPooling(config.output_size) if config.pooling == "attention" else None
        )
        self.head = ClassifierHead(
            config.output_size, config.head_hidden_size, config.num_labels, config.head_dropout
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Classify a right-padded batch.

        Args:
            input_ids: `(batch, seq)` int64 token ids.
            attention_mask: `(batch, seq)` int or bool, nonzero at valid tokens; right-padded
                (valid tokens first) with at least one valid token per row.
            return_attention: also return the `(batch, seq)` attention weights; only with
                `pooling="attention"`.

        Returns:
            logits `(batch, num_labels)`, or `(logits, attention_weights)`.
        """
        if return_attention and self.attention is None:
            raise ValueError(
                f"return_attention needs pooling='attention', got {self.config.pooling!r}"
            )
        mask = attention_mask != 0  # (batch, seq)
        lengths = mask.sum(dim=1)  # (batch,)
        embedded = embedded_dropout(
            self.embedding, input_ids, self.config.embedding_dropout, self.training
        )  # (batch, seq, embedding_dim)
        embedded = self.input_dropout(embedded)
        hidden_states = self.encoder(embedded, lengths)  # (batch, seq, output_size)
        attention_weights = None
        if self.attention is not None:
            pooled, attention_weights = self.attention(hidden_states, mask)
        else:
            pooled = self._pool(hidden_states, mask, lengths)  # (batch, output_size)
        logits = self.head(pooled)  # (batch, num_labels)
        if return_attention:
            return logits, attention_weights
        return logits

    def _pool(
        self, hidden_states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Max, mean or last-state pooling over valid positions: `(batch, seq, output_size)` ->
        `(batch, output_size)`."""
        pooling = self.config.pooling
        if pooling == "max":
            lowest = torch.finfo(hidden_states.dtype).min
            return hidden_states.masked_fill(~mask.unsqueeze(-1), lowest).amax(dim=1)
        if pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden_states.dtype)  # (batch, seq, 1)
            total = (hidden_states * weights).sum(dim=1)  # (batch, output_size)
            return total / lengths.unsqueeze(-1).to(hidden_states.dtype)
        # "last": the forward state at the last valid token; the backward state at token 0,
        # which is where the backward direction has read the whole sentence.
        hidden_size = self.config.hidden_size
        last_index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden_size)  # (batch, 1, hidden)
        forward_last = hidden_states[..., :hidden_size].gather(1, last_index).squeeze(1)
        if not self.config.bidirectional:
            return forward_last  # (batch, hidden)
        backward_first = hidden_states[:, 0, hidden_size:]  # (batch, hidden)
        return torch.cat([forward_last, backward_first], dim=-1)  # (batch, 2 * hidden)

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts: `total`, `trainable` (requires_grad) and `embedding`."""
        parameters = list(self.parameters())
        return {
            "total": sum(p.numel() for p in parameters),
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
            "embedding": self.embedding.weight.numel(),
        }

    def save(self, directory: str | Path) -> None:
        """Write `model.safetensors` and `config.json` into `directory`, each atomically (a
        temporary name, then `os.replace`); the config goes last."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        weights_path = directory / WEIGHTS_NAME
        config_path = directory / CONFIG_NAME
        write_atomically(weights_path, lambda tmp: save_file(state, str(tmp)))
        config_text = json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n"
        write_atomically(config_path, lambda tmp: tmp.write_text(config_text, encoding="utf-8"))
        logger.info(
            "saved student (%d parameters) to %s", self.parameter_counts()["total"], directory
        )

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> RNNStudent:
        """Load a student written by `save`, in eval mode on `device`.

        Raises:
            FileNotFoundError: `config.json` or `model.safetensors` is missing.
            ValueError: a file is corrupt or does not match the config; the message names it.
        """
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        weights_path = directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"student checkpoint file not found: {path}")
        try:
            config = StudentConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(f"invalid student config {config_path}: {error}") from error
        try:
            state = load_file(str(weights_path), device="cpu")
        except Exception as error:  # safetensors raises its own error types on corrupt files
            raise ValueError(f"could not read student weights {weights_path}: {error}") from error
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"student weights {weights_path} do not match {config_path}: {error}"
            ) from error
        return model.to(device).eval()
