"""Peers on the same data: what a user would deploy instead of a distilled student.

    tfidf-logreg       scikit-learn: TF-IDF of word 1-2 grams + logistic regression, `C` chosen
                       on the validation half
    fasttext           fastText supervised with word bigrams, epochs and learning rate chosen on
                       the validation half (Joulin et al. 2017)
    teacher-onnx-fp32  the fine-tuned teacher as a bundle run by `Predictor` (onnxruntime)
    teacher-onnx-int8  the same after onnxruntime's dynamic int8 quantisation: the honest speed
                       baseline, which every speed ratio is taken against

`benchmark_peers` trains the first two (`distilrnn.bench.trained_peers`, on the training split,
chosen on the validation half), exports the run's teacher and students as bundles
(`distilrnn.bench.peer`), scores every model and times it, in this process; `peers_markdown`
writes the results as a table. The test half is read once, to report. Every model is timed as
the bundles are (`distilrnn.bench.bundles`): one-sentence latency p50 / p90 on one thread over
the first `latency_texts` test texts, and throughput in batches of 64 in test order at 1 and 2
threads, best of `repeats`; tokenisation (or vectorisation) included.

Threads: onnxruntime runs on `threads` intra-op threads. scikit-learn is limited through
threadpoolctl, but its TF-IDF transform is Python and its sparse decision function runs on one
thread; fastText's predict runs one thread per call. Their 2-thread rows use one core, and say so.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilrnn.bench.peer import (
    REFERENCE,
    THREADS,
    check_task,
    installed_version,
    labelled,
    student_peer,
    teacher_peers,
)
from distilrnn.bench.trained_peers import (
    DEPENDENCIES,
    PEERS,
    fasttext_line,  # noqa: F401 (re-exported)
    fasttext_peer,  # noqa: F401 (re-exported)
    select_fasttext,  # noqa: F401 (re-exported)
    select_tfidf,  # noqa: F401 (re-exported)
    tfidf_peer,  # noqa: F401 (re-exported)
    train_peers,
)
from distilrnn.errors import ConfigError

if TYPE_CHECKING:
    from distilrnn.config import ExportSettings
    from distilrnn.run import Run

logger = logging.getLogger(__name__)

PEERS_NAME = "peers.json"  # in the run folder; the report plots it when it is there


# the benchmark -----------------------------------------------------------------------------------
def add_ratios(rows: list[dict[str, Any]], reference: str = REFERENCE) -> None:
    """Each row's speed against `reference`'s: `latency_p50` (its p50 / the row's: how many
    times faster one sentence is) and `throughput` per thread count (the row's / its)."""
    base = next((row for row in rows if row["name"] == reference), None)
    if base is None or base["speed"] is None:
        raise ConfigError(f"no timed {reference} row to take the speed ratios against")
    base_speed = base["speed"]
    for row in rows:
        speed = row["speed"]
        row["ratios"] = {
            "latency_p50": base_speed["latency_ms"]["p50"] / speed["latency_ms"]["p50"],
            "throughput": {
                count: value / base_speed["throughput_texts_per_s"][count]
                for count, value in speed["throughput_texts_per_s"].items()
            },
        }


def benchmark_peers(
    run: Run,
    *,
    peers: Sequence[str] = PEERS,
    variants: Sequence[str] = (),
    export_settings: ExportSettings | None = None,
    work_dir: Path | None = None,
    latency_texts: int = 200,
    repeats: int = 3,
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train the peers on the run's training split, export the run's teacher (float32, int8)
    and each of `variants`' students (lowest seed, `export_settings`) as bundles under
    `work_dir` (default: the run's `peers/`), score every model on the validation and test
    halves and time it on the test texts, in this process. Returns peers.json's content:
    `run`, `reference`, `models` (with speed `ratios` against the int8 teacher), `skipped`,
    `inputs`, `machine`."""
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.bench.tables import machine
    from distilrnn.config import ExportSettings

    if latency_texts < 1 or repeats < 1:
        raise ConfigError(f"latency_texts and repeats must be >= 1, got {latency_texts}, {repeats}")
    task = run.task()
    check_task(task)
    work_dir = Path(work_dir) if work_dir is not None else run.root / "peers"
    trained, skipped = train_peers(task, peers, options)
    bundles = teacher_peers(run, work_dir)
    for variant in variants:
        bundles.append(student_peer(run, variant, work_dir, export_settings or ExportSettings()))
    models = [*trained, *(peer.evaluate(task) for peer in bundles)]
    test_texts, _ = labelled(task.test)
    for peer in models:
        logger.info("timing %s", peer.name)
        peer.time(test_texts, latency_texts=latency_texts, repeats=repeats)
    rows = [peer.record() for peer in models]
    add_ratios(rows)
    sizes = {name: len(task.splits[name]) for name in ("train", "validation", "test")}
    versions = [
        installed_version(module) for module, _ in DEPENDENCIES.values() if _installed(module)
    ]
    return {
        "run": {"run_dir": str(run.root), "examples": sizes, "labels": list(task.label_names)},
        "reference": REFERENCE,
        "models": rows,
        "skipped": skipped,
        "inputs": {
            "timed_texts": len(test_texts),
            "latency_texts": min(latency_texts, len(test_texts)),
            "repeats": repeats,
            "batch_size": BATCH_SIZE,
            "threads": list(THREADS),
        },
        "machine": {**machine("onnxruntime"), "peers": versions},
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def peers_markdown(results: dict[str, Any]) -> str:
    """`benchmark_peers` results as markdown: a row per model, speed-ups against the int8
    teacher, what each peer chose on validation and the threads it really uses."""
    examples, host = results["run"]["examples"], results["machine"]
    one, two = (str(count) for count in results["inputs"]["threads"])
    lines = [
        f"# Peers on the same data: {results['run']['run_dir']}",
        "",
        f"Trained on the training split ({examples['train']:,} texts); hyper-parameters chosen "
        f"on the validation half ({examples['validation']:,}); the test half "
        f"({examples['test']:,}) read once, to report. Speed-ups are against "
        f"{results['reference']} (onnxruntime).",
        "",
        f"| model | runtime | bytes | val acc (%) | test acc (%) | p50 (ms) | p90 (ms) | "
        f"texts/s ({one} thr) | texts/s ({two} thr) | p50 speed-up | texts/s speed-up ({two} "
        "thr) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["models"]:
        latency, throughput = row["speed"]["latency_ms"], row["speed"]["throughput_texts_per_s"]
        lines.append(
            f"| {row['name']} | {row['runtime']} | {row['model_bytes']:,} | "
            f"{100 * row['validation_accuracy']:.2f} | {100 * row['test_accuracy']:.2f} | "
            f"{latency['p50']:.3f} | {latency['p90']:.3f} | {throughput[one]:.0f} | "
            f"{throughput[two]:.0f} | {row['ratios']['latency_p50']:.1f}x | "
            f"{row['ratios']['throughput'][two]:.1f}x |"
        )
    lines.append("")
    for row in results["models"]:
        chosen = {k: v for k, v in row["chosen"].items() if k != "bundle_dir"}
        if row["kind"] == "peer":
            lines.append(f"- {row['name']}: chose {json.dumps(chosen)} on validation.")
        if row["threads_note"]:
            lines.append(f"- {row['name']}: {row['threads_note']}.")
    for skip in results["skipped"]:
        lines.append(f"- skipped {skip['name']}: {skip['reason']}.")
    lines += [
        "",
        f"Latency: one sentence per call, one thread; throughput: batches of "
        f"{results['inputs']['batch_size']} in test order. Tokenisation included. "
        f"{host['cpu_count']} CPUs, {host['platform']}.",
    ]
    return "\n".join(lines) + "\n"
