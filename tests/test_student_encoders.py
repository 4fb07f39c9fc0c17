"""Tests for the students without recurrence (bag of embeddings, CNN): padding invariance,
siamese pairs and regression, distillation through the student path, save / load, narrowing,
export (float parity, int8, batch invariance in the bundle), the settings they refuse, and the
multiply-add counts of `distilrnn.bench.flops`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import VOCAB, make_sentences
from datasets import Dataset
from torch.utils.flop_counter import FlopCounterMode

import distilrnn
from distilrnn.bench.flops import (
    encoder_macs,
    head_macs,
    pooling_macs,
    student_macs,
    teacher_macs,
)
from distilrnn.config import StudentSettings
from distilrnn.config_io import student_settings
from distilrnn.errors import ConfigError, StudentError
from distilrnn.export import BundleModel, export_onnx
from distilrnn.export.quantize import quantize_onnx
from distilrnn.registry import CELLS
from distilrnn.runtime import PAIR_INPUT_NAMES, Predictor
from distilrnn.student import RNNStudent, Student, StudentConfig
from distilrnn.student.build import build_student, start_from
from distilrnn.student.encoders import BagEncoder, ConvolutionalEncoder

NO_DROPOUT = {
    "embedding_dropout": 0.0,
    "input_dropout": 0.0,
    "hidden_dropout": 0.0,
    "weight_dropout": 0.0,
    "head_dropout": 0.0,
}
# the non-recurrent students, each as small as a test needs
ENCODERS = {
    "bag": {"encoder": "bag"},
    "cnn": {"encoder": "cnn", "hidden_size": 10, "num_layers": 2, "kernel_size": 5},
}
LENGTHS = [4, 11, 1, 7, 2, 11, 5]  # batch and length both differ from the export example


def make_student(encoder: str, seed: int = 0, **overrides: object) -> RNNStudent:
    values = {
        "vocab_size": len(VOCAB),
        "embedding_dim": 12,
        "num_labels": 2,
        "head_hidden_size": 8,
        "padding_idx": VOCAB.index("[PAD]"),
        **ENCODERS[encoder],
        **overrides,
    }
    torch.manual_seed(seed)
    return RNNStudent(StudentConfig(**values)).eval()


def padded_batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random right-padded `(batch, max(lengths))` ids (pads are id 0) and their mask."""
    generator = torch.Generator().manual_seed(seed)
    seq = max(lengths)
    mask = (torch.arange(seq).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    input_ids = torch.randint(5, len(VOCAB), (len(lengths), seq), generator=generator)
    return input_ids * mask, mask


def one_by_one(model: RNNStudent, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row of a padded batch on its own, cut to its length."""
    rows = []
    for row, length in enumerate(mask.sum(dim=1).tolist()):
        rows.append(model(input_ids[row : row + 1, :length], mask[row : row + 1, :length]))
    return torch.cat(rows)


# the model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoder", ["bag", "cnn"])
@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_student_ignores_padding(encoder: str, pooling: str):
    model = make_student(encoder, pooling=pooling)
    input_ids, mask = padded_batch(LENGTHS, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids, mask), one_by_one(model, input_ids, mask), atol=1e-6, rtol=1e-5
        )


def test_encoders_are_the_modules_the_config_names():
    bag, cnn = make_student("bag"), make_student("cnn")
    assert isinstance(bag.encoder, BagEncoder) and not list(bag.encoder.parameters())
    assert isinstance(cnn.encoder, ConvolutionalEncoder)
    assert [layer.weight.shape for layer in cnn.encoder.layers] == [(10, 12, 5), (10, 10, 5)]
    assert Student is RNNStudent


@pytest.mark.parametrize("encoder, width", [("bag", 12), ("cnn", 10), ("rnn", 2 * 7)])
def test_encode_gives_the_pooled_vector_the_head_reads(encoder: str, width: int):
    if encoder == "rnn":
        torch.manual_seed(0)
        model = RNNStudent(StudentConfig(vocab_size=len(VOCAB), embedding_dim=12, hidden_size=7))
    else:
        model = make_student(encoder)
    model.eval()
    input_ids, mask = padded_batch(LENGTHS, seed=2)
    with torch.no_grad():
        pooled = model.encode(input_ids, mask)
        assert pooled.shape == (len(LENGTHS), width) == (len(LENGTHS), model.config.output_size)
        torch.testing.assert_close(model.head(pooled), model(input_ids, mask))


def test_cnn_reads_its_neighbours_and_the_bag_ignores_word_order():
    input_ids = torch.tensor([[6, 7, 8, 9, 10]])
    swapped = torch.tensor([[7, 6, 8, 9, 10]])
    mask = torch.ones_like(input_ids)
    bag, cnn = make_student("bag", pooling="mean"), make_student("cnn", pooling="mean")
    with torch.no_grad():
        torch.testing.assert_close(bag(input_ids, mask), bag(swapped, mask))
        assert not torch.allclose(cnn(input_ids, mask), cnn(swapped, mask))


@pytest.mark.parametrize("encoder", ["bag", "cnn"])
def test_siamese_regression_student_reads_each_text_of_a_pair_alike(encoder: str):
    model = make_student(encoder, num_labels=1, task_type="regression", pair_design="siamese")
    first, first_mask = padded_batch([3, 9, 5], seed=3)
    second, second_mask = padded_batch([8, 2, 6], seed=4)
    with torch.no_grad():
        scores = model(first, first_mask, second, second_mask)
        swapped = model(second, second_mask, first, first_mask)
        alone = torch.cat(
            [
                model(
                    first[i : i + 1, :n], first_mask[i : i + 1, :n], second[i : i + 1, :m],
                    second_mask[i : i + 1, :m],
                )
                for i, (n, m) in enumerate([(3, 8), (9, 2), (5, 6)])
            ]
        )  # fmt: skip
    assert scores.shape == (3, 1)
    # [h1, h2, h1 * h2, |h1 - h2|] is symmetric only up to the order of h1 and h2 in the head
    assert not torch.allclose(scores, swapped)
    torch.testing.assert_close(scores, alone, atol=1e-6, rtol=1e-5)


def test_a_student_saved_before_encoders_existed_loads_as_an_rnn(tmp_path: Path):
    torch.manual_seed(0)
    model = RNNStudent(StudentConfig(vocab_size=len(VOCAB), embedding_dim=12, hidden_size=6))
    model.save(tmp_path)
    config_path = tmp_path / "config.json"
    values = json.loads(config_path.read_text())
    del values["encoder"], values["kernel_size"]
    config_path.write_text(json.dumps(values))
    loaded = RNNStudent.load(tmp_path)
    assert loaded.config.encoder == "rnn"
    input_ids, mask = padded_batch([3, 5], seed=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids, mask), model.eval()(input_ids, mask))


# settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, name",
    [
        ({"encoder": "transformer"}, "student.encoder"),
        ({"encoder": "bag", "rnn": "gru"}, "student.rnn"),
        ({"encoder": "bag", "hidden_size": 128}, "student.hidden_size"),
        ({"encoder": "bag", "num_layers": 2}, "student.num_layers"),
        ({"encoder": "bag", "hidden_dropout": 0.5}, "student.hidden_dropout"),
        ({"encoder": "cnn", "bidirectional": False}, "student.bidirectional"),
        ({"encoder": "cnn", "weight_dropout": 0.5}, "student.weight_dropout"),
        ({"encoder": "cnn", "pooling": "last"}, "student.pooling"),
        ({"encoder": "bag", "pooling": "last"}, "student.pooling"),
        ({"encoder": "cnn", "kernel_size": 4}, "student.kernel_size"),
        ({"encoder": "rnn", "kernel_size": 5}, "student.kernel_size"),
        (
            {"encoder": "bag", "pooling": "max", "init_from": "x", "embedding_projection": 4},
            "student.embedding_projection",
        ),
    ],
)
def test_settings_an_encoder_cannot_use_are_refused_by_name(settings: dict, name: str):
    with pytest.raises(ConfigError, match=f"^{re.escape(name)}: "):
        student_settings(**settings)


def test_unused_settings_may_keep_their_defaults_and_dropouts_may_be_zero():
    bag = student_settings(encoder="bag", pooling="mean", weight_dropout=0.0, hidden_dropout=0.0)
    assert (bag.hidden_size, bag.rnn) == (256, "lstm")
    cnn = student_settings(encoder="cnn", kernel_size=7, num_layers=3, weight_dropout=0.0)
    assert cnn.kernel_size == 7


def test_the_model_config_refuses_what_its_encoder_cannot_use():
    with pytest.raises(ConfigError, match=r"^StudentConfig\.num_layers: the bag encoder"):
        StudentConfig(vocab_size=10, embedding_dim=4, encoder="bag", num_layers=2)
    with pytest.raises(ConfigError, match=r"^StudentConfig\.kernel_size: must be an odd"):
        StudentConfig(vocab_size=10, embedding_dim=4, encoder="cnn", kernel_size=0)


# narrowing ------------------------------------------------------------------------------------
def test_a_fresh_bag_student_is_as_wide_as_its_projected_embedding(tiny_teacher_dir: Path):
    settings = student_settings(encoder="bag", pooling="mean", embedding_projection=8)
    model = build_student(settings, tiny_teacher_dir, 2, VOCAB.index("[PAD]")).eval()
    assert model.embedding.weight.shape == (len(VOCAB), 8)
    assert model.config.output_size == 8 and model.head.hidden.in_features == 8
    input_ids, mask = padded_batch([4, 2], seed=6)
    assert model.encode(input_ids, mask).shape == (2, 8)


@pytest.mark.parametrize(
    "encoder, overrides",
    [
        ("bag", {"pooling": "mean"}),
        ("bag", {"pooling": "attention"}),
        ("cnn", {"pooling": "max"}),
    ],
)
def test_narrowing_at_full_rank_keeps_the_logits_and_below_it_narrows(encoder, overrides):
    model = make_student(encoder, head_hidden_size=16, **overrides)
    input_ids, mask = padded_batch(LENGTHS, seed=7)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(VOCAB))
    with torch.no_grad():
        full = model.narrow(12, weights).eval()
        torch.testing.assert_close(
            full(input_ids, mask), model(input_ids, mask), atol=1e-5, rtol=1e-5
        )
        narrow = model.narrow(4, weights).eval()
    assert narrow.embedding.weight.shape == (len(VOCAB), 4)
    assert narrow(input_ids, mask).shape == (len(LENGTHS), 2)


def test_a_bag_student_that_cannot_be_narrowed_says_why():
    with pytest.raises(StudentError, match=r"max.*not linear"):
        make_student("bag", pooling="max").narrow(4)
    siamese = make_student("bag", pooling="mean", pair_design="siamese", head_hidden_size=16)
    with pytest.raises(StudentError, match="siamese bag student"):
        siamese.narrow(4)


@pytest.mark.parametrize(
    "encoder, trained",
    [
        ("cnn", ["encoder.layers.0.bias", "encoder.layers.0.weight"]),
        ("bag", ["attention.attention_vector", "head.hidden.bias", "head.hidden.weight"]),
    ],
)
def test_training_the_first_layer_trains_what_reads_the_narrowed_embedding(
    tmp_path: Path, encoder: str, trained: list[str]
):
    parent = make_student(encoder, head_hidden_size=16)
    parent.save(tmp_path / "parent")
    settings = student_settings(
        head_hidden_size=16,
        init_from="parent",
        embedding_projection=4,
        train_layers="first",
        **ENCODERS[encoder],
    )
    train_set = Dataset.from_dict({"input_ids": [[2, 5, 6, 3], [2, 7, 3]]})
    student = start_from(tmp_path / "parent", settings, 2, train_set)
    assert sorted(n for n, p in student.named_parameters() if p.requires_grad) == trained
    assert student.config.embedding_dim == 4


# distillation, saving, export -----------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path):
    return distilrnn.Teacher.from_pretrained(str(tiny_teacher_dir), max_length=16)


@pytest.fixture(scope="module")
def task():
    rows, dev = make_sentences(48, seed=3), make_sentences(20, seed=4)
    return distilrnn.Task.from_lists(
        [t for t, _ in rows],
        [label for _, label in rows],
        validation=([t for t, _ in dev], [label for _, label in dev]),
        label_names=["negative", "positive"],
    )


TRAINING = {
    "bag": {"encoder": "bag", "pooling": "mean", "embeddings": "trainable"},
    "cnn": {"encoder": "cnn", "hidden_size": 16, "num_layers": 2, "pooling": "max"},
}


@pytest.fixture(scope="module", params=["bag", "cnn"])
def distilled(request, teacher, task):
    """(encoder, student distilled with soft targets, the same student before training)."""
    settings = student_settings(
        objective="kl",
        temperature=2.0,
        head_hidden_size=16,
        epochs=3,
        learning_rate=1e-2,
        max_length=16,
        batch_size=16,
        **TRAINING[request.param],
    )
    torch.manual_seed(0)
    untrained = build_student(settings, teacher, 2, teacher.tokenizer.pad_token_id)
    return request.param, distilrnn.distill(teacher, task, settings=settings), untrained


def soft_target_loss(student: RNNStudent, teacher, texts: list[str]) -> float:
    """KL(teacher || student) of temperature-2 distributions, averaged over `texts`."""
    teacher_logits = torch.from_numpy(teacher.logits(texts)) / 2.0
    student_logits = torch.from_numpy(student.predict_logits(texts)) / 2.0
    return float(
        torch.nn.functional.kl_div(
            student_logits.log_softmax(-1), teacher_logits.log_softmax(-1), log_target=True,
            reduction="batchmean",
        )
    )  # fmt: skip


def test_student_distils_with_soft_targets_through_the_student_path(distilled, teacher, task):
    encoder, student, untrained = distilled
    assert student.config.encoder == encoder
    untrained.tokenizer, untrained.metrics = student.tokenizer, student.metrics
    texts = task.train.texts
    assert soft_target_loss(student, teacher, texts) < soft_target_loss(untrained, teacher, texts)


def test_saved_student_loads_from_safetensors_with_the_same_logits(distilled, task, tmp_path):
    _, student, _ = distilled
    folder = student.save_pretrained(tmp_path / "student")
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    loaded = RNNStudent.from_pretrained(folder)
    texts = task.test.texts
    np.testing.assert_allclose(loaded.predict_logits(texts), student.predict_logits(texts))


def test_float_bundle_matches_the_student_and_ignores_batching(distilled, task, tmp_path):
    encoder, student, _ = distilled
    texts = task.train.texts + task.test.texts
    predictor = student.export(tmp_path / "bundle")
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert {"bag": "A bag-of-embeddings text", "cnn": "A convolutional text"}[encoder] in card
    np.testing.assert_allclose(
        predictor.logits(texts), student.predict_logits(texts), atol=1e-4, rtol=0
    )
    alone = Predictor(tmp_path / "bundle", batch_size=1).logits(texts)
    np.testing.assert_allclose(predictor.logits(texts), alone, atol=1e-6, rtol=0)


def test_int8_bundle_runs_through_the_predictor_and_ignores_batching(distilled, task, tmp_path):
    encoder, student, _ = distilled
    texts = task.train.texts + task.test.texts
    predictor = student.export(tmp_path / "bundle", quantize=True)
    graph = onnx.load(str(tmp_path / "bundle" / "model.onnx")).graph
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    if encoder == "cnn":  # the folded first layer's table and the other kernels are weights
        tables = {f"student.table_{tap}_int8" for tap in range(student.config.kernel_size)}
        assert tables | {"student.student.encoder.layers.1.weight_int8"} <= int8
    else:
        assert "student.embedding.weight_int8" in int8
    logits = predictor.logits(texts)
    np.testing.assert_allclose(logits, student.predict_logits(texts), atol=0.05, rtol=0)
    alone = Predictor(tmp_path / "bundle", batch_size=1).logits(texts)
    np.testing.assert_allclose(logits, alone, atol=1e-6, rtol=0)
    assert predictor.config["student"]["encoder"] == encoder


@pytest.mark.parametrize("encoder", ["bag", "cnn"])
def test_siamese_graph_matches_the_eager_student_on_padded_pairs(encoder: str, tmp_path: Path):
    model = make_student(encoder, pair_design="siamese", pooling="attention")
    bundle = BundleModel(model)
    assert bundle.input_names == PAIR_INPUT_NAMES
    export_onnx(bundle, tmp_path / "model.onnx")
    quantize_onnx(tmp_path / "model.onnx", tmp_path / "int8.onnx")
    first, first_mask = padded_batch(LENGTHS, seed=8)
    second, second_mask = padded_batch(LENGTHS[::-1], seed=9)
    arrays = [t.numpy() for t in (first, first_mask, second, second_mask)]
    with torch.no_grad():
        eager = model(first, first_mask, second, second_mask).numpy()
    for name, atol in (("model.onnx", 1e-5), ("int8.onnx", 0.05)):
        session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        exported = session.run(None, dict(zip(PAIR_INPUT_NAMES, arrays, strict=True)))[0]
        np.testing.assert_allclose(exported, eager, atol=atol, rtol=0)


# multiply-adds --------------------------------------------------------------------------------
def counted_macs(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """What torch's own flop counter finds in one forward pass, in MACs (its FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def one_sentence(length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return padded_batch([length], seed)


@pytest.mark.parametrize(
    "overrides",
    [
        {"encoder": "bag", "pooling": "mean"},
        {"encoder": "bag", "pooling": "attention", "head_hidden_size": 0},
        {"encoder": "cnn", "num_layers": 3, "hidden_size": 9, "kernel_size": 3, "pooling": "max"},
        {"encoder": "rnn", "rnn": "gru", "num_layers": 2, "hidden_size": 7},
        {"encoder": "rnn", "rnn": "gru", "bidirectional": False, "pooling": "last"},
        {"encoder": "cnn", "hidden_size": 6, "pair_design": "siamese", "pooling": "mean"},
    ],
)
def test_student_macs_match_torchs_flop_counter(overrides: dict):
    # The counter sees matrix products and convolutions, the pooling's weighted sum (a batched
    # product) among them; attention's score is a matrix-vector product it skips, so that half
    # of attention's pooling cost is checked by hand here.
    values = {"vocab_size": len(VOCAB), "embedding_dim": 12, "head_hidden_size": 8}
    config = StudentConfig(**{**values, **NO_DROPOUT, **overrides})
    torch.manual_seed(0)
    model = RNNStudent(config).eval()
    ids, mask = one_sentence(9)
    pair = one_sentence(4, seed=1) if config.is_siamese else ()
    counted = counted_macs(model, ids, mask, *pair)
    pair_length = 4 if config.is_siamese else None
    scored = int(config.pooling == "attention") * config.output_size  # per state, uncounted
    pooled = scored * (9 + (4 if pair else 0))
    assert student_macs(config, 9, pair_length) - pooled == counted > 0
    per_value = {"mean": 1, "attention": 2, "max": 0, "last": 0}[config.pooling]
    assert pooling_macs(config, 9) == per_value * 9 * config.output_size


def test_lstm_macs_are_four_thirds_of_the_counted_gru():
    # torch's counter does not see inside the fused LSTM kernel, but it does count the GRU's
    # products; an LSTM has 4 gates where a GRU has 3, over the same input and state widths.
    shape = {"vocab_size": len(VOCAB), "embedding_dim": 12, "hidden_size": 7, "num_layers": 2}
    lstm, gru = StudentConfig(**shape), StudentConfig(**shape, rnn="gru")
    gru_model = RNNStudent(gru).eval()
    ids, mask = one_sentence(6)
    weighted_sum = 6 * gru.output_size  # attention's weighted sum, a counted batched product
    gru_encoder = counted_macs(gru_model, ids, mask) - head_macs(gru) - weighted_sum
    assert encoder_macs(lstm, 6) * 3 == gru_encoder * 4
    # by hand: 4 gates x 7 units x (12 inputs + 7 states), then (14 + 7), per token, direction
    assert encoder_macs(lstm, 6) == 2 * 6 * 4 * 7 * ((12 + 7) + (14 + 7))


def test_a_registered_cell_counts_the_gates_its_input_weight_holds():
    CELLS.register("elman", torch.nn.RNN)
    try:
        config = StudentConfig(vocab_size=10, embedding_dim=4, rnn="elman", hidden_size=3)
        assert encoder_macs(config, 5) == 2 * 5 * 1 * 3 * (4 + 3)
    finally:
        CELLS.unregister("elman")


def test_bag_student_costs_only_its_pooling_and_head():
    config = make_student("bag", pooling="mean").config
    assert encoder_macs(config, 20) == 0
    assert student_macs(config, 20) == 20 * 12 + 12 * 8 + 8 * 2


def test_pair_length_is_for_siamese_students_only():
    with pytest.raises(ValueError, match="siamese"):
        student_macs(make_student("bag", pair_design="joint").config, 5, 3)
    siamese = make_student("cnn", pair_design="siamese").config
    assert student_macs(siamese, 5) == student_macs(siamese, 5, 5)


@pytest.mark.parametrize("length", [1, 10, 23])
def test_teacher_macs_match_torchs_flop_counter(length: int):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
        attn_implementation="eager",  # the counter does not see inside CPU sdpa
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    ids = torch.full((1, length), 6)
    counted = counted_macs(lambda i, m: model(input_ids=i, attention_mask=m), ids, ids * 0 + 1)
    assert teacher_macs(config, length) == counted


def test_distilbert_style_config_names_its_sizes_apart():
    from transformers import DistilBertConfig

    config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=2)
    length = 8
    layer = 4 * length * 32**2 + 2 * length**2 * 32 + 2 * length * 32 * 64
    assert teacher_macs(config, length) == 2 * layer + 32**2 + 32 * 2


def test_settings_carry_the_encoder_into_the_student(tiny_teacher_dir: Path):
    settings = dataclasses.replace(StudentSettings(), **TRAINING["cnn"], head_hidden_size=8)
    model = build_student(settings, tiny_teacher_dir, 2, 0)
    assert (model.config.encoder, model.config.kernel_size) == ("cnn", 3)
    assert model.config.output_size == 16
