"""What a bundle asks of the machine, for the speed frontier (`distilrnn.bench.frontier`):
multiply-adds per sentence at the test texts' mean length (`distilrnn.bench.flops`), the GFLOP/s
a throughput implies, the float32 rate onnxruntime reaches here, and where a batch's time goes
(tokenisation, the onnxruntime session, the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.timing import time_calls


# arithmetic ------------------------------------------------------------------------------------
def token_lengths(bundle_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """Tokens `(len(texts),)` of each text under the bundle's tokenizer, as `Predictor` reads
    it (special tokens included, truncated to the bundle's max_length)."""
    from distilrnn.runtime import Predictor

    encoded = Predictor(bundle_dir).encode(list(texts))["input_ids"]
    return np.asarray([len(ids) for ids in encoded], dtype=np.int64)


def padded_mean_length(lengths: np.ndarray, batch_size: int) -> float:
    """Tokens per text the runtime feeds when batches of `batch_size` in the given order are
    each padded to their longest text."""
    padded = [
        len(batch) * int(batch.max())
        for batch in (lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size))
    ]
    return float(sum(padded)) / len(lengths)


def model_macs(bundle_dir: Path, kind: str, texts: Sequence[str], teacher_dir: Path) -> dict:
    """Multiply-adds of one sentence at the mean real length of `texts`: `student_macs` of the
    bundle's own architecture (after any export-time narrowing), or `teacher_macs` of the
    teacher's transformers config."""
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.bench.flops import folded_macs, student_macs, teacher_macs
    from distilrnn.runtime import read_bundle_config

    lengths = token_lengths(bundle_dir, texts)
    length = max(1, round(float(lengths.mean())))
    if kind == "student":
        from distilrnn.student.model import StudentConfig

        bundle_config = read_bundle_config(bundle_dir)
        config = StudentConfig.from_dict(bundle_config["student"])
        macs, counted_by = student_macs(config, length), "student_macs"
        compression = bundle_config.get("compression") or {}
        rnn_folded = (compression.get("quantize") or {}).get("rnn_folded_nodes", 0)
        if compression.get("fold_first_layer") or rnn_folded:
            macs -= folded_macs(config, length, directions=max(1, rnn_folded))
            counted_by = "student_macs less the first layer folded into the table"
    else:
        from transformers import AutoConfig

        macs = teacher_macs(AutoConfig.from_pretrained(str(teacher_dir)), length)
        counted_by = "teacher_macs"
    return {
        "per_sentence": int(macs),
        "length": length,
        "mean_tokens": float(lengths.mean()),
        "padded_mean_tokens": padded_mean_length(lengths, BATCH_SIZE),
        "length_rule": "mean real tokens of the test texts under the bundle's tokenizer, rounded",
        "counted_by": counted_by,
    }


def gflops(macs: int | None, throughput: dict[str, float]) -> dict[str, float] | None:
    """GFLOP/s of each throughput run: 2 x MACs x texts/s / 1e9; None without a MAC count."""
    if macs is None:
        return None
    return {count: 2.0 * macs * rate / 1e9 for count, rate in throughput.items()}


def runtime_peak_gflops(
    size: int = 1024, threads: Sequence[int] = (1, 2), repeats: int = 3
) -> dict[str, float]:
    """GFLOP/s of one float32 `size x size` matrix product in onnxruntime at each thread count
    (best of `repeats`): the dense rate the runtime reaches here, against which a model's
    achieved rate reads as a share."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((size, size), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    inputs = {"x": rng.standard_normal((size, size), np.float32)}
    peak = {}
    for count in threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = count
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        seconds = best_seconds(lambda session=session: session.run(None, inputs), repeats)
        peak[str(count)] = 2.0 * size**3 / seconds / 1e9
    return peak


# where the time goes ----------------------------------------------------------------------------
def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls, after one untimed call (`distilrnn.timing`)."""
    return float(time_calls(lambda _: call(), [None] * repeats, warmup=1).min())


def time_breakdown(
    name: str, bundle_dir: Path, texts: Sequence[str], repeats: int, macs: int | None = None
) -> dict[str, Any]:
    """Seconds of one pass over `texts` in batches of 64, one thread, split into tokenisation
    (`Predictor.encode` on each batch, its word cache warm as it is after the first pass), the
    onnxruntime session alone (on the batches already tokenised and padded) and the whole
    `Predictor.logits` call; `other` is the rest (sorting, padding, Python). Beside them, not
    part of the total: tokenisation from an empty word cache (`tokenise_cold`) and by the
    tokenizers library alone (`tokenise_library`). With `macs`, the session's own GFLOP/s."""
    from distilrnn.batching import pad_batch
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.runtime import INPUT_NAMES, OUTPUT_NAME, Predictor

    predictor = Predictor(bundle_dir, batch_size=BATCH_SIZE, threads=1)
    batches = [list(texts[i : i + BATCH_SIZE]) for i in range(0, len(texts), BATCH_SIZE)]
    arrays = [pad_batch(predictor.encode(b)["input_ids"], predictor.pad_token_id) for b in batches]
    padded = [dict(zip(INPUT_NAMES, pair, strict=True)) for pair in arrays]
    seconds = {
        "tokenise": best_seconds(lambda: [predictor.encode(b) for b in batches], repeats),
        "session": best_seconds(
            lambda: [predictor.session.run([OUTPUT_NAME], feed) for feed in padded], repeats
        ),
        "total": best_seconds(lambda: [predictor.logits(b) for b in batches], repeats),
    }
    seconds["other"] = max(0.0, seconds["total"] - seconds["tokenise"] - seconds["session"])
    cache = predictor.word_cache

    def cold() -> None:
        if cache is not None:
            cache.clear()
        for batch in batches:
            predictor.encode(batch)

    seconds["tokenise_cold"] = best_seconds(cold, repeats)
    seconds["tokenise_library"] = best_seconds(
        lambda: [[e.ids for e in predictor.tokenizer.encode_batch(b)] for b in batches], repeats
    )
    count = len(texts)
    real = sum(int(mask.sum()) for _, mask in arrays)
    return {
        "name": name,
        "threads": 1,
        "batch_size": BATCH_SIZE,
        "texts": count,
        # padding: the tokens the session reads against the texts' own
        "tokens": {"real": real, "padded": sum(int(mask.size) for _, mask in arrays)},
        "seconds": seconds,
        "share": {part: value / seconds["total"] for part, value in seconds.items()},  # of total
        "us_per_text": {part: 1e6 * value / count for part, value in seconds.items()},
        "session_gflops": None if macs is None else 2.0 * macs * count / seconds["session"] / 1e9,
    }
