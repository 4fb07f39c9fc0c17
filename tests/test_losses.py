"""Objectives at known values."""

import math

import pytest
import torch

from distilrnn.config import ConfigError, load_config
from distilrnn.losses import ce_loss, kl_loss, mse_loss, objective_loss, register_loss
from distilrnn.registry import OBJECTIVES


def test_kl_loss_is_zero_when_logits_match():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    assert kl_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_loss_matches_hand_computed_value_with_temperature_squared_scaling():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[4.0, 0.0]])
    temperature = 2.0
    p = torch.softmax(teacher / temperature, -1)[0]  # teacher distribution at T
    q = torch.tensor([0.5, 0.5])
    expected = float((p * (p / q).log()).sum()) * temperature**2
    assert kl_loss(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_kl_loss_is_positive_when_logits_differ():
    assert kl_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).item() > 0.1


def test_mse_loss_value_and_gradient():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 2.0], [2.0, -1.0]])
    loss = mse_loss(student, teacher)
    assert loss.item() == pytest.approx((1 + 0 + 4 + 0) / 4)
    loss.backward()
    # d/ds mean((s - t)^2) = 2 (s - t) / n
    assert torch.allclose(student.grad, 2 * (student.detach() - teacher) / 4)


def test_ce_loss_matches_log_of_uniform_for_equal_logits():
    loss = ce_loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
    assert loss.item() == pytest.approx(math.log(3))


def test_objective_mixes_ce_with_alpha():
    student = torch.tensor([[0.5, -0.5]])
    teacher = torch.tensor([[2.0, -2.0]])
    labels = torch.tensor([1])
    mixed = objective_loss("mse", student, labels, teacher, alpha=0.25)
    expected = 0.75 * mse_loss(student, teacher) + 0.25 * ce_loss(student, labels)
    assert mixed.item() == pytest.approx(expected.item())


def test_objective_falls_back_to_ce_without_teacher_logits():
    student = torch.tensor([[0.5, -0.5]])
    labels = torch.tensor([0])
    assert objective_loss("kl", student, labels).item() == pytest.approx(
        ce_loss(student, labels).item()
    )


def test_unknown_objective_is_a_config_error_listing_the_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown objective 'hinge'; registered: ce, mse, kl"):
        objective_loss("hinge", torch.zeros(1, 2), torch.tensor([0]))


@pytest.fixture
def zero_loss():
    """A registered objective `zero` that records its calls; unregistered afterwards."""
    calls = []

    def loss(student_logits, teacher_logits, temperature, **_):
        calls.append(temperature)
        return (student_logits - teacher_logits).sum() * 0

    register_loss("zero", loss)
    yield calls
    OBJECTIVES.unregister("zero")


def test_registered_loss_is_used_by_name(zero_loss):
    assert objective_loss("zero", torch.ones(2, 2), teacher_logits=torch.ones(2, 2)) == 0
    assert zero_loss == [1.0]


def test_registered_loss_can_be_chosen_in_a_config_and_trains_with_it(zero_loss):
    config = load_config(None, ['variant=[{name="mine", objective="zero", temperature=3}]'])
    settings = config.student_for(config.variant("mine"))
    assert settings.objective == "zero"
    # what `DistillationTrainer.compute_loss` calls with the settings
    objective_loss(
        settings.objective,
        torch.ones(2, 2),
        labels=torch.tensor([0, 1]),
        teacher_logits=torch.zeros(2, 2),
        temperature=settings.temperature,
        alpha=settings.alpha,
    )
    assert zero_loss == [3.0]


def test_unregistered_objective_in_a_config_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"student\.objective: must be ce, mse or kl, got 'zero'"):
        load_config(None, ["student.objective=zero"])


def test_register_loss_refuses_to_replace_a_builtin_silently():
    with pytest.raises(ValueError, match="already registered"):
        register_loss("kl", mse_loss)


def test_register_loss_works_as_a_decorator():
    @register_loss("decorated")
    def decorated(student_logits, **_):
        return student_logits.mean()

    try:
        assert OBJECTIVES.get("decorated") is decorated
    finally:
        OBJECTIVES.unregister("decorated")


def test_alpha_mix_ignores_unlabelled_transfer_rows():
    student = torch.tensor([[0.5, -0.5], [1.0, 0.0]])
    teacher = torch.tensor([[2.0, -2.0], [0.0, 1.0]])
    labels = torch.tensor([1, -1])
    mixed = objective_loss("kl", student, labels, teacher, temperature=2.0, alpha=0.5)
    expected = 0.5 * kl_loss(student, teacher, 2.0) + 0.5 * ce_loss(student[:1], labels[:1])
    assert mixed.item() == pytest.approx(expected.item())
    only_unlabelled = objective_loss("mse", student, torch.tensor([-1, -1]), teacher, alpha=0.5)
    assert only_unlabelled.item() == pytest.approx(0.5 * mse_loss(student, teacher).item())
