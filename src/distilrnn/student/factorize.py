"""Surgery on a trained student's embedding, without training (`RNNStudent.narrow` and
`RNNStudent.prune_vocabulary` call these):

- narrowing: a low-rank factorisation of the embedding and the layer that reads it (used by
  `student.embedding_projection` with `init_from`, and by `distilrnn export --embedding-rank`);
- vocabulary pruning: only some embedding rows kept, with an id table from the tokenizer's ids
  to the kept rows (used by `distilrnn export --prune-vocab`)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from distilrnn.errors import StudentError
from distilrnn.student.model import RNNStudent, StudentConfig

logger = logging.getLogger(__name__)

# poolings of a bag student whose output, as the head reads it, is linear in the embeddings
# (attention's scores too), so narrowing can refit what reads them
BAG_LINEAR_POOLINGS = ("mean", "attention")


def first_layer_input_names(config: StudentConfig) -> list[str]:
    """State-dict names of the weights that read the embedding linearly, which narrowing
    refits: the first recurrent layer's input weights, one per direction (rnn); the first
    convolution's kernel (cnn); a bag student's first head layer and, with attention pooling,
    its attention vector (they read the pooled embeddings)."""
    if config.encoder == "cnn":
        return ["encoder.layers.0.weight"]
    if config.encoder == "bag":
        head = "head.hidden" if config.head_hidden_size > 0 else "head.output"
        attention = ["attention.attention_vector"] if config.pooling == "attention" else []
        return [f"{head}.weight", *attention]
    directions = ("forward", "backward")[: config.num_directions]
    return [f"encoder.layers.0.{d}_rnn.module.weight_ih_l0" for d in directions]


def first_layer_parameter_names(config: StudentConfig) -> list[str]:
    """`first_layer_input_names` and the biases that go with them: what `train_layers =
    "first"` trains."""
    names = []
    for name in first_layer_input_names(config):
        names.append(name)
        if name.endswith("weight_ih_l0"):
            names.append(name.replace("weight_ih_l0", "bias_ih_l0"))
        elif name.endswith(".weight"):
            names.append(name.removesuffix("weight") + "bias")
    return names


def _check_narrowable(config: StudentConfig) -> None:
    """A bag student's head reads the pooled embeddings; narrowing can refit that only when it
    is linear in them."""
    if config.encoder != "bag":
        return
    if config.pooling not in BAG_LINEAR_POOLINGS:
        raise StudentError(
            f"a bag student with {config.pooling!r} pooling cannot be narrowed after training: "
            "its pooled vector is not linear in the embeddings; use mean or attention pooling, "
            "or train a fresh bag student with student.embedding_projection (PCA)"
        )
    if config.is_siamese:
        raise StudentError(
            "a siamese bag student cannot be narrowed after training: its head reads h1 * h2, "
            "which a change of embedding basis does not keep; train a fresh bag student with "
            "student.embedding_projection (PCA) instead"
        )


def _as_rows(weight: torch.Tensor) -> torch.Tensor:
    """A weight that reads `dim`-wide vectors as `(rows, dim)`: a Linear or RNN input weight
    `(out, dim)` as is, a vector `(dim,)` as one row, a Conv1d kernel `(out, dim, width)` as one
    row per output channel and tap."""
    if weight.dim() == 1:
        return weight.unsqueeze(0)
    if weight.dim() == 3:
        return weight.permute(0, 2, 1).reshape(-1, weight.size(1))
    return weight


def _from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Undo `_as_rows` for a weight shaped as `like`, with `rows.size(1)` input columns."""
    if like.dim() == 1:
        return rows.squeeze(0).contiguous()
    if like.dim() == 3:
        out, _, width = like.shape
        return rows.reshape(out, width, -1).permute(0, 2, 1).contiguous()
    return rows.contiguous()


def factorize_embedding(
    student: RNNStudent, rank: int, token_weights: np.ndarray | None = None
) -> RNNStudent:
    """The student with a `rank`-wide embedding and the weights that read it refitted to it.

    What the first layer reads from token v is `W e_v` (`W`: the weights of
    `first_layer_input_names` as rows, `(rows, dim)`: the input weights of every gate and
    direction of an RNN, every output channel and tap of a convolution, a bag's first head layer
    and attention vector; `e_v`: the embedding row). The new embedding row is `z_v = Tᵀ e_v` and
    the new input weights `B`, with `B z_v` the best
    rank-`rank` approximation of `W e_v` in the least-squares sense over tokens weighted by
    `token_weights`: `B` holds the leading right singular vectors of `diag(√w) E Wᵀ`, and `T` =
    `Wᵀ B`. Columns are then rescaled (z_v by 1/s_j, B by s_j) so that every embedding column has
    the embedding's own RMS, which keeps int8 quantisation and fine-tuning even across columns.
    At `rank` = dim the logits are unchanged; below it, only those weights change. A bag
    student's pooled vector (mean or attention) is a weighted mean of the embeddings, so what its
    head reads changes the same way.

    Args:
        student: a trained student.
        rank: the new embedding width, 1 <= rank <= embedding_dim (and the number of rows).
        token_weights: `(vocab_size,)` non-negative weight per token (e.g. frequency in the
            training texts); None weighs every row alike.
    """
    config = student.config
    if not 1 <= rank <= config.embedding_dim:
        raise StudentError(
            f"embedding rank {rank} asked of a {config.embedding_dim}-wide student "
            f"embedding; use 1 to {config.embedding_dim}"
        )
    _check_narrowable(config)
    weights = np.ones(config.vocab_size) if token_weights is None else np.asarray(token_weights)
    if weights.shape != (config.vocab_size,) or (weights < 0).any() or weights.sum() <= 0:
        raise StudentError(
            f"token_weights must be {config.vocab_size} non-negative numbers, not all zero"
        )
    state = {name: t.detach().clone() for name, t in student.state_dict().items()}
    embedding = state["embedding.weight"].double()  # (vocab, dim)
    names = first_layer_input_names(config)
    parts = [_as_rows(state[name].double()) for name in names]
    reads = torch.cat(parts)  # (rows, dim)
    if rank > reads.size(0):
        raise StudentError(
            f"embedding rank {rank} is more than the {reads.size(0)} values the student's first "
            f"layer reads from each token; use 1 to {reads.size(0)}"
        )
    w = torch.from_numpy(weights / weights.sum()).double()
    covariance = (embedding * w[:, None]).T @ embedding  # (dim, dim) weighted second moment
    values, vectors = torch.linalg.eigh(covariance)
    root = vectors * values.clamp(min=0).sqrt()  # covariance = root rootᵀ
    _, singular, right = torch.linalg.svd(root.T @ reads.T, full_matrices=False)
    basis = right[:rank].T  # (rows, rank), orthonormal columns
    projected = embedding @ (reads.T @ basis)  # (vocab, rank)
    column_rms = (w[:, None] * projected**2).sum(0).sqrt().clamp(min=1e-12)  # (rank,)
    target_rms = float((w[:, None] * embedding**2).sum(0).sqrt().mean())
    scale = target_rms / column_rms  # (rank,)
    state["embedding.weight"] = (projected * scale).to(torch.float32)
    new_reads = (basis / scale).to(torch.float32)  # (rows, rank)
    sizes = [part.size(0) for part in parts]
    for name, part in zip(names, new_reads.split(sizes), strict=True):
        state[name] = _from_rows(part, state[name])
    kept = float((singular[:rank] ** 2).sum() / (singular**2).sum().clamp(min=1e-300))
    logger.info(
        "embedding factorised to %d columns: %.1f %% of the first layer's weighted input energy",
        rank,
        100 * kept,
    )
    narrow = RNNStudent(StudentConfig.from_dict({**config.to_dict(), "embedding_dim": rank}))
    narrow.load_state_dict(state, strict=True)
    return narrow.train(student.training)


def frequency_weights(counts: np.ndarray) -> np.ndarray:
    """Token weights for `factorize_embedding` from token counts in the training texts:
    √count + 1, so frequent tokens count more without drowning the rare ones, and tokens the
    texts never hold still count a little (test sentences have words training never saw)."""
    return np.sqrt(np.asarray(counts, dtype=np.float64)) + 1.0


def prune_embedding(
    student: RNNStudent, keep_ids: np.ndarray, unk_id: int
) -> tuple[RNNStudent, torch.Tensor]:
    """The student with only the embedding rows `keep_ids` (plus the padding and unknown rows),
    in id order, and the id table `(vocab_size,)` int64 that maps every original id to its new
    row, every dropped id to the unknown token's row. Everything but the embedding is kept."""
    config = student.config
    keep = np.union1d(np.asarray(keep_ids, dtype=np.int64), [config.padding_idx, unk_id])
    if keep[0] < 0 or keep[-1] >= config.vocab_size:
        bad = int(keep[0] if keep[0] < 0 else keep[-1])
        raise StudentError(
            f"token id {bad} is outside the student's vocabulary of {config.vocab_size}"
        )
    new_row = np.full(config.vocab_size, np.searchsorted(keep, unk_id), dtype=np.int64)
    new_row[keep] = np.arange(len(keep))
    pruned_config = StudentConfig.from_dict(
        {
            **config.to_dict(),
            "vocab_size": len(keep),
            "padding_idx": int(new_row[config.padding_idx]),
        }
    )
    state = student.state_dict()
    state["embedding.weight"] = state["embedding.weight"][torch.from_numpy(keep)]
    pruned = RNNStudent(pruned_config)
    pruned.load_state_dict(state, strict=True)
    return pruned.train(student.training), torch.from_numpy(new_row)
