"""The speed frontier: every student of a run beside the teacher (fp32 and int8 bundles) and the
peers, measured in one process, with what each model asks of the machine.

For each student variant: every finished seed's validation and test accuracy (metrics.json;
mean and sample standard deviation over seeds) and, for its lowest finished seed's bundle
(exported with the given settings; default int8 weights, every embedding row: pruning the
vocabulary to the transfer set cost MPQA's students 5.6 points, docs/results.md): bytes,
one-sentence latency p50 / p90 on one thread, throughput in batches of 64 at 1 and 2 threads
(`distilrnn.bench.peers.Peer.time`, the timing the peers use). The teacher's fp32 and int8
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrnn.atomic import write_json_atomic
from distilrnn.bench.peers import (
    PEERS,
    REFERENCE,
    Peer,
    add_ratios,
    bundle_peer,
    labelled,
    teacher_peers,
    train_peers,
)
from distilrnn.errors import ConfigError, MissingFileError
from distilrnn.stats import summarize
from distilrnn.timing import time_calls

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
    from distilrnn.bench.flops import student_macs, teacher_macs
    from distilrnn.runtime import read_bundle_config

    lengths = token_lengths(bundle_dir, texts)
    length = max(1, round(float(lengths.mean())))
    if kind == "student":
        from distilrnn.student.model import StudentConfig

        config = StudentConfig.from_dict(read_bundle_config(bundle_dir)["student"])
        macs, counted_by = student_macs(config, length), "student_macs"
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
    from distilrnn.bench.peers import THREADS as PEER_THREADS
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


# markdown --------------------------------------------------------------------------------------
def _count(value: int) -> str:
    """A multiply-add count in G / M / k."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _export_words(export: dict[str, Any]) -> str:
    words = ["int8 weights" if export["quantize"] else "float32 weights"]
    if export["prune_vocab"]:
        words.append(f"vocabulary pruned to `{export['prune_vocab']}`")
    return ", ".join(words)


def _accuracy_cell(summary: dict[str, Any], sd: bool = True) -> str:
    text = f"{100 * summary['mean']:.2f}"
    if sd and summary["std"] is not None:
        text += f" ± {100 * summary['std']:.2f}"
    return text


def frontier_table(results: dict[str, Any]) -> str:
    """The frontier as one markdown table and its notes (the report's section body)."""
    one, two = THREADS
    lines = [
        "| model | seeds | val acc (%) | test acc (%) ± sd | bytes | p50 (ms) | "
        f"texts/s ({one} thr) | texts/s ({two} thr) | x int8 teacher ({two} thr) | "
        f"x fp32 teacher ({two} thr) | MACs/sentence (@ tokens) | GFLOP/s ({one} / {two} thr) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["models"]:
        throughput = row["speed"]["throughput_texts_per_s"]
        macs, rates = row["macs"]["per_sentence"], row["gflops"]
        counted = "n/a" if macs is None else f"{_count(macs)} @ {row['macs']['length']}"
        pareto = " †" if row["name"] in results["pareto"] else ""
        lines.append(
            f"| {row['name']}{pareto} | {row['accuracy']['test']['n']} | "
            f"{_accuracy_cell(row['accuracy']['validation'], sd=False)} | "
            f"{_accuracy_cell(row['accuracy']['test'])} | {row['model_bytes']:,} | "
            f"{row['speed']['latency_ms']['p50']:.3f} | {throughput[one]:,.0f} | "
            f"{throughput[two]:,.0f} | {row['ratios'][REFERENCE]['throughput'][two]:.1f}x | "
            f"{row['ratios'][FLOAT_TEACHER]['throughput'][two]:.1f}x | "
            f"{counted} | "
            f"{'n/a' if rates is None else f'{rates[one]:.2f} / {rates[two]:.2f}'} |"
        )
    peak = results["runtime_peak_gflops"]
    lines += [
        "",
        "† Pareto-optimal on test accuracy and throughput at 2 threads. Student accuracy: mean "
        "(± sample sd) over its seeds, from training; the timed bundle is one seed's.",
    ]
    for row in results["models"]:
        if row["kind"] == "student":
            bundle = row["bundle_accuracy"]["test"]
            lines.append(
                f"- {row['name']}: seeds {row['seeds']}; seed {row['timed_seed']}'s bundle "
                f"scores {100 * bundle:.2f} % on test."
            )
        if row.get("threads_note"):
            lines.append(f"- {row['name']}: {row['threads_note']}.")
    for skip in results["skipped"]:
        lines.append(f"- skipped {skip['name']}: {skip['reason']}.")
    lines.append(
        "- MACs at the mean real length of the test texts under each bundle's tokenizer, "
        "rounded (@ tokens); GFLOP/s = 2 x MACs x texts/s; the peers' sparse features are n/a."
    )
    lines.append(
        f"- onnxruntime float32 matrix product here: {peak['1']:.1f} GFLOP/s on 1 thread, "
        f"{peak['2']:.1f} on 2 ({results['inputs']['peak_matrix_size']}² matrices)."
    )
    return "\n".join(lines) + "\n"


def breakdown_table(results: dict[str, Any]) -> str:
    """Where a batch's time goes, per text, for the broken-down models."""
    lines = [
        "| model | tokenise (µs/text) | session (µs/text) | other (µs/text) | total (µs/text) | "
        "tokenise share | padded / real tokens | session GFLOP/s | tokenise, cold cache | "
        "tokenizers library alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for part in results["breakdown"]:
        us, rate = part["us_per_text"], part["session_gflops"]
        lines.append(
            f"| {part['name']} | {us['tokenise']:.1f} | {us['session']:.1f} | {us['other']:.1f} "
            f"| {us['total']:.1f} | {100 * part['share']['tokenise']:.0f} % | "
            f"{part['tokens']['padded'] / part['tokens']['real']:.2f} | "
            f"{'n/a' if rate is None else f'{rate:.2f}'} | {us.get('tokenise_cold', 0.0):.1f} | "
            f"{us.get('tokenise_library', 0.0):.1f} |"
        )
    return "\n".join(lines) + "\n"


def frontier_markdown(results: dict[str, Any]) -> str:
    """`benchmark_frontier` results as markdown: the frontier table, then the time breakdown."""
    examples, host, inputs = results["run"]["examples"], results["machine"], results["inputs"]
    return (
        f"# Speed frontier: {results['run']['run_dir']}\n\n"
        f"{examples['test']:,} test texts timed; latency: one sentence a call on one thread "
        f"(first {inputs['latency_texts']}); throughput: batches of {inputs['batch_size']} in "
        f"test order, best of {inputs['repeats']}, tokenisation included (the bundles' word "
        "cache warm after the first pass, as in a running service). Students exported "
        f"with {_export_words(results['export'])}. {host['cpu_count']} CPUs, "
        f"{host['platform']}, onnxruntime {host['onnxruntime']}.\n\n"
        f"{frontier_table(results)}\n"
        "## Where the time goes (batch 64, one thread)\n\n"
        f"{breakdown_table(results)}\n"
        "The total is the warm-cache tokenisation, the session and the rest; the last two "
        "columns are beside it: tokenisation from an empty word cache (a process's first "
        "pass), and by the tokenizers library alone (the Predictor before its word cache).\n"
    )
