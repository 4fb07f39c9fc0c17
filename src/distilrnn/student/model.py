"""The student: an embedding, an encoder, a pooling step and an MLP head.

The encoder (`StudentConfig.encoder`) is a stacked (bi)directional LSTM/GRU (`rnn`, here), or one
without recurrence from `distilrnn.student.encoders`: none at all (`bag`: the pooling reads the
embeddings) or stacked 1-D convolutions (`cnn`). Cells and poolings are chosen by name from
`distilrnn.registry.CELLS` and `POOLINGS`; `register_cell` and `register_pooling` add your own,
which configs can then name.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from distilrnn.atomic import write_atomically
from distilrnn.errors import ConfigError, MissingFileError, StudentError
from distilrnn.inputs import PAIR_DESIGNS, SINGLE
from distilrnn.metrics import REGRESSION, TASK_TYPES
from distilrnn.registry import CELLS, POOLINGS
from distilrnn.student.attention import AttentionPooling
from distilrnn.student.encoders import BagEncoder, ConvolutionalEncoder
from distilrnn.student.pretrained import PretrainedMixin
from distilrnn.student.regularizers import LockedDropout, WeightDrop, embedded_dropout
from distilrnn.validation import (
    DROPOUT_FIELDS,
    boolean_check,
    check_architecture,
    check_fields,
    integer_check,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

PoolingFactory = Callable[["StudentConfig"], nn.Module]


def register_pooling(
    name: str, factory: PoolingFactory | None = None, *, replace: bool = False
) -> PoolingFactory:
    """Make `factory` available as `pooling = name` (or, without `factory`, a decorator).

    `factory(config: StudentConfig)` builds an `nn.Module` called as `module(hidden_states,
    mask) -> pooled`: `hidden_states` `(batch, seq, config.output_size)`, `mask` `(batch, seq)`
    bool (True at valid tokens, right-padded), `pooled` `(batch, config.output_size)`. Its
    parameters are saved as `attention.*`. Register before the config is built.
    """
    return POOLINGS.register(name, factory, replace=replace)


def register_cell(
    name: str, rnn_class: type[nn.Module] | None = None, *, replace: bool = False
) -> type[nn.Module]:
    """Make `rnn_class` available as `rnn = name` (or, without it, a decorator).

    `rnn_class(input_size, hidden_size, batch_first=True)` is a single-layer `nn.LSTM`/`nn.GRU`-
    like module returning `(outputs (batch, seq, hidden_size), state)`, with its
    hidden-to-hidden weights in `weight_hh_l0` (DropConnect) and its input weights in
    `weight_ih_l0` (embedding factorisation). Register before the config is built.
    """
    return CELLS.register(name, rnn_class, replace=replace)


@dataclass
class StudentConfig:
    """Architecture and regularisation of an `RNNStudent`; saved as `config.json` next to it.
    Fields an encoder does not read keep their defaults (`distilrnn.validation.UNUSED_BY_ENCODER`).
    """

    vocab_size: int
    embedding_dim: int
    num_labels: int = 2
    encoder: str = "rnn"  # "rnn" | "bag" (no encoder) | "cnn" (`distilrnn.student.encoders`)
    rnn: str = "lstm"  # a `distilrnn.registry.CELLS` name: "lstm" | "gru" | registered
    num_layers: int = 1  # 1..4
    hidden_size: int = 256  # per direction (rnn), channels (cnn)
    bidirectional: bool = True
    kernel_size: int = 3  # cnn: tokens each convolution reads, odd
    pooling: str = "attention"  # a `POOLINGS` name: "attention" | "max" | "mean" | "last" | ...
    head_hidden_size: int = 256  # MLP head hidden width; 0 = a single linear layer
    padding_idx: int = 0
    embedding_dropout: float = 0.1  # whole-word dropout on embedding rows (Merity et al. 2017)
    input_dropout: float = 0.25  # locked dropout on the RNN input (Merity et al. 2017)
    hidden_dropout: float = 0.25  # locked dropout between RNN layers (Merity et al. 2017)
    weight_dropout: float = 0.3  # DropConnect on hidden-to-hidden weights (Merity et al. 2017)
    head_dropout: float = 0.1
    freeze_embeddings: bool = True
    # how it reads a pair of texts: "none" (single texts), "joint" (the pair as one sequence,
    # as the cross-encoder teacher) or "siamese" (each text through the shared encoder)
    pair_design: str = SINGLE
    task_type: str = "classification"  # or "regression": one output, the predicted score

    def __post_init__(self) -> None:
        """Raises `ConfigError` naming the first bad field as `StudentConfig.<field>`."""
        sizes = {name: integer_check(1) for name in ("vocab_size", "embedding_dim", "num_labels")}
        check_fields(self, sizes, "StudentConfig.")
        check_architecture(self, "StudentConfig.")  # the same checks as `student.*` settings
        model_only = {
            "padding_idx": integer_check(0, self.vocab_size - 1),
            "freeze_embeddings": boolean_check,
        }
        check_fields(self, model_only, "StudentConfig.")
        for name in DROPOUT_FIELDS:
            setattr(self, name, float(getattr(self, name)))
        designs = (SINGLE, *PAIR_DESIGNS)
        if self.pair_design not in designs:
            raise ConfigError(
                f"StudentConfig.pair_design: {self.pair_design!r} is not one of "
                f"{', '.join(designs)}"
            )
        if self.task_type not in TASK_TYPES:
            raise ConfigError(
                f"StudentConfig.task_type: {self.task_type!r} is not one of {', '.join(TASK_TYPES)}"
            )
        if self.task_type == REGRESSION and self.num_labels != 1:
            raise ConfigError(
                "StudentConfig.num_labels: a regression student has 1 output, "
                f"got {self.num_labels}"
            )

    @property
    def is_siamese(self) -> bool:
        return self.pair_design == "siamese"

    @property
    def head_input_size(self) -> int:
        """Width of what the head reads: the pooled vector, or for a siamese student the
        `[h1, h2, h1 * h2, |h1 - h2|]` of its two texts (Tang et al. 2019)."""
        return self.output_size * (4 if self.is_siamese else 1)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of the encoder's states and the pooled sentence vector: `hidden_size *
        num_directions` (rnn), `embedding_dim` (bag) or `hidden_size` (cnn)."""
        if self.encoder == "bag":
            return self.embedding_dim
        if self.encoder == "cnn":
            return self.hidden_size
        return self.hidden_size * self.num_directions

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudentConfig:
        """Build a config from `to_dict` output; unknown or missing required keys raise."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown StudentConfig keys: {unknown}; allowed: {sorted(fields)}")
        missing = sorted(
            name
            for name, field in fields.items()
            if name not in values
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ConfigError(f"missing required StudentConfig keys: {missing}")
        return cls(**values)


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
    cell from `distilrnn.registry.CELLS` (`nn.LSTM`, `nn.GRU` or a registered one) with
    DropConnect on its hidden-to-hidden weights (Merity et al. 2017)."""

    def __init__(
        self,
        rnn: str,
        input_size: int,
        hidden_size: int,
        bidirectional: bool,
        weight_dropout: float,
    ) -> None:
        super().__init__()
        rnn_class = CELLS.get(rnn)

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


ENCODER_BUILDERS: dict[str, Callable[[StudentConfig], nn.Module]] = {
    "rnn": RecurrentEncoder,
    "bag": lambda config: BagEncoder(),
    "cnn": ConvolutionalEncoder,
}


class RNNStudent(PretrainedMixin, nn.Module):
    """Embedding -> locked input dropout -> encoder -> pooling -> MLP head -> logits.

    The name is historical: the encoder is any of `ENCODER_BUILDERS` (a stacked (bi)RNN, none, or
    convolutions), as `config.encoder` says; `distilrnn.student.Student` is the same class.
    """

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
        self.encoder = ENCODER_BUILDERS[config.encoder](config)
        # The pooling module lives under the name `attention`, whatever the pooling: students
        # have always saved their attention weights as `attention.attention_vector`.
        self.attention = POOLINGS.get(config.pooling)(config)
        self.head = ClassifierHead(
            config.head_input_size, config.head_hidden_size, config.num_labels, config.head_dropout
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Classify (or score) a right-padded batch.

        Args:
            input_ids: `(batch, seq)` int64 token ids (a joint student: the pair as one
                sequence; a siamese student: the first text of each pair).
            attention_mask: `(batch, seq)` int or bool, nonzero at valid tokens; right-padded
                (valid tokens first) with at least one valid token per row.
            pair_input_ids, pair_attention_mask: `(batch, pair_seq)`, the second text of each
                pair; a siamese student needs them, the others take none.
            return_attention: also return the `(batch, seq)` attention weights (a siamese
                student: a pair of them, one per text); only with `pooling="attention"`.

        Returns:
            logits `(batch, num_labels)` (regression: `(batch, 1)` predicted scores), or
            `(logits, attention_weights)`.
        """
        if return_attention and not isinstance(self.pooling, AttentionPooling):
            raise ValueError(
                f"return_attention needs pooling='attention', got {self.config.pooling!r}"
            )
        if self.config.is_siamese:
            if pair_input_ids is None or pair_attention_mask is None:
                raise StudentError(
                    "a siamese student reads pairs: pass pair_input_ids and pair_attention_mask "
                    "(the second text of each pair) beside input_ids and attention_mask"
                )
            first = self._pooled(input_ids, attention_mask, return_attention)
            second = self._pooled(pair_input_ids, pair_attention_mask, return_attention)
            if return_attention:
                (h1, w1), (h2, w2) = first, second
            else:
                h1, h2 = first, second
            logits = self.head(self.pair_features(h1, h2))
            return (logits, (w1, w2)) if return_attention else logits
        if pair_input_ids is not None:
            raise StudentError(
                f"this student reads one sequence (pair_design {self.config.pair_design!r}); "
                "pair_input_ids are for siamese students"
            )
        if return_attention:
            pooled, attention_weights = self._pooled(input_ids, attention_mask, True)
            return self.head(pooled), attention_weights
        return self.head(self._pooled(input_ids, attention_mask))  # (batch, num_labels)

    @staticmethod
    def pair_features(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """A siamese student's head input from the two texts' pooled vectors `(batch, out)`:
        `[u, v, u * v, |u - v|]`, `(batch, 4 * out)`."""
        return torch.cat([first, second, first * second, (first - second).abs()], dim=-1)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled sentence vector of one right-padded batch, before the head.

        Args:
            input_ids: `(batch, seq)` int64 token ids.
            attention_mask: `(batch, seq)` int or bool, nonzero at valid tokens, right-padded,
                at least one valid token per row.

        Returns:
            `(batch, config.output_size)`. The dropouts apply as in `forward`: in train mode
            the vector is regularised exactly as the head sees it, in eval mode it is
            deterministic.
        """
        return self._pooled(input_ids, attention_mask)

    def _pooled(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_attention: bool = False
    ) -> Any:
        """The sentence vector `(batch, output_size)` of one right-padded batch (with the
        attention weights when `return_attention`)."""
        mask = attention_mask != 0  # (batch, seq)
        lengths = mask.sum(dim=1)  # (batch,)
        embedded = embedded_dropout(
            self.embedding, input_ids, self.config.embedding_dropout, self.training
        )  # (batch, seq, embedding_dim)
        embedded = self.input_dropout(embedded)
        hidden_states = self.encoder(embedded, lengths)  # (batch, seq, output_size)
        if return_attention:
            return self.pooling(hidden_states, mask, return_weights=True)
        return self.pooling(hidden_states, mask)  # (batch, output_size)

    @property
    def pooling(self) -> nn.Module:
        """The pooling module, `(batch, seq, output_size)`, `(batch, seq)` -> `(batch,
        output_size)` (held as `attention`, the name its weights are saved under)."""
        return self.attention

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
        logger.debug(
            "saved student (%d parameters) to %s", self.parameter_counts()["total"], directory
        )

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> RNNStudent:
        """Load a student written by `save`, in eval mode on `device`.

        Raises:
            MissingFileError: `config.json` or `model.safetensors` is missing.
            StudentError: a file is corrupt or does not match the config; the message names it.
        """
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        weights_path = directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise MissingFileError(f"student checkpoint file not found: {path}")
        try:
            config = StudentConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise StudentError(f"invalid student config {config_path}: {error}") from error
        try:
            state = load_file(str(weights_path), device="cpu")
        except Exception as error:  # safetensors raises its own error types on corrupt files
            raise StudentError(f"could not read student weights {weights_path}: {error}") from error
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise StudentError(
                f"student weights {weights_path} do not match {config_path}: {error}"
            ) from error
        return model.to(device).eval()

    def prune_vocabulary(self, keep_ids: Any, unk_id: int) -> tuple[RNNStudent, torch.Tensor]:
        """A student whose embedding holds only the rows `keep_ids` (plus the padding and
        unknown rows), and the int64 id table `(vocab_size,)` mapping every original id to its
        new row (dropped ids to the unknown token's row); see `student.factorize`."""
        from distilrnn.student.factorize import prune_embedding  # it imports this module

        return prune_embedding(self, keep_ids, unk_id)

    def narrow(self, rank: int, token_weights: Any = None) -> RNNStudent:
        """This student with a `rank`-wide embedding and the weights that read it (first
        recurrent layer, first convolution, or a bag's first head layer) refitted to it, without
        training; `token_weights` `(vocab_size,)` weighs each token in the fit (see
        `student.factorize.factorize_embedding`)."""
        from distilrnn.student.factorize import factorize_embedding  # it imports this module

        return factorize_embedding(self, rank, token_weights)
