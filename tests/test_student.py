"""Tests for the RNN student: padding invariance, regularisers, training, save/load, config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from distilrnn.errors import ConfigError
from distilrnn.registry import CELLS, POOLINGS
from distilrnn.student import RNNStudent, StudentConfig, register_cell, register_pooling
from distilrnn.student.attention import AttentionPooling
from distilrnn.student.model import CONFIG_NAME, WEIGHTS_NAME, reverse_within_length
from distilrnn.student.regularizers import LockedDropout, WeightDrop, embedded_dropout

VOCAB_SIZE = 50
NO_DROPOUT = {
    "embedding_dropout": 0.0,
    "input_dropout": 0.0,
    "hidden_dropout": 0.0,
    "weight_dropout": 0.0,
    "head_dropout": 0.0,
}


def make_config(**overrides: object) -> StudentConfig:
    values: dict[str, object] = {
        "vocab_size": VOCAB_SIZE,
        "embedding_dim": 12,
        "num_labels": 3,
        "hidden_size": 10,
        "head_hidden_size": 8,
    }
    values.update(overrides)
    return StudentConfig(**values)


def make_model(seed: int = 0, **overrides: object) -> RNNStudent:
    torch.manual_seed(seed)
    return RNNStudent(make_config(**overrides))


def right_padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random `(batch, max(lengths))` ids (never the padding id 0) and the matching mask."""
    generator = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    input_ids = torch.randint(1, VOCAB_SIZE, (len(lengths), seq), generator=generator)
    attention_mask = (torch.arange(seq).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    return input_ids * attention_mask, attention_mask


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["attention", "max", "mean", "last"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_student_ignores_padding(rnn: str, bidirectional: bool, pooling: str, num_layers: int):
    model = make_model(rnn=rnn, bidirectional=bidirectional, pooling=pooling, num_layers=num_layers)
    model.eval()
    input_ids, attention_mask = right_padded_batch([4, 9, 1, 6], seed=1)
    # Real token ids under the mask, not just the (zero-initialised) padding row.
    input_ids = torch.where(attention_mask.bool(), input_ids, 7)
    with torch.no_grad():
        batched = model(input_ids, attention_mask)
        for row, length in enumerate([4, 9, 1, 6]):
            alone = model(input_ids[row : row + 1, :length], attention_mask[row : row + 1, :length])
            torch.testing.assert_close(alone[0], batched[row], atol=1e-5, rtol=0)


def test_three_layer_student_ignores_padding():
    model = make_model(num_layers=3, pooling="last").eval()
    input_ids, attention_mask = right_padded_batch([3, 7], seed=2)
    with torch.no_grad():
        batched = model(input_ids, attention_mask)
        alone = model(input_ids[:1, :3], attention_mask[:1, :3])
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=0)


def test_reverse_within_length_reverses_valid_tokens_and_keeps_padding():
    inputs = torch.arange(8.0).view(2, 4, 1)
    reversed_inputs = reverse_within_length(inputs, torch.tensor([4, 2]))
    assert reversed_inputs.squeeze(-1).tolist() == [[3.0, 2.0, 1.0, 0.0], [5.0, 4.0, 6.0, 7.0]]
    assert torch.equal(reverse_within_length(reversed_inputs, torch.tensor([4, 2])), inputs)


def test_backward_direction_reads_the_sentence_right_to_left():
    model = make_model(**NO_DROPOUT).eval()
    input_ids, _ = right_padded_batch([5], seed=3)
    changed = input_ids.clone()
    changed[0, 0] = (changed[0, 0] % (VOCAB_SIZE - 1)) + 1
    lengths = torch.tensor([5])
    hidden_size = model.config.hidden_size
    with torch.no_grad():
        states = model.encoder(model.embedding(input_ids), lengths)  # (1, 5, 2 * hidden)
        changed_states = model.encoder(model.embedding(changed), lengths)
    # The backward state at the last token has read only that token; at token 0 it has read all.
    torch.testing.assert_close(states[0, 4, hidden_size:], changed_states[0, 4, hidden_size:])
    assert not torch.allclose(states[0, 0, hidden_size:], changed_states[0, 0, hidden_size:])


@pytest.mark.parametrize(
    ("dropout_name", "overrides"),
    [
        ("embedding_dropout", {}),
        ("input_dropout", {}),
        ("hidden_dropout", {"num_layers": 2}),
        ("weight_dropout", {}),
        ("head_dropout", {}),
    ],
)
def test_dropouts_active_in_training_and_off_in_eval(
    dropout_name: str, overrides: dict[str, object]
):
    settings = {**NO_DROPOUT, dropout_name: 0.5, **overrides}
    model = make_model(**settings)
    input_ids, attention_mask = right_padded_batch([6, 8, 3, 8], seed=4)
    torch.manual_seed(5)
    with torch.no_grad():
        model.train()
        first, second = model(input_ids, attention_mask), model(input_ids, attention_mask)
        model.eval()
        eval_first, eval_second = model(input_ids, attention_mask), model(input_ids, attention_mask)
    assert not torch.allclose(first, second)
    assert torch.equal(eval_first, eval_second)


def test_student_without_dropout_is_deterministic_in_training():
    model = make_model(num_layers=2, **NO_DROPOUT).train()
    input_ids, attention_mask = right_padded_batch([6, 8], seed=4)
    with torch.no_grad():
        assert torch.equal(model(input_ids, attention_mask), model(input_ids, attention_mask))


def test_weight_drop_changes_hidden_weights_only_in_training():
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 6, batch_first=True)
    weight_drop = WeightDrop(lstm, dropout=0.5)
    weight_before = lstm.weight_hh_l0.detach().clone()
    inputs = torch.randn(3, 5, 4)
    with torch.no_grad():
        plain, _ = lstm(inputs)
        weight_drop.train()
        first, _ = weight_drop(inputs)
        second, _ = weight_drop(inputs)
        # At the first step the initial state is zero, so weight_hh_l0 has no effect there:
        # identical first-step outputs show that only the hidden-to-hidden weights are dropped.
        weight_drop.eval()
        eval_output, _ = weight_drop(inputs)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, plain)
    torch.testing.assert_close(first[:, 0], plain[:, 0])
    torch.testing.assert_close(second[:, 0], plain[:, 0])
    assert torch.equal(eval_output, plain)
    assert torch.equal(lstm.weight_hh_l0, weight_before)
    assert isinstance(lstm.weight_hh_l0, nn.Parameter)
    assert list(weight_drop.state_dict()) == [f"module.{name}" for name in lstm.state_dict()]


def test_weight_drop_passes_gradient_to_the_raw_hidden_weights():
    torch.manual_seed(0)
    gru = nn.GRU(4, 6, batch_first=True)
    weight_drop = WeightDrop(gru, dropout=0.5).train()
    outputs, _ = weight_drop(torch.randn(2, 5, 4))
    outputs.sum().backward()
    assert gru.weight_hh_l0.grad is not None
    assert gru.weight_hh_l0.grad.abs().sum() > 0


def test_locked_dropout_shares_one_mask_over_time():
    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    outputs = dropout(torch.ones(4, 7, 16))
    assert torch.equal(outputs, outputs[:, :1].expand_as(outputs))
    assert set(outputs.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(dropout.eval()(outputs), outputs)


def test_embedded_dropout_drops_whole_words_and_rescales():
    torch.manual_seed(0)
    embedding = nn.Embedding(10, 4)
    embedding.weight.requires_grad_(False)
    input_ids = torch.tensor([[1, 2, 1, 3, 2, 1, 3, 3]])
    dropped = embedded_dropout(embedding, input_ids, dropout=0.5, training=True)
    reference = embedding(input_ids)
    for word in (1, 2, 3):
        rows = dropped[input_ids == word]
        assert torch.equal(rows, torch.zeros_like(rows)) or torch.allclose(
            rows, 2.0 * reference[input_ids == word]
        )
        assert torch.equal(rows, rows[:1].expand_as(rows))
    assert torch.equal(embedded_dropout(embedding, input_ids, 0.5, training=False), reference)


def test_frozen_embedding_gets_no_gradient():
    model = make_model(freeze_embeddings=True)
    input_ids, attention_mask = right_padded_batch([4, 6], seed=6)
    model(input_ids, attention_mask).sum().backward()
    assert not model.embedding.weight.requires_grad
    assert model.embedding.weight.grad is None


def test_trainable_embedding_gets_gradient():
    model = make_model(freeze_embeddings=False)
    input_ids, attention_mask = right_padded_batch([4, 6], seed=6)
    model(input_ids, attention_mask).sum().backward()
    assert model.embedding.weight.grad is not None
    assert model.embedding.weight.grad[input_ids[0, 0]].abs().sum() > 0


def test_embedding_weight_is_copied():
    config = make_config()
    weight = torch.randn(config.vocab_size, config.embedding_dim)
    model = RNNStudent(config, embedding_weight=weight)
    assert torch.equal(model.embedding.weight, weight)
    assert model.embedding.weight.data_ptr() != weight.data_ptr()


def test_embedding_weight_with_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="embedding_weight"):
        RNNStudent(make_config(), embedding_weight=torch.randn(VOCAB_SIZE, 5))


def test_gradient_flows_to_attention_vector():
    model = make_model(pooling="attention")
    input_ids, attention_mask = right_padded_batch([4, 6, 2], seed=7)
    model(input_ids, attention_mask).sum().backward()
    grad = model.pooling.attention_vector.grad
    assert grad is not None
    assert grad.abs().sum() > 0


def test_attention_weights_are_zero_on_padding_and_sum_to_one():
    model = make_model(pooling="attention").eval()
    input_ids, attention_mask = right_padded_batch([3, 6], seed=8)
    with torch.no_grad():
        _, weights = model(input_ids, attention_mask, return_attention=True)
    assert weights.shape == (2, 6)
    assert torch.all(weights[0, 3:] == 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))


def test_attention_pooling_is_weighted_sum_of_states():
    pooling = AttentionPooling(3)
    hidden_states = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    pooled, weights = pooling(hidden_states, mask, return_weights=True)
    expected = torch.einsum("bs,bsh->bh", weights, hidden_states)
    torch.testing.assert_close(pooled, expected)


def test_return_attention_requires_attention_pooling():
    model = make_model(pooling="mean")
    input_ids, attention_mask = right_padded_batch([3], seed=8)
    with pytest.raises(ValueError, match="pooling"):
        model(input_ids, attention_mask, return_attention=True)


def test_student_overfits_small_batch():
    model = make_model(freeze_embeddings=False, num_labels=2, hidden_size=16, **NO_DROPOUT)
    input_ids, attention_mask = right_padded_batch([5, 7, 3, 8, 6, 4, 8, 2], seed=9)
    labels = torch.randint(0, 2, (8,), generator=torch.Generator().manual_seed(10))
    optimizer = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), lr=1e-2)
    model.train()
    for _ in range(100):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(input_ids, attention_mask), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(input_ids, attention_mask)
    assert nn.functional.cross_entropy(logits, labels).item() < 0.05
    assert torch.equal(logits.argmax(dim=1), labels)


def test_save_and_load_give_identical_outputs(tmp_path: Path):
    model = make_model(rnn="gru", num_layers=2, pooling="attention").eval()
    input_ids, attention_mask = right_padded_batch([4, 6, 2], seed=11)
    model.save(tmp_path / "student")
    loaded = RNNStudent.load(tmp_path / "student")
    assert loaded.config == model.config
    assert not loaded.training
    assert list(loaded.state_dict()) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(loaded(input_ids, attention_mask), model(input_ids, attention_mask))
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]


def test_loaded_student_keeps_embedding_frozen(tmp_path: Path):
    make_model(freeze_embeddings=True).save(tmp_path)
    assert not RNNStudent.load(tmp_path).embedding.weight.requires_grad


def test_load_corrupt_checkpoint_raises_clear_error(tmp_path: Path):
    make_model().save(tmp_path)
    weights_path = tmp_path / WEIGHTS_NAME
    data = weights_path.read_bytes()
    weights_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(weights_path)):
        RNNStudent.load(tmp_path)


def test_load_missing_weights_raises_clear_error(tmp_path: Path):
    make_model().save(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        RNNStudent.load(tmp_path)


def test_load_with_mismatched_config_raises_clear_error(tmp_path: Path):
    make_model().save(tmp_path)
    config_path = tmp_path / CONFIG_NAME
    values = json.loads(config_path.read_text())
    values["hidden_size"] += 1
    config_path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=str(tmp_path / WEIGHTS_NAME)):
        RNNStudent.load(tmp_path)


def test_load_with_corrupt_config_raises_clear_error(tmp_path: Path):
    make_model().save(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=str(tmp_path / CONFIG_NAME)):
        RNNStudent.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rnn", "rnn"),
        ("num_layers", 5),
        ("num_layers", 0),
        ("pooling", "sum"),
        ("embedding_dropout", 1.5),
        ("weight_dropout", -0.1),
        ("head_dropout", 1.0),
        ("hidden_size", 0),
        ("head_hidden_size", -1),
        ("padding_idx", VOCAB_SIZE),
        ("bidirectional", "yes"),
        ("num_labels", 2.0),
    ],
)
def test_config_rejects_bad_values(field: str, value: object):
    with pytest.raises(ValueError, match=field):
        make_config(**{field: value})


def test_config_round_trips_through_dict():
    config = make_config(rnn="gru", pooling="max", weight_dropout=0)
    assert StudentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.to_dict() == dataclasses.asdict(config)


def test_config_from_dict_rejects_unknown_keys():
    values = {**make_config().to_dict(), "nhid": 3}
    with pytest.raises(ValueError, match="nhid"):
        StudentConfig.from_dict(values)


def test_parameter_counts_count_frozen_embedding_as_not_trainable():
    frozen = make_model(freeze_embeddings=True).parameter_counts()
    trainable = make_model(freeze_embeddings=False).parameter_counts()
    embedding_size = VOCAB_SIZE * 12
    assert frozen["embedding"] == trainable["embedding"] == embedding_size
    assert frozen["total"] == trainable["total"]
    assert frozen["trainable"] == frozen["total"] - embedding_size
    assert trainable["trainable"] == trainable["total"]


@pytest.mark.parametrize("head_hidden_size", [0, 8])
def test_output_has_one_logit_per_label(head_hidden_size: int):
    model = make_model(head_hidden_size=head_hidden_size, num_labels=5)
    input_ids, attention_mask = right_padded_batch([3, 4], seed=12)
    assert model(input_ids, attention_mask.bool()).shape == (2, 5)


class GatedMeanPooling(nn.Module):
    """A user pooling with parameters: a learned gate per time step, mean over valid steps."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.gate = nn.Linear(size, 1)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(self.gate(hidden_states)) * mask.unsqueeze(-1)  # (batch, seq, 1)
        return (gates * hidden_states).sum(1) / mask.sum(1, keepdim=True)


@pytest.fixture
def gated_pooling():
    register_pooling("gated", lambda config: GatedMeanPooling(config.output_size))
    yield "gated"
    POOLINGS.unregister("gated")


@pytest.fixture
def elman_cell():
    register_cell("elman", nn.RNN)
    yield "elman"
    CELLS.unregister("elman")


def test_registered_pooling_builds_a_student_that_saves_and_loads(gated_pooling, tmp_path: Path):
    model = make_model(pooling=gated_pooling, **NO_DROPOUT).eval()
    input_ids, attention_mask = right_padded_batch([4, 6, 2], seed=13)
    with torch.no_grad():
        logits = model(input_ids, attention_mask)
    assert logits.shape == (3, 3)
    assert "attention.gate.weight" in model.state_dict()
    model.save(tmp_path)
    with torch.no_grad():
        assert torch.equal(RNNStudent.load(tmp_path)(input_ids, attention_mask), logits)


def test_registered_cell_builds_a_student(elman_cell):
    model = make_model(rnn=elman_cell, num_layers=2).eval()
    assert isinstance(model.encoder.layers[0].forward_rnn.module, nn.RNN)
    input_ids, attention_mask = right_padded_batch([4, 6], seed=14)
    assert model(input_ids, attention_mask).shape == (2, 3)


def test_registered_pooling_and_cell_pass_config_validation(gated_pooling, elman_cell):
    from distilrnn.config import load_config

    settings = load_config(None, [f"student.pooling={gated_pooling}", "student.rnn=elman"]).student
    assert (settings.pooling, settings.rnn) == ("gated", "elman")


def test_unknown_pooling_is_a_config_error_listing_the_registered_ones(gated_pooling):
    with pytest.raises(
        ConfigError, match=r"must be attention, max, mean, last or gated, got 'sum'"
    ):
        make_config(pooling="sum")


def test_state_dict_names_are_those_saved_students_have():
    names = list(make_model(num_layers=2).state_dict())
    rnn = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    expected = [
        "embedding.weight",
        *(
            f"encoder.layers.{layer}.{direction}_rnn.module.{name}"
            for layer in (0, 1)
            for direction in ("forward", "backward")
            for name in rnn
        ),
        "attention.attention_vector",
        "head.hidden.weight",
        "head.hidden.bias",
        "head.output.weight",
        "head.output.bias",
    ]
    assert names == expected
    assert list(make_model(pooling="max").state_dict()) == [
        n for n in list(make_model().state_dict()) if not n.startswith("attention.")
    ]
