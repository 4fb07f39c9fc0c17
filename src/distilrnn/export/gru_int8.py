"""A GRU that computes in int8: each ONNX GRU node of a bundle rewritten as plain int8 matrix
products, which onnxruntime has kernels for.

onnxruntime has int8 kernels for matrix products (`MatMulInteger`, uint8 x int8, on VNNI where
the CPU has it) and, in its com.microsoft domain, an int8 LSTM (`DynamicQuantizeLSTM`, what
`quantize_dynamic` turns an LSTM into), but no int8 GRU: its GRU kernel multiplies in float
whatever its weights were stored as. So a GRU node (forward, `linear_before_reset`, zero
initial state, as torch exports `nn.GRU`) becomes

- the input projection of every time step at once, one `MatMulInteger` `(seq, batch, input) x
  (input, 3 * hidden)` before the recurrence: most of a GRU's arithmetic when its input is
  wider than its state;
- the recurrence, a `Scan` over the time steps whose step multiplies the state by the
  recurrent weights with `MatMulInteger` and applies the gates (Cho et al. 2014, in the ONNX
  GRU's z, r, h order):
  `z, r = sigmoid(x_zr + h R_zr + b_zr)`, `n = tanh(x_n + r * (h R_n + b_Rn))`,
  `h' = n + z * (h - n)`, which is `(1 - z) * n + z * h`.

A first forward layer reads the embedding rows themselves (`Transpose(Gather(table, ids))`):
there the input projection, a linear map of each token's row, is computed once for every row at
export (`table W^T + b`, `(vocab, 3 * hidden)`) and the graph looks it up instead of multiplying,
when that table is no wider than the embedding (`3 * hidden <= embedding width`), so the bundle
does not grow. Its rows are stored as int8 like any embedding's.

Weights are int8 with one symmetric scale per output column; activations are uint8 with zero
point 128. Each input row (a token's vector) gets its own scale, its largest magnitude / 127.
The state has the fixed scale 1/127: it starts at zero and each step mixes it with a tanh, so
it stays within (-1, 1), and a fixed scale costs the step no pass to find one. Integer products
are exact, so a row's result depends on that row alone and a sentence's logits do not depend
on its batch (the guarantee of the weight-only `export.quantize`), unlike onnxruntime's dynamic
quantisation, which scales a whole batch with one scale. Other GRU nodes (reverse,
bidirectional in one node, with sequence lengths, an initial state or custom activations) are
left alone: they keep int8 storage and float arithmetic.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ZERO_POINT = 128  # uint8 activations: value = (q - 128) * scale, q in [1, 255]
STATE_SCALE = 1.0 / 127.0  # a GRU state is within (-1, 1)
# shared constants of every rewritten GRU: one (name, value) each
CONSTANTS = {
    "int8_gru/one": np.float32(1.0),
    "int8_gru/zero_point": np.uint8(ZERO_POINT),
    "int8_gru/state_scale": np.float32(STATE_SCALE),
    # an all-zero input row (a zero embedding row) gets this scale, so it divides to zeros
    "int8_gru/smallest_scale": np.float32(1e-30),
    "int8_gru/axis_0": np.array([0], dtype=np.int64),
    "int8_gru/axis_1": np.array([1], dtype=np.int64),
    "int8_gru/axis_2": np.array([2], dtype=np.int64),
}
MIN_OPSET = 13  # Split, Squeeze and Unsqueeze take their sizes and axes as inputs
FOLDED = "_folded_"  # in the name of a table of precomputed input projections


def gru_to_int8(model: Any) -> int:
    """Rewrite each GRU node of `model` (an `onnx.ModelProto`, changed in place) that can be
    (see the module) as int8 products; returns how many were. The float weights they held
    are removed, their int8 copies (`<name>_int8`, `<name>_scale`) added."""
    return rewrite_nodes(model, "GRU", _unsupported, _GruRewrite)


def rewrite_nodes(model: Any, op_type: str, unsupported: Any, rewrite: Any) -> int:
    """Replace each `op_type` node of `model` for which `unsupported(node, initializers,
    producers, opset)` gives no reason by `rewrite(prefix, node, graph, initializers,
    opset).nodes()`; returns how many were replaced (shared by the GRU and LSTM rewrites)."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    # torch's exporter gives a weight that two modules share (a siamese student's encoder,
    # run once per text) one initializer and reads it again through Identity nodes
    aliases = {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "Identity" and node.input[0] in initializers
    }
    producers = {name: node for node in graph.node for name in node.output}
    rewritten = 0
    for node in list(graph.node):
        if node.op_type != op_type:
            continue
        weights = [aliases.get(name, name) for name in node.input[1:4]]
        node.input[1 : 1 + len(weights)] = weights
        reason = unsupported(node, initializers, producers, opset)
        if reason:
            logger.info("%s node %s keeps float arithmetic: %s", op_type, node.name or "?", reason)
            continue
        prefix = f"int8_{op_type.lower()}/{rewritten}"
        nodes = rewrite(prefix, node, graph, initializers, opset).nodes()
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(nodes):
            graph.node.insert(position + offset, new)
        rewritten += 1
    if rewritten:
        _add_initializers(graph, initializers, CONSTANTS)
        _drop_unused(graph)
    return rewritten


def folded_nodes(model: Any) -> int:
    """How many rewritten GRU nodes of `model` look their input projection up (`FOLDED`)."""
    return sum(
        1
        for node in model.graph.node
        if node.op_type == "Gather"
        and FOLDED in node.input[0]
        and node.name.startswith(("int8_gru/", "int8_lstm/"))
    )


def _unsupported(
    node: Any, initializers: dict[str, Any], producers: dict[str, Any], opset: int
) -> str:
    """Why `node` (a GRU) cannot be rewritten, or '' when it can."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs = list(node.input) + [""] * (6 - len(node.input))
    reason = attribute_reason(attributes, opset, ["Sigmoid", "Tanh"])
    if reason:
        return reason
    if attributes.get("linear_before_reset", 0) != 1:
        return "linear_before_reset = 0"
    if inputs[4]:
        return "sequence lengths"
    return common_reason(inputs[1:4], [inputs[5]], initializers, producers)


def attribute_reason(attributes: dict[str, Any], opset: int, activations: list[str]) -> str:
    """Why a recurrent node with these attributes cannot be rewritten (an old opset, another
    direction, batch-first layout, clipping, activations other than `activations`), or ''."""
    if opset < MIN_OPSET:
        return f"opset {opset} < {MIN_OPSET}"
    if attributes.get("direction", b"forward") not in (b"forward", "forward"):
        return f"direction {attributes['direction']!r}"
    if attributes.get("layout", 0) != 0:
        return "batch-first layout"
    given = attributes.get("activations", activations)
    if "clip" in attributes or [a.decode() if isinstance(a, bytes) else a for a in given] != (
        activations
    ):
        return "clipped or custom activations"
    return ""


def common_reason(
    weights: list[str], states: list[str], initializers: dict[str, Any], producers: dict[str, Any]
) -> str:
    """Why a recurrent node with these weight and initial-state inputs cannot be rewritten:
    an initial state that may not be zero, or a weight that is not a float initializer of one
    direction; '' when neither."""
    from onnx import numpy_helper

    for state in filter(None, states):  # torch passes zeros made to the batch's shape
        source = producers.get(state)
        value = [a.t for a in source.attribute if a.name == "value"] if source else []
        if (
            source is None
            or source.op_type != "ConstantOfShape"
            or (value and numpy_helper.to_array(value[0]).any())
        ):
            return "an initial state that may not be zero"
    for name in filter(None, weights):
        tensor = initializers.get(name)
        if tensor is None or tensor.data_type != 1 or tensor.dims[0] != 1:  # 1: FLOAT
            return f"{name} is not a float initializer of one direction"
    return ""


class _GruRewrite:
    """The nodes that replace one GRU node; their names start with `prefix`. The helpers
    below the step are shared with the LSTM's rewrite (`distilrnn.export.lstm_int8`)."""

    gates = 3  # z, r, h

    def __init__(
        self, prefix: str, node: Any, graph: Any, initializers: dict[str, Any], opset: int
    ) -> None:
        self.prefix, self.node, self.graph, self.opset = prefix, node, graph, opset
        self.initializers = initializers  # name -> tensor of `graph`, kept up to date
        self.hidden = next(a.i for a in node.attribute if a.name == "hidden_size")
        self.count = 0

    def nodes(self) -> list[Any]:
        """Input projection, initial state, Scan and the GRU's two outputs `Y` `(seq, 1,
        batch, hidden)` and `Y_h` `(1, batch, hidden)`."""
        from onnx import helper, numpy_helper

        x, w_name, r_name, b_name, _, initial_h = [*self.node.input, "", "", "", "", ""][:6]
        hidden = self.hidden
        biases = (
            numpy_helper.to_array(self.initializers[b_name])[0]
            if b_name
            else np.zeros(6 * hidden, np.float32)
        )  # (6 * hidden,): W's z, r, h biases, then R's
        # R's z and r biases are added outside the reset gate, so they join W's; R's h bias
        # is multiplied by r and stays in the step
        input_bias = biases[: 3 * hidden].copy()
        input_bias[: 2 * hidden] += biases[3 * hidden : 5 * hidden]
        names = {
            "input_bias": f"{self.prefix}/input_bias",
            "state_bias": f"{self.prefix}/state_bias",
            "sizes_zr_h": f"{self.prefix}/sizes_zr_h",
            "sizes_z_r": f"{self.prefix}/sizes_z_r",
        }
        self.constants(
            {
                names["input_bias"]: input_bias.astype(np.float32),
                names["state_bias"]: biases[5 * hidden :].astype(np.float32),
                names["sizes_zr_h"]: np.array([2 * hidden, hidden], dtype=np.int64),
                names["sizes_z_r"]: np.array([hidden, hidden], dtype=np.int64),
            }
        )
        nodes: list[Any] = []
        projected, lookup = self.input_projection(nodes, x, w_name, names["input_bias"])
        # (seq, batch, 2 * hidden) and (seq, batch, hidden): split once, not at every step
        x_zr, x_n = self.add(nodes, "Split", [projected, names["sizes_zr_h"]], outputs=2, axis=2)
        if initial_h and not lookup:  # zeros (`_unsupported`)
            state = self.add(nodes, "Squeeze", [initial_h, "int8_gru/axis_0"])  # (batch, hidden)
        else:  # a folded GRU takes its batch from the lookup: the embedding Gather goes
            state = self.zero_state(nodes, projected)
        step = self.step_graph(self.int8_weight(r_name), names)
        last, states = f"{self.prefix}/last_state", f"{self.prefix}/states"
        nodes.append(
            helper.make_node(
                "Scan",
                [state, x_zr, x_n],
                [last, states],
                name=f"{self.prefix}/Scan",
                num_scan_inputs=2,
                body=step,
            )
        )
        y, y_h = [*self.node.output, "", ""][:2]
        if y:  # (seq, batch, hidden) -> (seq, num_directions = 1, batch, hidden)
            nodes.append(helper.make_node("Unsqueeze", [states, "int8_gru/axis_1"], [y]))
        if y_h:
            nodes.append(helper.make_node("Unsqueeze", [last, "int8_gru/axis_0"], [y_h]))
        return nodes

    def input_projection(
        self, nodes: list[Any], x: str, w_name: str, input_bias: str
    ) -> tuple[str, bool]:
        """Every time step's `x W^T + input_bias` `(seq, batch, gates * hidden)`: looked up in a
        table precomputed per embedding row when the node reads the embedding (`table_lookup`),
        else an int8 product; with whether it was looked up."""
        from onnx import numpy_helper

        lookup = self.table_lookup(x, w_name)
        if lookup:  # the projection precomputed for every embedding row: one Gather
            bias = numpy_helper.to_array(self.initializers[input_bias])
            folded = self.fold_table(lookup[0], w_name, bias)
            gathered = self.add(nodes, "Gather", [folded, lookup[1]], axis=0)
            return self.add(nodes, "Transpose", [gathered], perm=[1, 0, 2]), True
        row_scale, quantized = self.quantize_rows(nodes, x)
        projected = self.product(nodes, quantized, self.int8_weight(w_name), row_scale)
        return self.add(nodes, "Add", [projected, input_bias]), False

    def table_lookup(self, x: str, w_name: str) -> tuple[str, str] | None:
        """`(table, ids)` when the node reads `Transpose(Gather(table, ids))`, the embedding
        rows of a float initializer `table` `(vocab, k)` turned time-major, as torch exports a
        first forward layer, and `gates * hidden <= k` (the folded table is no wider); else
        None."""
        from onnx import helper

        producers = {name: node for node in self.graph.node for name in node.output}
        transpose = producers.get(x)
        if transpose is None or transpose.op_type != "Transpose":
            return None
        perm = [helper.get_attribute_value(a) for a in transpose.attribute if a.name == "perm"]
        gather = producers.get(transpose.input[0])
        if perm != [[1, 0, 2]] or gather is None or gather.op_type != "Gather":
            return None
        axis = [helper.get_attribute_value(a) for a in gather.attribute if a.name == "axis"]
        table = self.initializers.get(gather.input[0])
        if axis not in ([], [0]) or table is None or table.data_type != 1 or len(table.dims) != 2:
            return None
        width = self.initializers[w_name].dims[2]
        if table.dims[1] != width or self.gates * self.hidden > width:
            return None
        return gather.input[0], gather.input[1]

    def fold_table(self, table_name: str, w_name: str, input_bias: np.ndarray) -> str:
        """The input projection of every row of `table_name`, with its biases: `(vocab, gates *
        hidden)` float32, stored as int8 rows like any embedding; shared by the nodes that
        read the same table through the same weight."""
        from onnx import numpy_helper

        name = f"{w_name}{FOLDED}{table_name}"
        if name not in self.initializers:
            table = numpy_helper.to_array(self.initializers[table_name]).astype(np.float64)
            weight = numpy_helper.to_array(self.initializers[w_name])[0].astype(np.float64)
            self.constants({name: (table @ weight.T + input_bias).astype(np.float32)})
        return name

    def step_graph(self, r_int8: tuple[str, str], names: dict[str, str]) -> Any:
        """The Scan body: state `(batch, hidden)` and this step's projected input, `(batch, 2 *
        hidden)` for z and r and `(batch, hidden)` for n -> the next state, twice (carried,
        and scanned out)."""
        from onnx import helper

        step = f"{self.prefix}/step"
        state, x_zr, x_n = f"{step}/state", f"{step}/x_zr", f"{step}/x_n"
        nodes: list[Any] = []
        quantized = self.add(
            nodes, "QuantizeLinear", [state, "int8_gru/state_scale", "int8_gru/zero_point"]
        )
        gates = self.product(nodes, quantized, r_int8)  # (batch, 3 * hidden)
        h_zr, h_n = self.add(nodes, "Split", [gates, names["sizes_zr_h"]], outputs=2, axis=1)
        zr = self.add(nodes, "Sigmoid", [self.add(nodes, "Add", [x_zr, h_zr])])
        z, r = self.add(nodes, "Split", [zr, names["sizes_z_r"]], outputs=2, axis=1)
        h_n = self.add(nodes, "Add", [h_n, names["state_bias"]])
        reset = self.add(nodes, "Mul", [r, h_n])
        n = self.add(nodes, "Tanh", [self.add(nodes, "Add", [x_n, reset])])
        change = self.add(nodes, "Mul", [z, self.add(nodes, "Sub", [state, n])])
        next_state = self.add(nodes, "Add", [n, change])
        scanned = self.add(nodes, "Identity", [next_state])

        hidden = self.hidden
        return helper.make_graph(
            nodes,
            step,
            [step_value(state, hidden), step_value(x_zr, 2 * hidden), step_value(x_n, hidden)],
            [step_value(next_state, hidden), step_value(scanned, hidden)],
        )

    def quantize_rows(self, nodes: list[Any], x: str) -> tuple[str, str]:
        """`x` `(..., k)` float as uint8 (zero point 128) with one scale per row, the row's
        largest magnitude / 127: the scales `(..., 1)` and the values."""
        peak = self.reduce_max(nodes, self.add(nodes, "Abs", [x]))  # (..., 1)
        scale = self.add(nodes, "Mul", [peak, "int8_gru/state_scale"])  # peak / 127
        scale = self.add(nodes, "Max", [scale, "int8_gru/smallest_scale"])
        scaled = self.add(nodes, "Div", [x, scale])  # in [-127, 127]
        # rounded half to even, + 128, saturated to [0, 255]
        quantized = self.add(
            nodes, "QuantizeLinear", [scaled, "int8_gru/one", "int8_gru/zero_point"]
        )
        return scale, quantized

    def product(
        self, nodes: list[Any], quantized: str, weight: tuple[str, str], row_scale: str = ""
    ) -> str:
        """uint8 activations `(..., k)` times an int8 weight `(k, n)` (the names of its values
        and of its column scales, which include the state's fixed scale) as float `(..., n)`;
        `row_scale` `(..., 1)`: the activations' own scales."""
        from onnx import TensorProto

        values, column_scale = weight
        exact = self.add(nodes, "MatMulInteger", [quantized, values, "int8_gru/zero_point"])
        product = self.add(nodes, "Cast", [exact], to=TensorProto.FLOAT)
        if row_scale:
            product = self.add(nodes, "Mul", [product, row_scale])
        return self.add(nodes, "Mul", [product, column_scale])

    def reduce_max(self, nodes: list[Any], x: str) -> str:
        """The largest value of each row of `x`, keeping the axis; `axes` is an input from
        opset 18 on."""
        if self.opset >= 18:
            axes = f"{self.prefix}/last_axis"
            self.constants({axes: np.array([-1], np.int64)})
            return self.add(nodes, "ReduceMax", [x, axes], keepdims=1)
        return self.add(nodes, "ReduceMax", [x], axes=[-1], keepdims=1)

    def zero_state(self, nodes: list[Any], x: str) -> str:
        """A `(batch, hidden)` zero state, the batch read from `x` `(seq, batch, input)`."""
        from onnx import TensorProto, helper

        hidden = f"{self.prefix}/hidden_width"
        self.constants({hidden: np.array([self.hidden], np.int64)})
        shape = self.add(nodes, "Shape", [x])
        batch = self.add(nodes, "Slice", [shape, "int8_gru/axis_1", "int8_gru/axis_2"])
        size = self.add(nodes, "Concat", [batch, hidden], axis=0)
        zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
        return self.add(nodes, "ConstantOfShape", [size], value=zero)

    def int8_weight(self, name: str) -> tuple[str, str]:
        """The ONNX GRU weight `name` `(1, 3 * hidden, k)` as int8 `(k, 3 * hidden)` and one
        float32 scale per column; the recurrent weight's scales times the state's fixed
        scale. Shared by the GRU nodes that read the same weight."""
        from onnx import numpy_helper

        from distilrnn.export.quantize import _symmetric_int8  # it imports this module

        values_name, scale_name = f"{name}_int8", f"{name}_scale"
        if values_name not in self.initializers:
            weight = numpy_helper.to_array(self.initializers[name])[0].T  # (k, 3 * hidden)
            values, scale = _symmetric_int8(np.ascontiguousarray(weight), axis=1)
            if name == self.node.input[2]:  # R: reads the state, of the fixed scale
                scale = scale * np.float32(STATE_SCALE)
            self.constants({values_name: values, scale_name: scale.reshape(-1)})
        return values_name, scale_name

    def add(self, nodes: list[Any], op: str, inputs: list[str], outputs: int = 1, **attrs: Any):
        """Append an `op` node with fresh output names; its output name (a tuple of them when
        `outputs` > 1)."""
        from onnx import helper

        self.count += 1
        name = f"{self.prefix}/{op}_{self.count}"
        names = [f"{name}_out{i}" for i in range(outputs)] if outputs > 1 else [f"{name}_out"]
        nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return tuple(names) if outputs > 1 else names[0]

    def constants(self, tensors: dict[str, Any]) -> None:
        """Add `tensors` (name -> numpy value) to the main graph's initializers (the Scan body
        reads them from there), each once."""
        _add_initializers(self.graph, self.initializers, tensors)


def step_value(name: str, width: int) -> Any:
    """A Scan step's float input or output `name` of shape `(batch, width)`."""
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])


def _add_initializers(graph: Any, known: dict[str, Any], tensors: dict[str, Any]) -> None:
    """Add each of `tensors` (name -> numpy value) to `graph` unless `known` has it already."""
    from onnx import numpy_helper

    for name, value in tensors.items():
        if name not in known:
            tensor = numpy_helper.from_array(np.asarray(value), name)
            graph.initializer.append(tensor)
            known[name] = tensor


def _drop_unused(graph: Any) -> None:
    """Remove the nodes whose outputs nothing reads (until none is left: an ONNX node has no
    side effects), then the initializers no node reads (subgraphs included): the rewritten
    GRUs' float weights and their aliases, and a folded GRU's embedding Gather and table."""
    while True:
        used = _read_names(graph)
        dead = [n for n in graph.node if not any(name in used for name in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def _read_names(graph: Any) -> set[str]:
    """The names that a node of `graph` or of its subgraphs reads, and its outputs."""
    used: set[str] = {output.name for output in graph.output}
    stack = [graph]
    while stack:
        current = stack.pop()
        for node in current.node:
            used.update(node.input)
            for attribute in node.attribute:
                stack += ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
    return used
