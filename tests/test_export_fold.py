"""Tests for `distilrnn.export.fold`: a CNN student's first convolution precomputed per
embedding row gives the student's logits, eagerly and in the exported graph (float and int8),
for one and two layers, odd kernel widths, each pooling and siamese pairs; the bundle records
the fold, drops the Conv it replaces, and `fold_first_layer = false` keeps it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import VOCAB, build_tiny_tokenizer
from test_student_encoders import LENGTHS, make_student, padded_batch
from transformers import PreTrainedTokenizerFast

from distilrnn.bench.compute import model_macs
from distilrnn.bench.flops import student_macs
from distilrnn.config import ExportSettings
from distilrnn.export import BundleModel, export_bundle, export_onnx
from distilrnn.export.fold import FoldedStudent, can_fold
from distilrnn.export.quantize import quantize_onnx
from distilrnn.runtime import INPUT_NAMES, PAIR_INPUT_NAMES, Predictor

TEXTS = [
    "the film is good",
    "a bad , dull plot",
    "good",
    "the acting is not good and the plot is bad , but the film is fine",
]


def with_trained_bias(student: torch.nn.Module) -> torch.nn.Module:
    """Nonzero convolution biases (a fresh Conv1d's are small), so the fold must carry them."""
    with torch.no_grad():
        for layer in student.encoder.layers:
            layer.bias.add_(0.3)
    return student


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_layers": 1, "kernel_size": 3, "pooling": "max"},
        {"num_layers": 2, "kernel_size": 5, "pooling": "attention"},
        {"num_layers": 1, "kernel_size": 1, "pooling": "mean"},
    ],
)
def test_the_folded_student_gives_the_students_logits_eagerly_and_exported(
    overrides: dict, tmp_path: Path
):
    student = with_trained_bias(make_student("cnn", **overrides))
    folded = FoldedStudent(student)
    input_ids, mask = padded_batch(LENGTHS, seed=3)
    with torch.no_grad():
        eager = student(input_ids, mask).numpy()
        np.testing.assert_allclose(folded(input_ids, mask).numpy(), eager, atol=1e-5, rtol=0)
    export_onnx(BundleModel(folded), tmp_path / "model.onnx")
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convolutions) == overrides["num_layers"] - 1  # the first one is in the table
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = dict(zip(INPUT_NAMES, (input_ids.numpy(), mask.numpy()), strict=True))
    np.testing.assert_allclose(session.run(None, feeds)[0], eager, atol=1e-4, rtol=0)
    quantize_onnx(tmp_path / "model.onnx", tmp_path / "int8.onnx")
    session = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, feeds)[0], eager, atol=0.05, rtol=0)


def test_a_folded_siamese_student_reads_each_text_of_a_pair(tmp_path: Path):
    student = with_trained_bias(make_student("cnn", pair_design="siamese", pooling="attention"))
    bundle = BundleModel(FoldedStudent(student))
    assert bundle.input_names == PAIR_INPUT_NAMES
    export_onnx(bundle, tmp_path / "model.onnx")
    first, first_mask = padded_batch(LENGTHS, seed=8)
    second, second_mask = padded_batch(LENGTHS[::-1], seed=9)
    with torch.no_grad():
        eager = student(first, first_mask, second, second_mask).numpy()
    arrays = [t.numpy() for t in (first, first_mask, second, second_mask)]
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(None, dict(zip(PAIR_INPUT_NAMES, arrays, strict=True)))[0]
    np.testing.assert_allclose(exported, eager, atol=1e-4, rtol=0)


def test_only_a_convolutional_student_folds():
    assert can_fold(make_student("cnn"))
    assert not can_fold(make_student("bag"))
    with pytest.raises(ValueError, match="only a cnn student folds"):
        FoldedStudent(make_student("bag"))


@pytest.mark.parametrize("quantize", [False, True])
def test_the_bundle_folds_by_default_says_so_and_ignores_batching(quantize: bool, tmp_path: Path):
    student = with_trained_bias(make_student("cnn", num_layers=1, pooling="max"))
    tokenizer = build_tiny_tokenizer(tmp_path / "tokenizer") / "tokenizer.json"
    labels = ["negative", "positive"]
    summary = export_bundle(
        student, tokenizer, tmp_path / "bundle", ExportSettings(quantize=quantize), labels=labels
    )
    folded = summary["compression"]["fold_first_layer"]
    assert folded["table_columns"] == student.config.kernel_size * student.config.hidden_size
    assert folded["table_rows"] == len(VOCAB)
    graph = onnx.load(str(tmp_path / "bundle" / "model.onnx")).graph
    assert not [node for node in graph.node if node.op_type == "Conv"]
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert "first convolution is precomputed" in card
    macs = model_macs(tmp_path / "bundle", "student", TEXTS, tmp_path)
    config, length = student.config, macs["length"]
    first = length * config.hidden_size * config.embedding_dim * config.kernel_size
    assert macs["per_sentence"] == student_macs(config, length) - first
    predictor = Predictor(tmp_path / "bundle")
    student.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tokenizer"))
    expected = student.predict_logits(TEXTS)
    atol = 0.05 if quantize else 1e-4
    np.testing.assert_allclose(predictor.logits(TEXTS), expected, atol=atol, rtol=0)
    alone = Predictor(tmp_path / "bundle", batch_size=1).logits(TEXTS)
    np.testing.assert_allclose(predictor.logits(TEXTS), alone, atol=1e-6, rtol=0)


def test_fold_first_layer_off_keeps_the_convolution(tmp_path: Path):
    student = make_student("cnn", num_layers=1)
    tokenizer = build_tiny_tokenizer(tmp_path / "tokenizer") / "tokenizer.json"
    settings = ExportSettings(fold_first_layer=False)
    summary = export_bundle(
        student, tokenizer, tmp_path / "bundle", settings, labels=["negative", "positive"]
    )
    assert summary["compression"]["fold_first_layer"] is None
    graph = onnx.load(str(tmp_path / "bundle" / "model.onnx")).graph
    assert [node.op_type for node in graph.node].count("Conv") == 1
