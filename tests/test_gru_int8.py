"""The int8 GRU of a quantised bundle (`distilrnn.export.gru_int8`): its recurrent weights are
int8 and multiplied in int8, a sentence's logits do not depend on its batch, and they stay close
to the float bundle's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import build_tiny_student, make_sentences
from onnx import TensorProto, helper, numpy_helper

from distilrnn.bench.compute import model_macs
from distilrnn.bench.flops import student_macs
from distilrnn.config import ExportSettings
from distilrnn.export import export_student
from distilrnn.export.gru_int8 import gru_to_int8
from distilrnn.runtime import CONFIG_NAME, MODEL_NAME, Predictor
from distilrnn.student import RNNStudent

LABELS = ["negative", "positive"]
# many lengths (one of 40 tokens, far beyond the export example's 3), so batches are padded
TEXTS = [text for text, _ in make_sentences(40, seed=5)] + [
    "good",
    " ".join(["the film is a very dull and weak story"] * 4),
]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer bidirectional GRU student exported as float, weight-only int8 (`gru_int8`
    off) and int8 GRU."""
    root = tmp_path_factory.mktemp("gru-int8")
    student_dir = build_tiny_student(
        root / "student",
        max_length=64,
        embedding_dim=32,
        hidden_size=24,
        rnn="gru",
        num_layers=2,
        bidirectional=True,
    )
    settings = {
        "float": {},
        "weights": {"quantize": True, "gru_int8": False},
        "int8": {"quantize": True},
    }
    out = {}
    for name, values in settings.items():
        out[name] = root / name
        export_student(student_dir, out[name], ExportSettings(labels=LABELS, **values))
    return out


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {tensor.name: tensor for tensor in graph.initializer}


def test_int8_gru_bundle_multiplies_int8_recurrent_weights(bundles: dict[str, Path]):
    graph = onnx.load(str(bundles["int8"] / MODEL_NAME)).graph
    ops = [node.op_type for node in graph.node]
    assert "GRU" not in ops and ops.count("Scan") == 4  # 2 layers x 2 directions
    tensors = initializers(graph)
    steps = [a.g for node in graph.node for a in node.attribute if a.name == "body"]
    # the input projections (main graph) and the recurrent products (each Scan's step)
    products = [n for g in [graph, *steps] for n in g.node if n.op_type == "MatMulInteger"]
    assert len(products) == 8
    for product in products:
        weight = tensors[product.input[1]]
        assert weight.data_type == TensorProto.INT8
        assert (
            tensors[product.input[2]].data_type == TensorProto.UINT8
        )  # the activations' zero point
    recurrent = [tensors[n.input[1]] for g in steps for n in g.node if n.op_type == "MatMulInteger"]
    assert [tuple(w.dims) for w in recurrent] == [(24, 72)] * 4  # (hidden, 3 * hidden)
    # no float copy of a GRU weight is left: the float weights are the head and biases
    floats = [t for t in graph.initializer if t.data_type == TensorProto.FLOAT]
    assert max(int(np.prod(t.dims)) for t in floats) < 24 * 72
    record = json.loads((bundles["int8"] / CONFIG_NAME).read_text())["compression"]["quantize"]
    assert record["mode"] == "weights+gru-int8" and record["gru_int8_nodes"] == 4


def test_int8_gru_bundle_predicts_a_text_alike_alone_and_in_a_batch(bundles: dict[str, Path]):
    one_by_one = Predictor(bundles["int8"], batch_size=1).logits(TEXTS)
    batched = Predictor(bundles["int8"], batch_size=64).logits(TEXTS)
    np.testing.assert_allclose(one_by_one, batched, rtol=0, atol=1e-6)


def test_int8_gru_logits_stay_close_to_the_float_and_weight_only_ones(bundles: dict[str, Path]):
    logits = {name: Predictor(path).logits(TEXTS) for name, path in bundles.items()}
    assert not np.array_equal(logits["int8"], logits["weights"])  # activations were rounded
    np.testing.assert_allclose(logits["int8"], logits["float"], rtol=0, atol=0.02)
    # rounding each activation row to 8 bits adds less than rounding the weights did
    activation_error = np.abs(logits["int8"] - logits["weights"]).max()
    assert activation_error < np.abs(logits["weights"] - logits["float"]).max()
    assert (logits["int8"].argmax(1) == logits["float"].argmax(1)).mean() >= 0.95


def test_int8_gru_of_a_siamese_student_quantises_its_shared_weights_once(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", rnn="gru", pair_design="siamese")
    student = RNNStudent.from_pretrained(student_dir)
    pairs = [("the film is good", "a dull story"), ("great", "great and moving")]
    predictor = student.export(tmp_path / "int8", labels=["different", "same"], quantize=True)
    graph = onnx.load(str(tmp_path / "int8" / MODEL_NAME)).graph
    steps = [a.g for node in graph.node for a in node.attribute if a.name == "body"]
    assert len(steps) == 4  # 2 texts x 2 directions
    weights = [n.input[1] for g in [graph, *steps] for n in g.node if n.op_type == "MatMulInteger"]
    assert len(weights) == 8 and len(set(weights)) == 4  # W and R of each direction, once
    np.testing.assert_allclose(predictor.logits(pairs), student.predict_logits(pairs), atol=0.05)


def gru_model(hidden: int, width: int, initial_state: str, **attributes) -> onnx.ModelProto:
    """One ONNX GRU node `(seq, batch, width) -> Y (seq, 1, batch, hidden)` with random
    weights, as torch exports it (`linear_before_reset`) unless `attributes` say otherwise;
    `initial_state`: "" (none), "zeros" (a ConstantOfShape of the batch's, as torch exports it)
    or "input" (the graph input `h0`)."""
    rng = np.random.default_rng(0)
    weights = {
        "W": rng.normal(0, 0.3, (1, 3 * hidden, width)),
        "R": rng.normal(0, 0.3, (1, 3 * hidden, hidden)),
        "B": rng.normal(0, 0.3, (1, 6 * hidden)),
    }
    tensors = [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()]
    nodes = []
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["s", "b", width])]
    if initial_state == "zeros":  # (1, batch, hidden) from x's shape
        tensors += [
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([2], np.int64), "two"),
            numpy_helper.from_array(np.array([hidden], np.int64), "hidden"),
        ]
        nodes += [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Slice", ["shape", "one", "two"], ["batch"]),
            helper.make_node("Concat", ["one", "batch", "hidden"], ["size"], axis=0),
            helper.make_node("ConstantOfShape", ["size"], ["h0"]),
        ]
    elif initial_state == "input":
        graph_inputs.append(
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "b", hidden])
        )
    inputs = ["x", "W", "R", "B", "", "h0" if initial_state else ""]
    nodes.append(
        helper.make_node(
            "GRU",
            inputs,
            ["y", "y_h"],
            hidden_size=hidden,
            **{"linear_before_reset": 1, **attributes},
        )
    )
    graph = helper.make_graph(
        nodes,
        "gru",
        graph_inputs,
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["s", 1, "b", hidden]),
            helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, "b", hidden]),
        ],
        tensors,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("initial_state", ["zeros", ""])
@pytest.mark.parametrize("length", [1, 9])
def test_rewritten_gru_follows_the_onnx_gru_at_any_length(initial_state: str, length: int):
    model = gru_model(hidden=16, width=24, initial_state=initial_state)
    x = np.random.default_rng(1).normal(size=(length, 5, 24)).astype(np.float32)
    expected = run(model, x)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert gru_to_int8(rewritten) == 1
    onnx.checker.check_model(rewritten, full_check=True)
    assert [t.name for t in rewritten.graph.initializer if t.name in ("W", "R", "B")] == []
    got = run(rewritten, x)
    for want, have in zip(expected, got, strict=True):
        assert want.shape == have.shape
        np.testing.assert_allclose(have, want, rtol=0, atol=0.03)


@pytest.mark.parametrize(
    ("initial_state", "attributes"),
    [("", {"direction": "reverse"}), ("", {"linear_before_reset": 0}), ("input", {})],
)
def test_a_gru_the_rewrite_does_not_cover_keeps_its_node(initial_state: str, attributes: dict):
    model = gru_model(hidden=8, width=8, initial_state=initial_state, **attributes)
    assert gru_to_int8(model) == 0
    assert [n.op_type for n in model.graph.node] == ["GRU"]


def test_a_first_gru_layer_looks_its_input_projection_up(tmp_path: Path):
    # a unidirectional GRU narrower than its embedding (3 x 8 <= 32): the first layer's input
    # projection is precomputed per embedding row, and the embedding table leaves the bundle
    student_dir = build_tiny_student(
        tmp_path / "student",
        max_length=64,
        embedding_dim=32,
        hidden_size=8,
        rnn="gru",
        num_layers=2,
        bidirectional=False,
    )
    student = RNNStudent.from_pretrained(student_dir)
    predictor = student.export(tmp_path / "int8", labels=LABELS, quantize=True)
    graph = onnx.load(str(tmp_path / "int8" / MODEL_NAME)).graph
    tensors = initializers(graph)
    tables = [t for t in graph.initializer if "folded" in t.name and t.name.endswith("_int8")]
    assert [tuple(t.dims) for t in tables] == [(student.config.vocab_size, 24)]  # 3 x hidden
    assert "student.embedding.weight_int8" not in tensors  # the table it replaced is gone
    products = [n for n in graph.node if n.op_type == "MatMulInteger"]
    assert len(products) == 1  # the second layer's input projection; the first is looked up
    record = predictor.config["compression"]["quantize"]
    assert record["gru_int8_nodes"] == 2 and record["rnn_folded_nodes"] == 1
    assert "precomputed for every embedding row" in record["method"]
    # the frontier's MAC count leaves out what the bundle looks up
    macs = model_macs(tmp_path / "int8", "student", TEXTS, tmp_path)
    length = macs["length"]
    assert macs["per_sentence"] == student_macs(student.config, length) - length * 24 * 32
    np.testing.assert_allclose(predictor.logits(TEXTS), student.predict_logits(TEXTS), atol=0.02)
    alone = Predictor(tmp_path / "int8", batch_size=1).logits(TEXTS)
    np.testing.assert_allclose(predictor.logits(TEXTS), alone, rtol=0, atol=1e-6)
