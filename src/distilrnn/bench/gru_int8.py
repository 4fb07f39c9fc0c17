"""The int8 GRU against the float GRU bundle: bytes, one-thread speed and how far the logits move.

A GRU student with random weights (speed does not depend on what the weights learnt) over a
word-level vocabulary, exported three ways: float, weight-only int8 (`gru_int8` off: int8
storage, float arithmetic) and int8 GRU (`distilrnn.export.gru_int8`). Each bundle is timed
through `Predictor` (tokenisation included) on the same random sentences: one-sentence p50
latency and throughput in batches of 64, one onnxruntime thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.bench.tables import machine, markdown_rows
from distilrnn.config import ExportSettings
from distilrnn.export import export_bundle
from distilrnn.runtime import MODEL_NAME, Predictor
from distilrnn.timing import latency_ms, throughput

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
LABELS = ["negative", "positive"]
BATCH_SIZE = 64
# name -> `StudentConfig` fields: the tests' tiny GRU, and SST-2's BiGRU (docs/results.md)
SIZES = {
    "tiny": {"vocab_size": 64, "embedding_dim": 32, "hidden_size": 24, "head_hidden_size": 8},
    "realistic": {
        "vocab_size": 30522,
        "embedding_dim": 384,
        "hidden_size": 256,
        "head_hidden_size": 256,
    },
}
MODES = {
    "float": {},
    "int8 weight-only": {"quantize": True, "gru_int8": False},
    "int8 GRU": {"quantize": True},
}


def random_student(size: dict[str, int], seed: int) -> tuple[Any, Any]:
    """A bidirectional one-layer GRU student with random weights and a word-level tokenizer
    (`[CLS] words [SEP]`) over its `vocab_size` ids."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from distilrnn.student import RNNStudent, StudentConfig

    words = [f"w{index}" for index in range(size["vocab_size"] - len(SPECIAL))]
    vocabulary = {token: index for index, token in enumerate(SPECIAL + words)}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    torch.manual_seed(seed)
    config = StudentConfig(**size, rnn="gru", bidirectional=True, num_layers=1, padding_idx=0)
    return RNNStudent(config).eval(), tokenizer


def random_texts(count: int, vocab_size: int, seed: int, lengths: tuple[int, int]) -> list[str]:
    """`count` sentences of random words, `lengths` (inclusive) words long."""
    rng = np.random.default_rng(seed)
    words = vocab_size - len(SPECIAL)
    return [
        " ".join(
            f"w{i}" for i in rng.integers(0, words, size=rng.integers(*lengths, endpoint=True))
        )
        for _ in range(count)
    ]


def measure(bundle: Path, texts: list[str], reference: np.ndarray | None, repeats: int) -> dict:
    """Bytes, speed and, against `reference` (the float bundle's logits), the logit change."""
    single = Predictor(bundle, batch_size=1, threads=1)
    batched = Predictor(bundle, batch_size=BATCH_SIZE, threads=1)
    logits = batched.logits(texts)
    alone = single.logits(texts[:BATCH_SIZE])
    files = [path for path in bundle.iterdir() if path.is_file()]
    result = {
        "bundle_bytes": sum(path.stat().st_size for path in files),
        "model_bytes": (bundle / MODEL_NAME).stat().st_size,
        "latency_ms": latency_ms(lambda text: single.logits([text]), texts[:100]),
        "throughput_batch64": throughput(batched.logits, texts, repeats),
        "max_logit_change_batch1_vs_64": float(np.abs(alone - logits[:BATCH_SIZE]).max()),
    }
    if reference is not None:
        result["max_logit_change_vs_float"] = float(np.abs(logits - reference).max())
        result["argmax_agreement_vs_float"] = float(
            (logits.argmax(axis=1) == reference.argmax(axis=1)).mean()
        )
    return result


def benchmark_gru_int8(
    work_dir: Path,
    sizes: tuple[str, ...] = tuple(SIZES),
    texts: int = 512,
    lengths: tuple[int, int] = (5, 40),
    repeats: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Each of `sizes` (`SIZES` names) exported in every `MODES` mode into `work_dir` and
    measured on `texts` random sentences of `lengths` words."""
    results: dict[str, Any] = {
        "texts": texts,
        "lengths": list(lengths),
        "threads": 1,
        "batch_size": BATCH_SIZE,
        "repeats": repeats,
        "machine": machine("onnxruntime", "numpy"),
        "sizes": {},
    }
    for name in sizes:
        size = SIZES[name]
        student, tokenizer = random_student(size, seed)
        sentences = random_texts(texts, size["vocab_size"], seed, lengths)
        reference = None
        modes = {}
        for mode, settings in MODES.items():
            bundle = Path(work_dir) / name / mode.replace(" ", "-")
            export_bundle(student, tokenizer, bundle, ExportSettings(labels=LABELS, **settings))
            modes[mode] = measure(bundle, sentences, reference, repeats)
            if reference is None:
                reference = Predictor(bundle, batch_size=BATCH_SIZE).logits(sentences)
        results["sizes"][name] = {"student": size, "modes": modes}
    return results


def gru_int8_markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table, one row per size and mode."""
    header = [
        "student",
        "mode",
        "bundle bytes",
        "model bytes",
        "p50 ms (1 text)",
        "texts/s (batch 64)",
        "x float",
        "max |Δ logit| vs float",
        "same argmax",
    ]
    rows = []
    for name, entry in results["sizes"].items():
        size = entry["student"]
        label = f"{name} (emb {size['embedding_dim']}, BiGRU {size['hidden_size']})"
        base = entry["modes"]["float"]["throughput_batch64"]
        for mode, m in entry["modes"].items():
            change = m.get("max_logit_change_vs_float")
            agreement = m.get("argmax_agreement_vs_float")
            rows.append(
                [
                    label,
                    mode,
                    f"{m['bundle_bytes']:,}",
                    f"{m['model_bytes']:,}",
                    f"{m['latency_ms']['p50']:.2f}",
                    f"{m['throughput_batch64']:.0f}",
                    f"{m['throughput_batch64'] / base:.2f}",
                    "-" if change is None else f"{change:.4f}",
                    "-" if agreement is None else f"{100 * agreement:.1f} %",
                ]
            )
    lines = [
        "# int8 GRU bundles against float",
        "",
        f"Random weights, {results['texts']} random sentences of {results['lengths'][0]}-"
        f"{results['lengths'][1]} words; one onnxruntime thread, tokenisation included; "
        f"throughput: a {results['repeats']}-pass sum in batches of {results['batch_size']}; "
        f"machine {results['machine']}. Rough: the CPU was shared with other work.",
        "",
        *markdown_rows(header, rows, left=2),
        "",
        f"    {results.get('command', '')}",
        "",
    ]
    return "\n".join(lines)
