"""Bundle bytes and test accuracy of narrowed students over their seeds, against the student each
one started from.

For each variant and each of its trained seeds, exports a bundle per compression setting (float,
int8, int8 with a 4-bit embedding), at its own width or factorised at export to each of `ranks`
(no training; tokens weighted by their frequency in the texts the student trained on), and
measures its bytes, its accuracy on the test half and its one-sentence p50 latency (one thread).
The change in accuracy is taken against the eager student of the same seed of `reference`
(default: the variant's `init_from`, else the variant itself), then summarised over seeds (mean,
std, min) with a paired bootstrap over test sentences (each sentence's correctness averaged over
the seeds); the same change on the validation half is there to choose a setting by, leaving the
test half to report it.

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes (its safetensors)
losing at most 0.5 points of test accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.bench.tables import machine, yes_no
from distilrnn.config import ExportSettings, RunConfig
from distilrnn.errors import ConfigError, MissingFileError
from distilrnn.evaluate import folder_bytes
from distilrnn.export import export_student
from distilrnn.run import Run, StudentRecord
from distilrnn.runtime import Predictor
from distilrnn.stats import paired_bootstrap
from distilrnn.timing import latency_ms

logger = logging.getLogger(__name__)

# name -> (quantise, embedding bits)
SETTINGS = {"none": (False, 8), "quantize": (True, 8), "quantize-emb4": (True, 4)}
SIZE_TARGET = 1 / 20
ACCURACY_TARGET_POINTS = -0.5


@dataclass
class Split:
    """Texts and gold label ids `(n,)` of one split of the run."""

    texts: list[str]
    gold: np.ndarray

    def correct(self, logits: np.ndarray) -> np.ndarray:
        """Per-text correctness `(n,)` bool of `logits` `(n, num_labels)`."""
        return logits.argmax(-1) == self.gold


def _reference(run: Run, name: str, seed: int, test: Split, validation: Split) -> dict[str, Any]:
    """The eager reference student of `seed`: its test accuracy, per-sentence test correctness
    and validation accuracy."""
    record = StudentRecord.read(run.student_dir(name, seed))
    predictions = record.predictions()
    if predictions is None:
        raise MissingFileError(f"no predictions.json in {record.directory}")
    return {
        "name": name,
        "test_accuracy": record.test_accuracy,
        "correct": test.correct(predictions["test"]),
        "validation_accuracy": float(validation.correct(predictions["validation"]).mean()),
    }


def _bundle_row(
    run: Run,
    student: StudentRecord,
    out: Path,
    settings: ExportSettings,
    splits: tuple[Split, Split],
    latency_texts: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Export `student` with `settings` to `out` and measure the bundle: the row's measured
    fields, and its per-sentence test correctness."""
    test, validation = splits
    summary = export_student(run.root, out, settings, variant=student.variant, seed=student.seed)
    latency = Predictor(out, threads=1)
    predictor = Predictor(out, threads=2)
    test_correct = test.correct(predictor.logits(test.texts))
    row = {
        "embedding_dim": predictor.config["student"]["embedding_dim"],
        "bundle_bytes": summary["bundle_bytes"],
        "files": summary["files"],
        "test_accuracy": summary["evaluation"]["accuracy"],
        "student_test_accuracy": student.test_accuracy,
        "validation_accuracy": float(validation.correct(predictor.logits(validation.texts)).mean()),
        "latency_p50_ms": latency_ms(
            lambda text: latency.predict([text]), test.texts[:latency_texts]
        )["p50"],
    }
    return row, test_correct


def student_rows(
    config: RunConfig,
    variants: Sequence[str],
    *,
    work_dir: Path,
    reference: str | None = None,
    ranks: Sequence[int] = (),
    settings: Sequence[str] = ("none", "quantize"),
    latency_texts: int = 200,
) -> list[dict[str, Any]]:
    """One row per variant, seed, rank and setting; each row's per-sentence test correctness
    (bundle and reference) under the private key `_correct`. Untrained seeds are skipped."""
    run = Run(config.run_dir)
    task_splits = run.task().splits
    test, validation = (
        Split(list(task_splits[name]["text"]), np.asarray(task_splits[name]["label"]))
        for name in ("test", "validation")
    )
    finished = set(run.finished_students())
    rows = []
    for name in variants:
        student_settings = config.student_for(config.variant(name))
        reference_name = reference or student_settings.init_from or name
        for seed in student_settings.seeds:
            student_dir = run.student_dir(name, seed)
            if student_dir not in finished:
                logger.warning("skipping %s: not trained", student_dir)
                continue
            student = StudentRecord.read(student_dir)
            against = _reference(run, reference_name, seed, test, validation)
            for rank in ranks or [0]:
                for setting in settings:
                    quantize, bits = SETTINGS[setting]
                    suffix = f"-rank{rank}" if rank else ""
                    measured, correct = _bundle_row(
                        run,
                        student,
                        work_dir / f"{name}-seed-{seed}{suffix}-{setting}",
                        ExportSettings(quantize=quantize, embedding_bits=bits, embedding_rank=rank),
                        (test, validation),
                        latency_texts,
                    )
                    row = {
                        "variant": name,
                        "seed": seed,
                        "export_rank": rank or None,
                        "setting": setting,
                        **measured,
                        "reference": reference_name,
                        "reference_test_accuracy": against["test_accuracy"],
                        "delta_points": 100
                        * (measured["test_accuracy"] - against["test_accuracy"]),
                        "validation_delta_points": 100
                        * (measured["validation_accuracy"] - against["validation_accuracy"]),
                        "_correct": (correct, against["correct"]),
                    }
                    rows.append(row)
                    logger.info(
                        "%s%s seed %d %s: %s bytes, %.2f %% (%+.2f vs %s)",
                        name,
                        suffix,
                        seed,
                        setting,
                        f"{row['bundle_bytes']:,}",
                        100 * row["test_accuracy"],
                        row["delta_points"],
                        reference_name,
                    )
    return rows


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]], teacher_bytes: int) -> list[dict[str, Any]]:
    """One summary per variant, export rank and setting over its seeds: bytes against the
    teacher's, accuracy and its change (mean, std, min), a paired bootstrap over test sentences,
    median latency and the targets met."""
    groups: dict[tuple[str, int | None, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["variant"], row["export_rank"], row["setting"]), []).append(row)
    out = []
    for (variant, rank, setting), members in groups.items():
        delta = np.array([m["delta_points"] for m in members])
        validation_delta = np.array([m["validation_delta_points"] for m in members])
        accuracy = np.array([100 * m["test_accuracy"] for m in members])
        size = int(np.max([m["bundle_bytes"] for m in members]))
        test = paired_bootstrap(
            np.stack([m["_correct"][0] for m in members]),
            np.stack([m["_correct"][1] for m in members]),
        )
        out.append(
            {
                "variant": variant,
                "export_rank": rank,
                "setting": setting,
                "seeds": [m["seed"] for m in members],
                "embedding_dim": members[0]["embedding_dim"],
                "reference": members[0]["reference"],
                "max_bundle_bytes": size,
                "fraction_of_teacher_bytes": size / teacher_bytes,
                "test_accuracy_mean": float(accuracy.mean()),
                "test_accuracy_std": _std(accuracy),
                "delta_points_mean": float(delta.mean()),
                "delta_points_std": _std(delta),
                "delta_points_min": float(delta.min()),
                "validation_delta_points_mean": float(validation_delta.mean()),
                "paired_bootstrap_points": {
                    "difference": 100 * test["difference"],
                    "ci_low": 100 * test["ci_low"],
                    "ci_high": 100 * test["ci_high"],
                    "p_value": test["p_value"],
                },
                "latency_p50_ms_median": float(np.median([m["latency_p50_ms"] for m in members])),
                "meets_size_target": size / teacher_bytes <= SIZE_TARGET,
                "meets_accuracy_target": float(delta.mean()) >= ACCURACY_TARGET_POINTS,
            }
        )
    return out


def benchmark_narrow(
    config: RunConfig,
    variants: Sequence[str],
    *,
    reference: str | None = None,
    ranks: Sequence[int] = (),
    settings: Sequence[str] = ("none", "quantize"),
    work_dir: Path | None = None,
    latency_texts: int = 200,
) -> dict[str, Any]:
    """Bundles of every trained seed of `variants` (see the module docstring), into `work_dir`
    (default: the run's `bundles-narrow/`). Returns a JSON-ready dict: `run_dir`,
    `teacher_bytes`, `rows` (one per bundle), `summary` (one per variant, rank and setting),
    `machine`."""
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown or not settings:
        raise ConfigError(f"settings: choose from {', '.join(SETTINGS)}, got {list(settings)}")
    if any(rank < 1 for rank in ranks):
        raise ConfigError(f"ranks must be >= 1, got {list(ranks)}")
    if latency_texts < 1:
        raise ConfigError(f"latency_texts must be >= 1, got {latency_texts}")
    run = Run(config.run_dir)
    teacher_bytes = folder_bytes(run.teacher_model_dir)
    rows = student_rows(
        config,
        variants,
        work_dir=Path(work_dir) if work_dir is not None else run.root / "bundles-narrow",
        reference=reference,
        ranks=ranks,
        settings=settings,
        latency_texts=latency_texts,
    )
    summary = summarise(rows, teacher_bytes)
    for row in rows:
        del row["_correct"]
    return {
        "run_dir": str(run.root),
        "teacher_bytes": teacher_bytes,
        "rows": rows,
        "summary": summary,
        "machine": machine("onnxruntime"),
    }


def narrow_markdown(results: dict[str, Any]) -> str:
    """`benchmark_narrow` results as markdown: one row per variant, rank and setting."""
    lines = [
        f"# Narrowed students over seeds: {results['run_dir']}",
        "",
        f"Teacher: {results['teacher_bytes']:,} bytes (safetensors). Δ: test points against the "
        "eager reference student of the same seed. Machine: "
        f"{results['machine']['cpu_count']} CPUs, {results['machine']['platform']}.",
        "",
        "| variant | width | factorised at export | setting | seeds | bundle bytes (max) | "
        "/ teacher | Δ validation | test % | Δ mean ± std | Δ min | "
        "Δ 95 % CI (paired bootstrap), p | p50 ms | size ≤ 1/20 | Δ ≥ -0.5 |",
        "|---|---:|:-:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|:-:|:-:|",
    ]
    for row in results["summary"]:
        bootstrap = row["paired_bootstrap_points"]
        lines.append(
            f"| {row['variant']} | {row['embedding_dim']} | "
            f"{'no' if row['export_rank'] is None else 'yes'} | {row['setting']} | "
            f"{len(row['seeds'])} | {row['max_bundle_bytes']:,} | "
            f"{row['fraction_of_teacher_bytes']:.4f} | "
            f"{row['validation_delta_points_mean']:+.2f} | "
            f"{row['test_accuracy_mean']:.2f} ± {row['test_accuracy_std']:.2f} | "
            f"{row['delta_points_mean']:+.2f} ± {row['delta_points_std']:.2f} | "
            f"{row['delta_points_min']:+.2f} | "
            f"[{bootstrap['ci_low']:+.2f}, {bootstrap['ci_high']:+.2f}], "
            f"{bootstrap['p_value']:.2f} | "
            f"{row['latency_p50_ms_median']:.3f} | "
            f"{yes_no(row['meets_size_target'])} | {yes_no(row['meets_accuracy_target'])} |"
        )
    return "\n".join(lines) + "\n"
