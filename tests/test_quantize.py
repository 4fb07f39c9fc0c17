"""Tests for the bundle's weight-only int8 quantisation: a sentence's prediction does not depend
on the batch it arrives in, for every bundle setting; int8 stays close to float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import build_tiny_student, make_sentences

from distilrnn.config import ExportSettings
from distilrnn.export import export_student
from distilrnn.export.quantize import _symmetric_int8
from distilrnn.runtime import MODEL_NAME, Predictor

LABELS = ["negative", "positive"]
# texts of many lengths, so one batch of all of them is padded and one-by-one is not
TEXTS = [text for text, _ in make_sentences(24, seed=3)] + ["good", "the film is dull and weak"]
SETTINGS = {
    "float": {},
    "int8": {"quantize": True},
    "int8-embedding-4bit": {"quantize": True, "embedding_bits": 4},
    "pruned-int8": {"quantize": True, "prune_vocab": "PRUNE"},
    "rank-int8": {"quantize": True, "embedding_rank": 16},
}
DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeLSTM", "ConvInteger"}


def export(tmp_path: Path, name: str, rnn: str, bidirectional: bool, **settings) -> Path:
    """A tiny student (embedding 32 wide) exported with `settings` to `tmp_path / name`."""
    student_dir = tmp_path / "student"
    if not student_dir.exists():
        build_tiny_student(student_dir, embedding_dim=32, hidden_size=16, rnn=rnn,
                           bidirectional=bidirectional)  # fmt: skip
    if settings.get("prune_vocab") == "PRUNE":
        kept = tmp_path / "kept.txt"
        kept.write_text("".join(f"{text}\n" for text in TEXTS[:12]), encoding="utf-8")
        settings["prune_vocab"] = str(kept)
    bundle = tmp_path / name
    export_student(student_dir, bundle, ExportSettings(labels=LABELS, **settings))
    return bundle


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_bundle_setting_predicts_a_text_alike_alone_and_in_a_batch(
    tmp_path: Path, setting: str, rnn: str, bidirectional: bool
):
    bundle = export(tmp_path, setting, rnn, bidirectional, **SETTINGS[setting])
    one_by_one = Predictor(bundle, batch_size=1).predict_proba(TEXTS)
    batched = Predictor(bundle, batch_size=64).predict_proba(TEXTS)
    np.testing.assert_array_equal(one_by_one.argmax(axis=1), batched.argmax(axis=1))
    np.testing.assert_allclose(one_by_one, batched, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_int8_logits_stay_close_to_the_float_ones(tmp_path: Path, rnn: str):
    full = Predictor(export(tmp_path, "float", rnn, True)).logits(TEXTS)
    int8 = Predictor(export(tmp_path, "int8", rnn, True, quantize=True)).logits(TEXTS)
    assert not np.array_equal(int8, full)  # the weights were rounded
    np.testing.assert_allclose(int8, full, rtol=0, atol=0.02)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_int8_stores_the_weights_as_int8_and_computes_no_activation_in_int8(
    tmp_path: Path, rnn: str
):
    # GRU and LSTM compute in int8 unless told not to (tests/test_gru_int8.py, test_lstm_int8)
    bundle = export(tmp_path, "int8", rnn, False, quantize=True, gru_int8=False, lstm_int8=False)
    graph = onnx.load(str(bundle / MODEL_NAME)).graph
    ops = [node.op_type for node in graph.node]
    assert not DYNAMIC_OPS & set(ops)
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    recurrent = next(node for node in graph.node if node.op_type == rnn.upper())
    # the embedding table and the first layer's input and recurrent weights
    assert {f"{name}_int8" for name in recurrent.input[1:3]} <= int8
    restored = {node.input[0] for node in graph.node if node.op_type == "Cast"}
    assert len(int8) >= 3 and int8 <= restored


def test_symmetric_int8_keeps_each_channel_within_half_its_scale():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 5, 7)).astype(np.float32) * np.array([1, 10, 0.1, 5, 0])[
        None, :, None
    ].astype(np.float32)
    quantized, scale = _symmetric_int8(values, axis=1)
    assert quantized.dtype == np.int8 and scale.shape == (1, 5, 1)
    assert (np.abs(quantized * scale - values) <= scale / 2 + 1e-7).all()
    assert np.abs(quantized).max(axis=(0, 2)).tolist() == [127, 127, 127, 127, 0]


def test_quantize_benchmark_measures_each_mode_and_counts_label_flips(tmp_path: Path):
    from distilrnn.bench.quantize import DYNAMIC, MODES, benchmark_quantize, quantize_markdown

    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=32, hidden_size=16)
    (student_dir / "labels.json").write_text('{"names": ["negative", "positive"]}')
    rows = "".join(f"{text}\t{label}\n" for text, label in make_sentences(20, seed=1))
    labelled = tmp_path / "dev.tsv"
    labelled.write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    results = benchmark_quantize(student_dir, labelled, tmp_path / "work", 5, 1)
    assert list(results["modes"]) == ["float", DYNAMIC, *list(MODES)[1:]]
    for mode in MODES:
        assert results["modes"][mode]["label_flips_batch1_vs_64"] == 0
    assert results["modes"][DYNAMIC]["model_bytes"] < results["modes"]["float"]["model_bytes"]
    assert "labels flipped 1 vs 64" in quantize_markdown(results)
