"""An LSTM that computes in int8, as `distilrnn.export.gru_int8` does for the GRU: each ONNX LSTM
node of a bundle rewritten as plain int8 matrix products.

onnxruntime's int8 LSTM (`DynamicQuantizeLSTM`, com.microsoft) scales a whole batch's
activations with one scale, so a sentence's answer would depend on its batch. Instead a
forward LSTM node (zero initial states, no peepholes, default activations, as torch exports
`nn.LSTM`) becomes

- the input projection of every time step at once: one `MatMulInteger` before the recurrence
  (each token's input row with its own scale), or, for a first layer that reads the embedding
  rows, a lookup in a table of every row's projection precomputed at export (`gru_int8`'s
  fold, when `4 * hidden` is no wider than the embedding);
- the recurrence, a `Scan` over the time steps whose step multiplies the state by the recurrent
  weights with `MatMulInteger` (the state `h` stays in (-1, 1), so it has the fixed scale
  1/127) and applies the gates in ONNX's i, o, f, c order (Hochreiter & Schmidhuber 1997):
  `i, o, f = sigmoid(.)`, `g = tanh(.)`, `c' = f * c + i * g`, `h' = o * tanh(c')`. The cell
  `c` is never multiplied by a matrix and stays float.

Integer products are exact and no scale is shared between rows, so a sentence's logits do not
depend on its batch. Other LSTM nodes (reverse or bidirectional in one node, with sequence
lengths, peepholes, an initial state, clipping or custom activations) are left alone: int8
storage, float arithmetic.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from distilrnn.export.gru_int8 import (
    _GruRewrite,
    attribute_reason,
    common_reason,
    rewrite_nodes,
    step_value,
)

logger = logging.getLogger(__name__)


def lstm_to_int8(model: Any) -> int:
    """Rewrite each LSTM node of `model` (an `onnx.ModelProto`, changed in place) that can be
    (see the module) as int8 products; returns how many were."""
    return rewrite_nodes(model, "LSTM", _unsupported, _LstmRewrite)


def _unsupported(
    node: Any, initializers: dict[str, Any], producers: dict[str, Any], opset: int
) -> str:
    """Why `node` (an LSTM) cannot be rewritten, or '' when it can."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs = list(node.input) + [""] * (8 - len(node.input))
    reason = attribute_reason(attributes, opset, ["Sigmoid", "Tanh", "Tanh"])
    if reason:
        return reason
    if attributes.get("input_forget", 0) != 0:
        return "coupled input and forget gates"
    if inputs[4]:
        return "sequence lengths"
    if inputs[7]:
        return "peepholes"
    return common_reason(inputs[1:4], inputs[5:7], initializers, producers)


class _LstmRewrite(_GruRewrite):
    """The nodes that replace one LSTM node; their names start with `prefix`."""

    gates = 4  # i, o, f, c

    def nodes(self) -> list[Any]:
        """Input projection, zero states, Scan and the LSTM's outputs `Y` `(seq, 1, batch,
        hidden)`, `Y_h` and `Y_c` `(1, batch, hidden)`."""
        from onnx import helper, numpy_helper

        x, w_name, r_name, b_name = [*self.node.input, "", "", ""][:4]
        hidden = self.hidden
        biases = (
            numpy_helper.to_array(self.initializers[b_name])[0]
            if b_name
            else np.zeros(8 * hidden, np.float32)
        )  # (8 * hidden,): W's i, o, f, c biases, then R's: all added outside the gates
        input_bias = (biases[: 4 * hidden] + biases[4 * hidden :]).astype(np.float32)
        names = {
            "input_bias": f"{self.prefix}/input_bias",
            "sizes_gates": f"{self.prefix}/sizes_gates",
        }
        self.constants(
            {
                names["input_bias"]: input_bias,
                names["sizes_gates"]: np.array([hidden] * 4, dtype=np.int64),
            }
        )
        nodes: list[Any] = []
        projected, _ = self.input_projection(nodes, x, w_name, names["input_bias"])
        state = self.zero_state(nodes, projected)  # (batch, hidden), h and c alike
        step = self.step_graph(self.int8_weight(r_name), names)
        last_h, last_c = f"{self.prefix}/last_h", f"{self.prefix}/last_c"
        states = f"{self.prefix}/states"
        nodes.append(
            helper.make_node(
                "Scan",
                [state, state, projected],
                [last_h, last_c, states],
                name=f"{self.prefix}/Scan",
                num_scan_inputs=1,
                body=step,
            )
        )
        y, y_h, y_c = [*self.node.output, "", "", ""][:3]
        if y:  # (seq, batch, hidden) -> (seq, num_directions = 1, batch, hidden)
            nodes.append(helper.make_node("Unsqueeze", [states, "int8_gru/axis_1"], [y]))
        if y_h:
            nodes.append(helper.make_node("Unsqueeze", [last_h, "int8_gru/axis_0"], [y_h]))
        if y_c:
            nodes.append(helper.make_node("Unsqueeze", [last_c, "int8_gru/axis_0"], [y_c]))
        return nodes

    def step_graph(self, r_int8: tuple[str, str], names: dict[str, str]) -> Any:
        """The Scan body: states `h`, `c` `(batch, hidden)` and this step's projected input
        `(batch, 4 * hidden)` -> the next `h` and `c` (carried) and `h` (scanned out)."""
        from onnx import helper

        step = f"{self.prefix}/step"
        h, c, x = f"{step}/h", f"{step}/c", f"{step}/x"
        nodes: list[Any] = []
        quantized = self.add(
            nodes, "QuantizeLinear", [h, "int8_gru/state_scale", "int8_gru/zero_point"]
        )
        recurrent = self.product(nodes, quantized, r_int8)  # (batch, 4 * hidden)
        gates = self.add(nodes, "Add", [x, recurrent])
        i, o, f, g = self.add(nodes, "Split", [gates, names["sizes_gates"]], outputs=4, axis=1)
        i, o, f = (self.add(nodes, "Sigmoid", [gate]) for gate in (i, o, f))
        g = self.add(nodes, "Tanh", [g])
        kept = self.add(nodes, "Mul", [f, c])
        written = self.add(nodes, "Mul", [i, g])
        next_c = self.add(nodes, "Add", [kept, written])
        next_h = self.add(nodes, "Mul", [o, self.add(nodes, "Tanh", [next_c])])
        scanned = self.add(nodes, "Identity", [next_h])

        hidden = self.hidden
        inputs = [step_value(h, hidden), step_value(c, hidden), step_value(x, 4 * hidden)]
        outputs = [step_value(name, hidden) for name in (next_h, next_c, scanned)]
        return helper.make_graph(nodes, step, inputs, outputs)
