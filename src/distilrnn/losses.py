"""Training objectives as pure functions, chosen by name from `distilrnn.registry.OBJECTIVES`.

Every function takes `student_logits` (batch, num_labels) and returns a scalar mean over the
batch. Distillation objectives read `teacher_logits` (batch, num_labels); `ce` reads integer
`labels` (batch,), or float gold scores for a regression task (batch,), where it is the squared
error (the label-trained baseline of regression; `mse` is the same on the teacher's score).
`register_loss` adds an objective that a config can then name.

Representation losses (`REPRESENTATION_LOSSES`, chosen by `student.repr_loss`) compare the
student's projected sentence vectors with the teacher's, both (batch, teacher_hidden_size).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from distilrnn.errors import ConfigError
from distilrnn.registry import OBJECTIVES

Loss = Callable[..., torch.Tensor]


def ce_loss(student_logits: torch.Tensor, labels: torch.Tensor, **_: object) -> torch.Tensor:
    """The baseline objective, on gold labels: cross-entropy on label ids, or for a regression
    task (float `labels`, the gold scores) the squared error of the predicted score."""
    if labels.is_floating_point():
        return F.mse_loss(student_logits[:, 0], labels.to(student_logits.dtype))
    return F.cross_entropy(student_logits, labels)


def has_label(labels: torch.Tensor) -> torch.Tensor:
    """Rows with a gold label: generated transfer texts carry -1 (or NaN as a score)."""
    return ~torch.isnan(labels) if labels.is_floating_point() else labels >= 0


def mse_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, **_: object
) -> torch.Tensor:
    """Mean squared error between raw logits (Tang et al. 2019), averaged over batch and labels."""
    return F.mse_loss(student_logits, teacher_logits)


def kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    **_: object,
) -> torch.Tensor:
    """KL(teacher || student) between temperature-softened distributions, times T^2.

    The T^2 factor keeps the gradient's scale independent of the temperature (Hinton et al. 2015).
    Mean over the batch.
    """
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


def register_loss(name: str, loss: Loss | None = None, *, replace: bool = False) -> Loss:
    """Make `loss` available as `student.objective = name` (or, without `loss`, a decorator).

    A distillation objective is called as `loss(student_logits, teacher_logits=...,
    temperature=...)` and returns a scalar; accept `**kwargs` to ignore what it does not read.
    `alpha` mixes `ce` in as for the built-ins. Register before the config is built: its
    validation reads the registry.
    """
    return OBJECTIVES.register(name, loss, replace=replace)


def objective_loss(
    objective: str,
    student_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    temperature: float = 1.0,
    alpha: float = 0.0,
) -> torch.Tensor:
    """The loss of a named objective, optionally mixed with `ce`: (1 - alpha) * kd + alpha * ce.

    Without teacher logits (e.g. on the validation split) the loss is `ce` on the labels. Rows
    with label -1 (generated transfer texts; NaN for a regression task) have no label and add
    nothing to the `ce` part. For regression, `ce` is the squared error on the gold score.

    Raises:
        ConfigError: `objective` is not registered; the message lists the registered ones.
    """
    loss_function = OBJECTIVES.get(objective)
    if objective == "ce" or teacher_logits is None:
        if labels is None:
            raise ValueError("the ce objective needs labels")
        return ce_loss(student_logits, labels)
    loss = loss_function(student_logits, teacher_logits=teacher_logits, temperature=temperature)
    if alpha > 0:
        if labels is None:
            raise ValueError("alpha > 0 mixes in ce, which needs labels")
        labelled = has_label(labels)  # generated transfer texts carry label -1 (NaN)
        ce = (
            ce_loss(student_logits[labelled], labels[labelled])
            if bool(labelled.any())
            else student_logits.sum() * 0.0
        )
        loss = (1 - alpha) * loss + alpha * ce
    return loss


def cosine_representation_loss(
    student_vectors: torch.Tensor, teacher_vectors: torch.Tensor
) -> torch.Tensor:
    """1 - cosine similarity, mean over the batch: DistilBERT's cosine embedding loss on hidden
    states (Sanh et al. 2019). Only directions count, so the loss stays in [0, 2] whatever the
    scale of the teacher layer it is matched against."""
    similarity = F.cosine_similarity(student_vectors, teacher_vectors, dim=-1)  # (batch,)
    return (1.0 - similarity).mean()


def mse_representation_loss(
    student_vectors: torch.Tensor, teacher_vectors: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over batch and hidden units: TinyBERT's hidden-state loss through a
    learned projection (Jiao et al. 2020). Its size follows the teacher layer's scale."""
    return F.mse_loss(student_vectors, teacher_vectors)


# `student.repr_loss` -> loss; `distilrnn.config.REPR_LOSSES` lists the same names
REPRESENTATION_LOSSES: dict[str, Loss] = {
    "cosine": cosine_representation_loss,
    "mse": mse_representation_loss,
}


def representation_loss(
    name: str, student_vectors: torch.Tensor, teacher_vectors: torch.Tensor
) -> torch.Tensor:
    """The representation loss `name` between `student_vectors` (batch, teacher_hidden_size),
    the student's projected sentence vectors, and `teacher_vectors` of the same shape (cast to
    the student's dtype: the cache holds float16). A scalar.

    Raises:
        ConfigError: `name` is not one of `REPRESENTATION_LOSSES`.
    """
    if name not in REPRESENTATION_LOSSES:
        known = ", ".join(REPRESENTATION_LOSSES)
        raise ConfigError(f"student.repr_loss: unknown {name!r}; known: {known}")
    if student_vectors.shape != teacher_vectors.shape:
        raise ValueError(
            f"student vectors {tuple(student_vectors.shape)} and teacher vectors "
            f"{tuple(teacher_vectors.shape)} differ in shape"
        )
    teacher_vectors = teacher_vectors.to(student_vectors.dtype)
    return REPRESENTATION_LOSSES[name](student_vectors, teacher_vectors)
