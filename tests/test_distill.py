"""Building a student from a teacher: embeddings copied, or projected onto principal components."""

import dataclasses

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distilrnn.config import ConfigError, StudentSettings
from distilrnn.student.build import build_student, pca_project


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


# factorised embeddings (embedding_projection with init_from) ----------------------------------
def _random_student(seed=0, **config):
    from distilrnn.student import RNNStudent, StudentConfig

    torch.manual_seed(seed)
    values = {"vocab_size": 40, "embedding_dim": 12, "hidden_size": 6, "head_hidden_size": 5}
    return RNNStudent(StudentConfig(**{**values, **config})).eval()


def _batch(vocab_size=40, seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (5, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    return ids * mask, mask


@pytest.mark.parametrize(
    ("rnn", "bidirectional", "num_layers"),
    [("lstm", True, 1), ("gru", True, 2), ("lstm", False, 2), ("gru", False, 1)],
)
def test_factorising_at_full_rank_keeps_the_logits(rnn, bidirectional, num_layers):
    from distilrnn.student.factorize import factorize_embedding

    student = _random_student(rnn=rnn, bidirectional=bidirectional, num_layers=num_layers)
    ids, mask = _batch()
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=40)
    narrow = factorize_embedding(student, 12, weights)
    with torch.no_grad():
        torch.testing.assert_close(narrow(ids, mask), student(ids, mask), atol=1e-5, rtol=1e-5)


def test_factorising_is_exact_on_the_weighted_tokens_and_narrows_the_embedding():
    from distilrnn.student.factorize import factorize_embedding

    student = _random_student()
    used = [1, 2, 3, 4]  # rank 4 can reproduce what the first layer reads from 4 tokens
    weights = np.zeros(40)
    weights[used] = [5.0, 1.0, 2.0, 0.5]
    narrow = factorize_embedding(student, 4, weights)
    assert narrow.embedding.weight.shape == (40, 4)
    assert narrow.config.embedding_dim == 4
    assert narrow.encoder.layers[0].forward_rnn.module.weight_ih_l0.shape == (24, 4)
    ids = torch.tensor([[1, 2, 3, 4, 2], [4, 4, 1, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        torch.testing.assert_close(narrow(ids, mask), student(ids, mask), atol=1e-5, rtol=1e-5)
        far = torch.tensor([[30, 31, 32, 33, 34]])
        assert not torch.allclose(
            narrow(far, torch.ones_like(far)), student(far, torch.ones_like(far))
        )
    rms = narrow.embedding.weight[used].pow(2).mean(0).sqrt()
    assert float(rms.max() / rms.min()) < 10  # columns rescaled to comparable ranges


def test_factorising_rejects_a_bad_rank_or_weights():
    from distilrnn.student.factorize import factorize_embedding

    student = _random_student()
    with pytest.raises(ValueError, match="embedding rank 13 asked of a 12-wide"):
        factorize_embedding(student, 13)
    with pytest.raises(ValueError, match="token_weights must be 40"):
        factorize_embedding(student, 4, np.zeros(40))
    with pytest.raises(ValueError, match="token_weights must be 40"):
        factorize_embedding(student, 4, np.ones(39))


def test_token_counts_follow_the_datasets_rows_after_a_selection():
    from datasets import Dataset

    from distilrnn.student.build import dataset_token_counts

    dataset = Dataset.from_dict({"input_ids": [[1, 2, 2], [3], [2, 5, 5, 5]]}).select([0, 2])
    assert dataset_token_counts(dataset, 7).tolist() == [0, 1, 3, 0, 0, 3, 0]


def test_a_student_started_from_another_can_train_its_first_layer_only(tmp_path):
    from conftest import VOCAB, build_tiny_student
    from datasets import Dataset

    from distilrnn.student.build import start_from

    parent_dir = build_tiny_student(tmp_path / "parent", hidden_size=10, head_hidden_size=8)
    settings = StudentSettings(
        hidden_size=10,
        head_hidden_size=8,
        init_from="parent",
        embedding_projection=4,
        train_layers="first",
    )
    train_set = Dataset.from_dict({"input_ids": [[1, 5, 6, 2], [1, 7, 2]]})
    student = start_from(parent_dir, settings, 2, train_set)
    trained = sorted(n for n, p in student.named_parameters() if p.requires_grad)
    assert trained == [
        f"encoder.layers.0.{d}_rnn.module.{w}_l0"
        for d in ("backward", "forward")
        for w in ("bias_ih", "weight_ih")
    ]
    assert student.config.embedding_dim == 4
    assert student.config.vocab_size == len(VOCAB)

    everything = start_from(
        parent_dir, dataclasses.replace(settings, train_layers="all"), 2, train_set
    )
    frozen = [n for n, p in everything.named_parameters() if not p.requires_grad]
    assert frozen == ["embedding.weight"]  # frozen by `embeddings = "frozen"`, nothing else


def test_training_the_first_layer_only_needs_init_from():
    with pytest.raises(ConfigError, match=r"student\.train_layers: `first` needs init_from"):
        StudentSettings(train_layers="first")
    with pytest.raises(ConfigError, match="must be all or first"):
        StudentSettings(init_from="x", train_layers="some")
