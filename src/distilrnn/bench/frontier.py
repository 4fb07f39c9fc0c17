"""The speed frontier: every student of a run beside the teacher (fp32 and int8 bundles) and the
peers, measured in one process, with what each model asks of the machine.

For each student variant: every finished seed's validation and test accuracy (metrics.json;
mean and sample standard deviation over seeds) and, for its lowest finished seed's bundle
(exported with the given settings; default int8 weights, every embedding row: pruning the
vocabulary to the transfer set cost MPQA's students 5.6 points, docs/results.md): bytes,
one-sentence latency p50 / p90 on one thread, throughput in batches of 64 at 1 and 2 threads
(`distilrnn.bench.peer.Peer.time`, the timing the peers use). The teacher's fp32 and int8
bundles and the peers (TF-IDF + logistic regression, fastText; optional) are timed the same way.
Speed ratios are taken against both teacher bundles.

Arithmetic: multiply-adds per sentence (`distilrnn.bench.flops`) at the mean real token length
of the test texts under each bundle's tokenizer (rounded to whole tokens), and the rate they
imply in each throughput run, GFLOP/s = 2 x MACs x texts/s / 1e9. The peers carry no count
(their sparse features are not multiply-adds of the same kind). Beside them: the mean padded
length the runtime really feeds (batches of 64 in test order, each padded to its longest text),
the float32 matrix-product rate onnxruntime reaches on this machine (`runtime_peak_gflops`),
and, for one student and the int8 teacher, where a batch's time goes: tokenisation, the
onnxruntime session, and the rest (sorting, padding, Python).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilrnn.atomic import write_json_atomic
from distilrnn.bench.compute import gflops, model_macs, runtime_peak_gflops, time_breakdown
from distilrnn.bench.peer import REFERENCE, Peer, bundle_peer, labelled, teacher_peers
from distilrnn.bench.peers import add_ratios
from distilrnn.bench.trained_peers import PEERS, train_peers
from distilrnn.errors import ConfigError, MissingFileError
from distilrnn.stats import summarize

if TYPE_CHECKING:
    from distilrnn.config import ExportSettings
    from distilrnn.data import Task
    from distilrnn.run import Run

logger = logging.getLogger(__name__)

FLOAT_TEACHER = "teacher-onnx-fp32"
REFERENCES = (REFERENCE, FLOAT_TEACHER)  # speed ratios are taken against both
THREADS = ("1", "2")
PEER_MACS_NOTE = "n/a: sparse features (TF-IDF, hashed n-grams), not counted as multiply-adds"


def deploy_settings() -> ExportSettings:
    """What a student is timed as by default: int8 weights, every embedding row (a pruned
    vocabulary sends the test texts' unseen words to the unknown token, which cost MPQA's
    students 5.6 points; a config's `[export]` can ask for it)."""
    from distilrnn.config import ExportSettings

    return ExportSettings(quantize=True)


# accuracy over seeds ---------------------------------------------------------------------------
def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """`{"values", "mean", "std", "n"}`: the sample standard deviation (ddof 1), None for one
    value."""
    summary = summarize(values)
    std = summary.std if summary.n > 1 else None
    return {"values": [float(v) for v in values], "mean": summary.mean, "std": std, "n": summary.n}


def finished_seeds(run: Run, variant: str) -> list[int]:
    """The seeds of `variant` whose stage finished, lowest first."""
    finished = set(run.finished_students())
    seeds = [seed for seed in run.seeds(variant) if run.student_dir(variant, seed) in finished]
    if not seeds:
        raise MissingFileError(
            f"no finished seed of {variant!r} in {run.root}: run `distilrnn student` first"
        )
    return seeds


def variant_accuracy(run: Run, variant: str) -> dict[str, Any]:
    """Validation and test accuracy of every finished seed of `variant` (its metrics.json)."""
    seeds = finished_seeds(run, variant)
    records = [run.student(variant, seed) for seed in seeds]
    accuracy = {}
    for split in ("validation", "test"):
        values = [record.score(split, "accuracy") for record in records]
        if any(value is None for value in values):
            raise MissingFileError(f"a seed of {variant!r} in {run.root} has no {split} accuracy")
        accuracy[split] = seed_summary(values)
    return {"seeds": seeds, "accuracy": accuracy}


# the benchmark -----------------------------------------------------------------------------------
def _check_task(task: Task) -> None:
    if task.is_regression or task.is_pair:
        raise ConfigError(
            "the frontier compares single-text classifiers by accuracy; this task is "
            f"{'a regression' if task.is_regression else 'of sentence pairs'}"
        )


def student_bundle(
    run: Run, variant: str, seed: int, work_dir: Path, settings: ExportSettings
) -> Peer:
    """`variant`'s student of `seed` exported with `settings` under `work_dir`, as a `Peer`."""
    from distilrnn.export import export_student

    summary = export_student(
        run.root, work_dir / f"student-{variant}", settings, variant=variant, seed=seed
    )
    peer = bundle_peer(f"student-{variant}", "student", Path(summary["bundle_dir"]))
    peer.chosen["export"] = summary["compression"]
    return peer


def _row(peer: Peer, texts: Sequence[str], teacher_dir: Path) -> dict[str, Any]:
    """A frontier row: peers.json's row plus its accuracy summary, MACs and GFLOP/s."""
    row = peer.record()
    row["accuracy"] = {
        split: seed_summary([row[f"{split}_accuracy"]]) for split in ("validation", "test")
    }
    if peer.kind == "peer":
        row["macs"] = {"per_sentence": None, "note": PEER_MACS_NOTE}
    else:
        row["macs"] = model_macs(Path(peer.chosen["bundle_dir"]), peer.kind, texts, teacher_dir)
    throughput = row["speed"]["throughput_texts_per_s"]
    row["gflops"] = gflops(row["macs"]["per_sentence"], throughput)
    return row


def _add_both_ratios(rows: list[dict[str, Any]]) -> None:
    """`row["ratios"][reference]` against each teacher bundle (`add_ratios`' definition)."""
    ratios: list[dict[str, Any]] = [{} for _ in rows]
    for reference in REFERENCES:
        add_ratios(rows, reference)
        for row, kept in zip(rows, ratios, strict=True):
            kept[reference] = row.pop("ratios")
    for row, kept in zip(rows, ratios, strict=True):
        row["ratios"] = kept


def pareto_optimal(rows: Sequence[dict[str, Any]], threads: str = "2") -> list[str]:
    """Names of the rows no other row beats on both mean test accuracy and throughput at
    `threads` (at least as good on both, better on one), fastest first."""

    def point(row: dict[str, Any]) -> tuple[float, float]:
        return row["speed"]["throughput_texts_per_s"][threads], row["accuracy"]["test"]["mean"]

    optimal = [
        row
        for row in rows
        if not any(
            other is not row
            and point(other)[0] >= point(row)[0]
            and point(other)[1] >= point(row)[1]
            and point(other) != point(row)
            for other in rows
        )
    ]
    return [row["name"] for row in sorted(optimal, key=lambda row: -point(row)[0])]


def benchmark_frontier(
    run: Run,
    variants: Sequence[str],
    export_settings: ExportSettings | None = None,
    *,
    peers: Sequence[str] = PEERS,
    work_dir: Path | None = None,
    latency_texts: int = 200,
    repeats: int = 3,
    peer_options: dict[str, dict[str, Any]] | None = None,
    breakdown_variant: str | None = None,
    peak_size: int = 1024,
) -> dict[str, Any]:
    """Measure the frontier of `run`, in this process, and write `run.frontier_file`.

    Args:
        run: a finished run of a single-text classification task.
        variants: the students to measure (each over its finished seeds; its lowest finished
            seed's bundle is timed).
        export_settings: how the students are exported (default `deploy_settings()`).
        peers: the peers to train beside them (`()`: none); a missing package skips one.
        work_dir: where the bundles go (default: the run's `frontier/`).
        latency_texts, repeats: test texts timed one at a time; throughput passes (best kept).
        peer_options: `options[peer]` go to its `select_*` (e.g. fastText's `bucket`).
        breakdown_variant: the student whose time is split up beside the int8 teacher's
            (default: the first of `variants`).
        peak_size: the matrix side of `runtime_peak_gflops`.

    Returns:
        frontier.json's content: `run`, `references`, `models` (peers, teachers, students),
        `pareto` (names), `breakdown`, `runtime_peak_gflops`, `skipped`, `inputs`, `machine`.
    """
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.bench.peer import THREADS as PEER_THREADS
    from distilrnn.bench.tables import machine

    if latency_texts < 1 or repeats < 1:
        raise ConfigError(f"latency_texts and repeats must be >= 1, got {latency_texts}, {repeats}")
    if not variants:
        raise ConfigError("variants: name at least one student to put on the frontier")
    breakdown_variant = breakdown_variant or variants[0]
    if breakdown_variant not in variants:
        raise ConfigError(f"breakdown_variant {breakdown_variant!r} is not one of {list(variants)}")
    task = run.task()
    _check_task(task)
    accuracy = {variant: variant_accuracy(run, variant) for variant in variants}
    work_dir = Path(work_dir) if work_dir is not None else run.root / "frontier"
    settings = export_settings or deploy_settings()
    trained, skipped = train_peers(task, peers, peer_options)
    bundles = teacher_peers(run, work_dir)
    for variant in variants:
        seed = accuracy[variant]["seeds"][0]
        bundles.append(student_bundle(run, variant, seed, work_dir, settings))
    models = [*trained, *(peer.evaluate(task) for peer in bundles)]
    texts, _ = labelled(task.test)
    teacher_dir = run.teacher_model_dir
    rows = []
    for peer in models:
        logger.info("timing %s", peer.name)
        peer.time(texts, latency_texts=latency_texts, repeats=repeats)
        rows.append(_row(peer, texts, teacher_dir))
    for row, variant in zip(rows[-len(variants) :], variants, strict=True):
        row["variant"] = variant
        row["timed_seed"] = accuracy[variant]["seeds"][0]
        row["seeds"] = accuracy[variant]["seeds"]
        row["bundle_accuracy"] = {s: row[f"{s}_accuracy"] for s in ("validation", "test")}
        row["accuracy"] = accuracy[variant]["accuracy"]
    _add_both_ratios(rows)
    by_name = {row["name"]: row for row in rows}
    breakdown = [
        time_breakdown(
            name,
            Path(by_name[name]["chosen"]["bundle_dir"]),
            texts,
            repeats,
            by_name[name]["macs"]["per_sentence"],
        )
        for name in (f"student-{breakdown_variant}", REFERENCE)
    ]
    results = {
        "run": {
            "run_dir": str(run.root),
            "examples": {name: len(task.splits[name]) for name in ("train", "validation", "test")},
            "labels": list(task.label_names),
        },
        "references": list(REFERENCES),
        "export": dataclasses.asdict(settings),
        "models": rows,
        "pareto": pareto_optimal(rows),
        "breakdown": breakdown,
        "runtime_peak_gflops": runtime_peak_gflops(peak_size, (1, 2), repeats),
        "skipped": skipped,
        "inputs": {
            "timed_texts": len(texts),
            "latency_texts": min(latency_texts, len(texts)),
            "repeats": repeats,
            "batch_size": BATCH_SIZE,
            "threads": list(PEER_THREADS),
            "peak_matrix_size": peak_size,
        },
        "machine": machine("onnxruntime"),
    }
    write_json_atomic(run.frontier_file, results)
    return results
