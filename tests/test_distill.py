"""Building a student from a teacher: embeddings copied, or projected onto principal components."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distilrnn.config import ConfigError, StudentSettings
from distilrnn.distill import build_student, pca_project


def test_pca_projection_keeps_the_highest_variance_directions_first():
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([5.0, 3.0, 1.0, 0.1])
    weight = torch.randn(500, 4, generator=generator) * scales
    projected = pca_project(weight, 2)
    assert projected.shape == (500, 2)
    variances = projected.var(dim=0)
    assert variances[0] > variances[1] > 0.5 * 9.0
    assert variances.sum() == pytest.approx(25.0 + 9.0, rel=0.15)


def test_full_width_projection_keeps_every_distance():
    weight = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    projected = pca_project(weight, 6)
    assert torch.allclose(_distances(projected), _distances(weight), atol=1e-4)


def test_projection_wider_than_the_embedding_is_refused_by_name():
    with pytest.raises(ValueError, match="embedding_projection"):
        pca_project(torch.zeros(10, 4), 5)


def test_negative_projection_is_a_config_error():
    with pytest.raises(ConfigError, match="embedding_projection"):
        StudentSettings(embedding_projection=-1)


def test_projected_student_reads_the_narrow_embedding(tiny_teacher_dir):
    settings = StudentSettings(hidden_size=8, head_hidden_size=8, embedding_projection=6)
    student = build_student(settings, tiny_teacher_dir, num_labels=2, pad_token_id=0)
    teacher = AutoModelForSequenceClassification.from_pretrained(str(tiny_teacher_dir))
    expected = pca_project(teacher.get_input_embeddings().weight.detach(), 6)
    assert student.config.embedding_dim == 6
    assert torch.allclose(student.embedding.weight, expected)
    assert not student.embedding.weight.requires_grad
    logits = student(torch.tensor([[2, 5, 7, 3]]), torch.ones(1, 4, dtype=torch.long))
    assert logits.shape == (1, 2)


def _distances(points: torch.Tensor) -> torch.Tensor:
    return (points[:, None, :] - points[None, :, :]).norm(dim=-1)  # (n, n)
