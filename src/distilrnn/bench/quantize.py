"""Bundle quantisation modes compared: bytes, accuracy, batch invariance and speed.

Exports one saved student as a float bundle, the bundle's weight-only int8 (`export.quantize`),
the same with a 4-bit embedding, and onnxruntime's dynamic int8 (`quantize_dynamic` on the float
graph, the bundle's quantisation before issue 11: activations scaled per batch). For each:
model bytes, accuracy on a labelled file, how many labels differ between `batch_size` 1 and 64,
one-sentence p50 latency and batch-64 throughput, on one onnxruntime thread.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.bench.tables import machine, markdown_rows
from distilrnn.config import ExportSettings
from distilrnn.export import export_student
from distilrnn.runtime import MODEL_NAME, Predictor, read_label_names, read_labelled
from distilrnn.timing import latency_ms, throughput

MODES = {
    "float": {},
    "int8 weight-only": {"quantize": True},
    "int8 weight-only, 4-bit embedding": {"quantize": True, "embedding_bits": 4},
}
DYNAMIC = "int8 dynamic (before)"
BATCH_SIZE = 64


def dynamic_int8_bundle(float_bundle: Path, target: Path) -> None:
    """A copy of `float_bundle` whose model is onnxruntime's dynamic int8 quantisation of it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    shutil.copytree(float_bundle, target)
    prepared = target / "model.prepared.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # onnxruntime logs a line per tensor
    try:
        quant_pre_process(str(float_bundle / MODEL_NAME), str(prepared))
        quantize_dynamic(str(prepared), str(target / MODEL_NAME), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        prepared.unlink()


def measure(
    bundle: Path, texts: list[str], labels: list[int], latency_texts: int, repeats: int
) -> dict[str, Any]:
    """Bytes, accuracy, batch-1 vs batch-64 label flips and one-thread speed of `bundle`."""
    single = Predictor(bundle, batch_size=1, threads=1)
    batched = Predictor(bundle, batch_size=BATCH_SIZE, threads=1)
    alone = single.logits(texts)
    together = batched.logits(texts)
    predicted = together.argmax(axis=1)
    return {
        "model_bytes": (bundle / MODEL_NAME).stat().st_size,
        "accuracy_batch64": float((predicted == np.asarray(labels)).mean()),
        "accuracy_batch1": float((alone.argmax(axis=1) == np.asarray(labels)).mean()),
        "label_flips_batch1_vs_64": int((alone.argmax(axis=1) != predicted).sum()),
        "max_logit_change_batch1_vs_64": float(np.abs(alone - together).max()),
        "latency_ms": latency_ms(lambda text: single.logits([text]), texts[:latency_texts]),
        "throughput_batch64": throughput(batched.logits, texts, repeats),
    }


def benchmark_quantize(
    student_dir: Path,
    labelled: Path,
    work_dir: Path,
    latency_texts: int = 200,
    repeats: int = 2,
) -> dict[str, Any]:
    """Every mode of `MODES` and `DYNAMIC` exported from `student_dir` into `work_dir` and
    measured on the texts of `labelled` (columns `sentence` and `label`)."""
    names = read_label_names(Path(student_dir) / "labels.json")
    texts, raw, _ = read_labelled(labelled)
    labels = [names.index(str(label)) if str(label) in names else int(label) for label in raw]
    work_dir = Path(work_dir)
    bundles = {}
    for mode, settings in MODES.items():
        bundles[mode] = work_dir / mode.replace(" ", "-").replace(",", "")
        export_student(student_dir, bundles[mode], ExportSettings(labels=names, **settings))
    bundles[DYNAMIC] = work_dir / "int8-dynamic"
    shutil.rmtree(bundles[DYNAMIC], ignore_errors=True)
    dynamic_int8_bundle(bundles["float"], bundles[DYNAMIC])
    order = ["float", DYNAMIC, *list(MODES)[1:]]
    return {
        "student": Path(student_dir).name,
        "labelled": f"{Path(labelled).parent.name}/{Path(labelled).name}",
        "sentences": len(texts),
        "threads": 1,
        "repeats": repeats,
        "latency_texts": min(latency_texts, len(texts)),
        "machine": machine("onnxruntime", "numpy"),
        "modes": {
            mode: measure(bundles[mode], texts, labels, latency_texts, repeats) for mode in order
        },
    }


def quantize_markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table."""
    header = [
        "mode",
        "model MB",
        "accuracy (batch 64)",
        "accuracy (batch 1)",
        "labels flipped 1 vs 64",
        "p50 ms (1 text)",
        "texts/s (batch 64)",
    ]
    rows = [
        [
            mode,
            f"{m['model_bytes'] / 1e6:.2f}",
            f"{100 * m['accuracy_batch64']:.2f}",
            f"{100 * m['accuracy_batch1']:.2f}",
            str(m["label_flips_batch1_vs_64"]),
            f"{m['latency_ms']['p50']:.2f}",
            f"{m['throughput_batch64']:.0f}",
        ]
        for mode, m in results["modes"].items()
    ]
    lines = [
        "# Bundle quantisation: bytes, accuracy, batch invariance, speed",
        "",
        f"Student `{results['student']}`, the {results['sentences']} sentences of "
        f"`{results['labelled']}`; one onnxruntime thread, latency over "
        f"{results['latency_texts']} single sentences, throughput best of a "
        f"{results['repeats']}-pass sum in batches of {BATCH_SIZE}; machine "
        f"{results['machine']}.",
        "",
        *markdown_rows(header, rows),
        "",
        "Dynamic int8 (onnxruntime `quantize_dynamic`) scales each batch's activations as a whole,",
        "so a sentence's label can depend on its neighbours; weight-only int8 (`export.quantize`)",
        "stores int8 weights with one scale per output channel, which onnxruntime turns back into",
        "float32 when it loads the model, so every activation is float32 and batch 1 and batch 64",
        "agree. It keeps the dynamic mode's size and the float model's speed.",
        "",
        f"    {results.get('command', '')}",
        "",
    ]
    return "\n".join(lines)
