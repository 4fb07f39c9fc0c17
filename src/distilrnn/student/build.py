"""Building a student: from a teacher's embedding (copied, or projected onto its principal
components), or from another finished student (its weights, optionally with a factorised
embedding). `RNNStudent.from_teacher` and the trainer both come here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distilrnn.config import StudentSettings
from distilrnn.errors import StudentError
from distilrnn.student.factorize import (
    factorize_embedding,
    first_layer_parameter_names,
    frequency_weights,
)
from distilrnn.student.model import RNNStudent, StudentConfig
from distilrnn.validation import DROPOUT_FIELDS, SHAPE_FIELDS

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

ARCHITECTURE_FIELDS = SHAPE_FIELDS + DROPOUT_FIELDS


def pca_project(weight: torch.Tensor, components: int) -> torch.Tensor:
    """Project embedding rows onto their top principal components.

    Args:
        weight: `(vocab_size, embedding_dim)` embedding matrix.
        components: output width, 1 <= components <= embedding_dim.

    Returns:
        `(vocab_size, components)`: the mean-centred rows in the basis of the leading right
        singular vectors, highest variance first.
    """
    if not 1 <= components <= weight.shape[1]:
        raise StudentError(
            f"student.embedding_projection: {components} components asked of a "
            f"{weight.shape[1]}-wide embedding; use 1 to {weight.shape[1]}, or 0 for none"
        )
    centred = weight.double() - weight.double().mean(dim=0, keepdim=True)
    _, singular, basis = torch.linalg.svd(centred, full_matrices=False)  # basis (dim, dim)
    kept = float((singular[:components] ** 2).sum() / (singular**2).sum())
    logger.info(
        "embedding projection: %d components keep %.1f %% of the variance", components, 100 * kept
    )
    return (centred @ basis[:components].T).to(weight.dtype)  # (vocab_size, components)


def teacher_embedding(teacher: Any) -> torch.Tensor:
    """`(vocab_size, embedding_dim)`: a copy of a teacher's word embeddings; `teacher` is a
    `distilrnn.Teacher`, a transformers model, or a folder / hub id of one."""
    if hasattr(teacher, "embedding_weight"):
        return teacher.embedding_weight()
    if isinstance(teacher, str | Path):
        from distilrnn.teacher import load_classifier

        teacher = load_classifier(str(teacher))
    return teacher.get_input_embeddings().weight.detach().clone()


def build_student(
    settings: StudentSettings,
    teacher: Any,
    num_labels: int,
    pad_token_id: int,
    *,
    pair_design: str = "none",
    task_type: str = "classification",
) -> RNNStudent:
    """A fresh student with the teacher's word embeddings (unless `embeddings = "random"`),
    projected onto their principal components when `embedding_projection` is set; it reads
    pairs by `pair_design` ("none" | "joint" | "siamese") and scores a `task_type` task.

    The projection narrows a bag student as it narrows the others: its pooled vector is its
    embedding, so the pooling and head shrink with the table. PCA at build time rather than a
    learned projection folded into the table before export: it costs nothing per training step
    (a learned `dim x k` projection would run over every embedded token of every batch), the
    saved student is already narrow (so the vocabulary pruning, quantisation and FLOPs of the
    student and of its bundle are the same thing). It keeps the directions the embeddings vary
    most in, not those the task needs, which a learned projection could find at that cost;
    `embeddings = "trainable"` fine-tunes the narrow table itself instead."""
    embedding = teacher_embedding(teacher)  # (vocab, embedding_dim)
    if settings.embedding_projection:
        embedding = pca_project(embedding, settings.embedding_projection)  # (vocab, projection)
    config = StudentConfig(
        vocab_size=embedding.shape[0],
        embedding_dim=embedding.shape[1],
        num_labels=num_labels,
        padding_idx=pad_token_id,
        freeze_embeddings=settings.embeddings == "frozen",
        pair_design=pair_design,
        task_type=task_type,
        **{name: getattr(settings, name) for name in ARCHITECTURE_FIELDS},
    )
    return RNNStudent(config, None if settings.embeddings == "random" else embedding)


def dataset_token_counts(dataset: Dataset, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in a tokenised dataset's `input_ids`: `(vocab_size,)`."""
    import pyarrow.compute as pc

    counts = np.zeros(vocab_size, dtype=np.int64)
    for table in dataset.select_columns(["input_ids"]).with_format("arrow").iter(65536):
        ids = pc.list_flatten(table.column("input_ids")).to_numpy()
        counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]
    return counts


def start_from(
    parent: RNNStudent | Path, settings: StudentSettings, num_labels: int, train_set: Dataset
) -> RNNStudent:
    """A finished student (`parent`, or the folder it is saved in) as the starting point of a
    student with `settings`: its weights; this student's dropouts and embedding freezing; its
    embedding factorised to `embedding_projection` columns (tokens weighted by √(count in
    `train_set`) + 1) if set; only the weights that read the embedding trainable with
    `train_layers = "first"` (`student.factorize.first_layer_parameter_names`)."""
    where = parent if isinstance(parent, Path) else "the parent student"
    if isinstance(parent, Path):
        parent = RNNStudent.load(parent)
    config = parent.config
    for name in SHAPE_FIELDS:
        if getattr(config, name) != getattr(settings, name):
            raise StudentError(
                f"student.init_from: the student in {where} has {name} = "
                f"{getattr(config, name)!r}, this variant {getattr(settings, name)!r}"
            )
    if config.num_labels != num_labels:
        raise StudentError(
            f"student.init_from: the student in {where} has {config.num_labels} outputs, "
            f"the task {num_labels} labels"
        )
    model = parent
    width = settings.embedding_projection
    if width and width != config.embedding_dim:
        if width > config.embedding_dim:
            raise StudentError(
                f"student.embedding_projection = {width} is wider than the "
                f"{config.embedding_dim}-wide embedding of the student in {where}"
            )
        counts = dataset_token_counts(train_set, config.vocab_size)
        model = factorize_embedding(parent, width, frequency_weights(counts))
    regularised = StudentConfig.from_dict(
        {
            **model.config.to_dict(),
            **{name: getattr(settings, name) for name in DROPOUT_FIELDS},
            "freeze_embeddings": settings.embeddings == "frozen",
        }
    )
    student = RNNStudent(regularised)
    student.load_state_dict(model.state_dict(), strict=True)
    if settings.train_layers == "first":
        trained = set(first_layer_parameter_names(regularised))
        for name, parameter in student.named_parameters():
            parameter.requires_grad_(name in trained)
    return student
