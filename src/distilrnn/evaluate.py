"""Collect the teacher's and the students' metrics into results.json and a markdown table.

Accuracy is computed by the teacher and student stages on the validation and test halves; this
module adds what can be read off the artifacts (parameters, bytes on disk) and aggregates seeds.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from distilrnn import stats
from distilrnn.atomic import write_json_atomic
from distilrnn.config import RunConfig

logger = logging.getLogger(__name__)


PREDICTIONS_NAME = "predictions.json"


def save_predictions(directory: Path, logits: dict[str, np.ndarray]) -> None:
    """Write a model's logits per split, `{split: (n_examples, num_labels)}`, to
    `directory/predictions.json` (atomically), for per-example statistics later."""
    write_json_atomic(
        Path(directory) / PREDICTIONS_NAME,
        {split: np.asarray(values, dtype=np.float32).tolist() for split, values in logits.items()},
    )


def load_predictions(directory: Path) -> dict[str, np.ndarray] | None:
    """The logits `save_predictions` wrote, or None when the folder has none."""
    path = Path(directory) / PREDICTIONS_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"corrupt predictions file {path}: {error}") from None
    return {split: np.asarray(values, dtype=np.float32) for split, values in raw.items()}


def safetensors_parameters(path: Path, embedding_key: str = "word_embeddings") -> dict[str, int]:
    """Parameter counts read from a safetensors header (no model is built)."""
    total = embedding = 0
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
            count = 1
            for size in handle.get_slice(name).get_shape():
                count *= size
            total += count
            embedding += count if embedding_key in name else 0
    return {"total": total, "trainable": total, "embedding": embedding}


def folder_bytes(directory: Path, pattern: str = "*.safetensors") -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern))


def teacher_row(teacher_dir: Path) -> dict[str, Any]:
    metrics = json.loads((teacher_dir.parent / "metrics.json").read_text())
    weights = sorted(teacher_dir.glob("*.safetensors"))
    parameters = {"total": 0, "trainable": 0, "embedding": 0}
    for path in weights:
        for key, value in safetensors_parameters(path).items():
            parameters[key] += value
    return {
        "name": "teacher",
        "objective": "fine-tuned",
        "seeds": 1,
        "directories": [str(teacher_dir.parent)],
        "validation_accuracy": metrics["validation_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "parameters": parameters,
        "size_bytes": folder_bytes(teacher_dir),
        "train_seconds": metrics.get("train_seconds"),
    }


def student_rows(student_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per variant, accuracy as mean and standard deviation over its seeds."""
    by_variant: dict[str, list[tuple[Path, dict]]] = {}
    for directory in student_dirs:
        metrics = json.loads((directory / "metrics.json").read_text())
        by_variant.setdefault(metrics["variant"], []).append((directory, metrics))
    rows = []
    for name, runs in by_variant.items():
        first_dir, first = runs[0]
        settings = first["settings"]
        row = {
            "name": name,
            "objective": settings["objective"],
            "rnn": settings["rnn"],
            "temperature": settings.get("temperature"),
            "transfer_set": settings.get("transfer_set", "train"),
            "seeds": len(runs),
            "directories": [str(directory) for directory, _ in runs],
            "parameters": first["parameters"],
            "size_bytes": folder_bytes(first_dir),
            "train_seconds": statistics.fmean(m["train_seconds"] for _, m in runs),
            "per_seed": {
                m["seed"]: {s: m[f"{s}_accuracy"] for s in ("validation", "test")} for _, m in runs
            },
        }
        for split in ("validation", "test"):
            summary = stats.summarize([m[f"{split}_accuracy"] for _, m in runs])
            row[f"{split}_accuracy"], row[f"{split}_accuracy_std"] = summary.mean, summary.std
            row[f"{split}_summary"] = summary.to_dict()
        rows.append(row)
    return rows


def format_accuracy(mean: float, std: float | None = None) -> str:
    """Accuracy in percent, with the standard deviation over seeds when there is one."""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std else "")


def _accuracy(row: dict[str, Any], split: str) -> str:
    return format_accuracy(row[f"{split}_accuracy"], row.get(f"{split}_accuracy_std"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | objective | seeds | validation acc (%) | test acc (%) | parameters | "
        "trainable | embedding | size (MB) | train time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seconds = f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "-"
        lines.append(
            f"| {row['name']} | {row['objective']} | {row['seeds']} | "
            f"{_accuracy(row, 'validation')} | {_accuracy(row, 'test')} | "
            f"{row['parameters']['total'] / 1e6:.2f} M | "
            f"{row['parameters']['trainable'] / 1e6:.2f} M | "
            f"{row['parameters']['embedding'] / 1e6:.2f} M | {row['size_bytes'] / 1e6:.1f} | "
            f"{seconds} |"
        )
    return "\n".join(lines) + "\n"


def collect_results(
    config: RunConfig, run_dir: Path, teacher_dir: Path, student_dirs: list[Path]
) -> dict[str, Any]:
    """Write run_dir/results.json and results.md; return the results."""
    rows = [teacher_row(teacher_dir), *student_rows(student_dirs)]
    results = {"run_dir": str(run_dir), "config": config.to_dict(), "rows": rows}
    write_json_atomic(run_dir / "results.json", results)
    text = f"# distilrnn results: {run_dir}\n\n" + markdown_table(rows)
    (run_dir / "results.md").write_text(text)
    return results
