"""The int8 LSTM of a quantised bundle (`distilrnn.export.lstm_int8`): the rewritten node follows
onnxruntime's float LSTM at any length, with zero or absent initial states; nodes it does not
cover keep their LSTM; a student's bundle multiplies int8, is batch-invariant and stays close to
the float one; a first layer narrower than its embedding looks its input projection up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import build_tiny_student
from onnx import TensorProto, helper, numpy_helper
from test_gru_int8 import LABELS, TEXTS

from distilrnn.config import ExportSettings
from distilrnn.export import export_student
from distilrnn.export.lstm_int8 import lstm_to_int8
from distilrnn.runtime import MODEL_NAME, Predictor
from distilrnn.student import RNNStudent


def lstm_model(hidden: int, width: int, initial_state: str, **attributes) -> onnx.ModelProto:
    """One ONNX LSTM node `(seq, batch, width) -> Y, Y_h, Y_c` with random weights, as torch
    exports `nn.LSTM`; `initial_state`: "" (none), "zeros" (ConstantOfShape of the batch's, as
    torch exports it) or "input" (graph inputs `h0`, `c0`)."""
    rng = np.random.default_rng(0)
    weights = {
        "W": rng.normal(0, 0.3, (1, 4 * hidden, width)),
        "R": rng.normal(0, 0.3, (1, 4 * hidden, hidden)),
        "B": rng.normal(0, 0.3, (1, 8 * hidden)),
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
            helper.make_node("ConstantOfShape", ["size"], ["c0"]),
        ]
    elif initial_state == "input":
        graph_inputs += [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "b", hidden])
            for name in ("h0", "c0")
        ]
    states = ["h0", "c0"] if initial_state else ["", ""]
    nodes.append(
        helper.make_node(
            "LSTM",
            ["x", "W", "R", "B", "", *states],
            ["y", "y_h", "y_c"],
            hidden_size=hidden,
            **attributes,
        )
    )
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["s", 1, "b", hidden]),
        helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, "b", hidden]),
        helper.make_tensor_value_info("y_c", TensorProto.FLOAT, [1, "b", hidden]),
    ]
    graph = helper.make_graph(nodes, "lstm", graph_inputs, outputs, tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("initial_state", ["zeros", ""])
@pytest.mark.parametrize("length", [1, 9])
def test_rewritten_lstm_follows_the_onnx_lstm_at_any_length(initial_state: str, length: int):
    model = lstm_model(hidden=16, width=24, initial_state=initial_state)
    x = np.random.default_rng(1).normal(size=(length, 5, 24)).astype(np.float32)
    expected = run(model, x)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert lstm_to_int8(rewritten) == 1
    onnx.checker.check_model(rewritten, full_check=True)
    assert "LSTM" not in [n.op_type for n in rewritten.graph.node]
    assert [t.name for t in rewritten.graph.initializer if t.name in ("W", "R", "B")] == []
    got = run(rewritten, x)
    for want, have in zip(expected, got, strict=True):  # Y, Y_h and Y_c
        assert want.shape == have.shape
        np.testing.assert_allclose(have, want, rtol=0, atol=0.03)


@pytest.mark.parametrize(
    ("initial_state", "attributes"),
    [("", {"direction": "reverse"}), ("", {"input_forget": 1}), ("input", {})],
)
def test_an_lstm_the_rewrite_does_not_cover_keeps_its_node(initial_state: str, attributes: dict):
    model = lstm_model(hidden=8, width=8, initial_state=initial_state, **attributes)
    assert lstm_to_int8(model) == 0
    assert [n.op_type for n in model.graph.node] == ["LSTM"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer bidirectional LSTM student as float, weight-only int8 and int8 LSTM."""
    root = tmp_path_factory.mktemp("lstm-int8")
    student_dir = build_tiny_student(
        root / "student", max_length=64, embedding_dim=32, hidden_size=24, num_layers=2
    )
    settings = {
        "float": {},
        "weights": {"quantize": True, "lstm_int8": False},
        "int8": {"quantize": True},
    }
    out = {}
    for name, values in settings.items():
        out[name] = root / name
        export_student(student_dir, out[name], ExportSettings(labels=LABELS, **values))
    return out


def test_int8_lstm_bundle_multiplies_int8_and_ignores_batching(bundles: dict[str, Path]):
    graph = onnx.load(str(bundles["int8"] / MODEL_NAME)).graph
    ops = [node.op_type for node in graph.node]
    assert "LSTM" not in ops and ops.count("Scan") == 4  # 2 layers x 2 directions
    card = (bundles["int8"] / "README.md").read_text()
    assert "the LSTM's matrix products computed in int8" in card
    one_by_one = Predictor(bundles["int8"], batch_size=1).logits(TEXTS)
    batched = Predictor(bundles["int8"], batch_size=64).logits(TEXTS)
    np.testing.assert_allclose(one_by_one, batched, rtol=0, atol=1e-6)
    record = Predictor(bundles["int8"]).config["compression"]["quantize"]
    assert record["mode"] == "weights+lstm-int8" and record["lstm_int8_nodes"] == 4


def test_int8_lstm_logits_stay_close_to_the_float_ones(bundles: dict[str, Path]):
    logits = {name: Predictor(path).logits(TEXTS) for name, path in bundles.items()}
    weights_graph = onnx.load(str(bundles["weights"] / MODEL_NAME)).graph
    assert [n.op_type for n in weights_graph.node].count("LSTM") == 4  # lstm_int8 = false
    np.testing.assert_allclose(logits["int8"], logits["float"], rtol=0, atol=0.02)
    assert (logits["int8"].argmax(1) == logits["float"].argmax(1)).mean() >= 0.95


def test_a_first_lstm_layer_looks_its_input_projection_up(tmp_path: Path):
    # unidirectional, 4 x 8 = 32 <= the embedding's 32 columns: the first layer is folded
    student_dir = build_tiny_student(
        tmp_path / "student", max_length=64, embedding_dim=32, hidden_size=8, bidirectional=False
    )
    student = RNNStudent.from_pretrained(student_dir)
    predictor = student.export(tmp_path / "int8", labels=LABELS, quantize=True)
    graph = onnx.load(str(tmp_path / "int8" / MODEL_NAME)).graph
    tables = [t for t in graph.initializer if "folded" in t.name and t.name.endswith("_int8")]
    assert [tuple(t.dims) for t in tables] == [(student.config.vocab_size, 32)]
    assert not [n for n in graph.node if n.op_type == "MatMulInteger"]  # only in the step
    record = predictor.config["compression"]["quantize"]
    assert record["lstm_int8_nodes"] == 1 and record["rnn_folded_nodes"] == 1
    np.testing.assert_allclose(predictor.logits(TEXTS), student.predict_logits(TEXTS), atol=0.02)
    alone = Predictor(tmp_path / "int8", batch_size=1).logits(TEXTS)
    np.testing.assert_allclose(predictor.logits(TEXTS), alone, rtol=0, atol=1e-6)
