"""Bundle bytes and test accuracy of narrowed students over their seeds, against the student each
one started from.

For each variant and each of its trained seeds, exports a bundle per compression setting (float,
int8, int8 with a 4-bit embedding), at its own width or factorised at export to each of
`--ranks` (no training; tokens weighted by their frequency in the run's transfer set), and
measures its bytes, its accuracy on the test half and its one-sentence
p50 latency (one thread). The change in accuracy is taken against the eager student of the same
seed of `--reference` (default: the variant's `init_from`, else the variant itself), then
summarised over seeds (mean, std, min) with a paired bootstrap over test sentences (each
sentence's correctness averaged over the seeds); the same change on the validation half is
there to choose a setting by, leaving the test half to report it. Writes JSON and a markdown
table (same name, `.md`).

    SST2_DIR=../shared/data/sst2 .venv/bin/python benchmarks/narrow.py configs/sst2.toml \\
        --variants kl-auto-lstm-augmented kl-auto-lstm-augmented-f96 \\
        --json docs/benchmarks/narrow.json

Targets (the deploy issue): a bundle at most 1/20 of the teacher's bytes (its safetensors)
losing at most 0.5 points of test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distilrnn.atomic import write_json_atomic
from distilrnn.config import load_config
from distilrnn.data import Task
from distilrnn.evaluate import load_predictions
from distilrnn.export import export_bundle, token_weights
from distilrnn.run_dir import run_transfer_texts
from distilrnn.runtime import Predictor
from distilrnn.stats import paired_bootstrap

# name -> (quantise, embedding bits)
SETTINGS = {"none": (False, 8), "quantize": (True, 8), "quantize-emb4": (True, 4)}
SIZE_TARGET = 1 / 20
ACCURACY_TARGET_POINTS = -0.5


def student_rows(config, run_dir: Path, args) -> list[dict[str, Any]]:
    """One row per variant, seed and setting; each row's per-sentence correctness (bundle and
    reference) under the private key `_correct`."""
    splits = Task.load(run_dir / "data").splits
    test = (list(splits["test"]["text"]), list(splits["test"]["label"]))
    gold = np.asarray(test[1])
    validation_texts = list(splits["validation"]["text"])
    validation_gold = np.asarray(splits["validation"]["label"])
    rows = []
    weights = {}  # token weights for export-time factorisation, per transfer set
    for name in args.variants:
        settings = config.student_for(config.variant(name))
        reference = args.reference or settings.init_from or name
        for seed in settings.seeds:
            student_dir = run_dir / "students" / name / f"seed-{seed}"
            reference_dir = run_dir / "students" / reference / f"seed-{seed}"
            if not (student_dir / "stage.json").is_file():
                print(f"skipping {student_dir}: not trained", file=sys.stderr)
                continue
            metrics = json.loads((student_dir / "metrics.json").read_text())
            reference_accuracy = json.loads((reference_dir / "metrics.json").read_text())[
                "test_accuracy"
            ]
            reference_predictions = load_predictions(reference_dir)
            if reference_predictions is None:
                raise FileNotFoundError(f"no predictions.json in {reference_dir}")
            reference_correct = reference_predictions["test"].argmax(-1) == gold
            reference_validation = float(
                (reference_predictions["validation"].argmax(-1) == validation_gold).mean()
            )
            ranks = args.ranks or [None]
            if args.ranks and settings.transfer_set not in weights:
                weights[settings.transfer_set] = token_weights(
                    student_dir / "tokenizer.json",
                    run_transfer_texts(run_dir, metrics),
                    metrics["settings"]["max_length"],
                )
            for rank, setting in ((r, s) for r in ranks for s in args.settings):
                quantize, bits = SETTINGS[setting]
                suffix = "" if rank is None else f"-rank{rank}"
                summary = export_bundle(
                    student_dir,
                    args.work_dir / f"{name}-seed-{seed}{suffix}-{setting}",
                    quantize=quantize,
                    embedding_bits=bits,
                    embedding_rank=rank,
                    token_weights=None if rank is None else weights[settings.transfer_set],
                    metrics=metrics,
                    evaluation=test,
                    latency_texts=test[0][: args.latency_texts],
                )
                accuracy = summary["evaluation"]["accuracy"]
                predictor = Predictor(summary["bundle_dir"], threads=2)
                logits = predictor.logits(test[0])
                validation = float(
                    (predictor.logits(validation_texts).argmax(-1) == validation_gold).mean()
                )
                rows.append(
                    {
                        "variant": name,
                        "seed": seed,
                        "export_rank": rank,
                        "setting": setting,
                        "embedding_dim": rank
                        or json.loads((student_dir / "config.json").read_text())["embedding_dim"],
                        "bundle_bytes": summary["bundle_bytes"],
                        "files": summary["files"],
                        "test_accuracy": accuracy,
                        "student_test_accuracy": metrics["test_accuracy"],
                        "reference": reference,
                        "reference_test_accuracy": reference_accuracy,
                        "delta_points": 100 * (accuracy - reference_accuracy),
                        "validation_accuracy": validation,
                        "validation_delta_points": 100 * (validation - reference_validation),
                        "latency_p50_ms": summary["latency_ms"]["p50"],
                        "_correct": (logits.argmax(-1) == gold, reference_correct),
                    }
                )
                print(
                    f"{name}{suffix} seed {seed} {setting}: {summary['bundle_bytes']:,} bytes, "
                    f"{100 * accuracy:.2f} % ({rows[-1]['delta_points']:+.2f} vs {reference})",
                    file=sys.stderr,
                )
    return rows


def summarise(rows: list[dict[str, Any]], teacher_bytes: int) -> list[dict[str, Any]]:
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
                "test_accuracy_std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
                "delta_points_mean": float(delta.mean()),
                "delta_points_std": float(delta.std(ddof=1)) if len(delta) > 1 else 0.0,
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


def markdown(results: dict[str, Any]) -> str:
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
        lines.append(
            f"| {row['variant']} | {row['embedding_dim']} | "
            f"{'no' if row['export_rank'] is None else 'yes'} | {row['setting']} | "
            f"{len(row['seeds'])} | {row['max_bundle_bytes']:,} | "
            f"{row['fraction_of_teacher_bytes']:.4f} | "
            f"{row['validation_delta_points_mean']:+.2f} | "
            f"{row['test_accuracy_mean']:.2f} ± {row['test_accuracy_std']:.2f} | "
            f"{row['delta_points_mean']:+.2f} ± {row['delta_points_std']:.2f} | "
            f"{row['delta_points_min']:+.2f} | "
            f"[{row['paired_bootstrap_points']['ci_low']:+.2f}, "
            f"{row['paired_bootstrap_points']['ci_high']:+.2f}], "
            f"{row['paired_bootstrap_points']['p_value']:.2f} | "
            f"{row['latency_p50_ms_median']:.3f} | "
            f"{'yes' if row['meets_size_target'] else 'no'} | "
            f"{'yes' if row['meets_accuracy_target'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="The run's config (variants and seeds).")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Config override."
    )
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--reference", help="Compare against this variant (same seed).")
    parser.add_argument(
        "--ranks", nargs="+", type=int, help="Factorise each student to these widths at export."
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=["none", "quantize"],
        metavar="SETTING",
    )
    parser.add_argument("--json", type=Path, help="Results file (default: RUN/narrow.json).")
    parser.add_argument("--work-dir", type=Path, help="Bundles (default: RUN/bundles-narrow).")
    parser.add_argument("--latency-texts", type=int, default=200, help="Sentences timed alone.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = load_config(args.config, args.set)
    run_dir = Path(config.run_dir)
    args.work_dir = args.work_dir or run_dir / "bundles-narrow"
    teacher_dir = run_dir / "teacher" / "model"
    teacher_bytes = sum(p.stat().st_size for p in teacher_dir.glob("*.safetensors"))
    rows = student_rows(config, run_dir, args)
    summary = summarise(rows, teacher_bytes)
    for row in rows:
        del row["_correct"]
    import onnxruntime

    results = {
        "run_dir": str(run_dir),
        "command": " ".join(
            ["python benchmarks/narrow.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "teacher_bytes": teacher_bytes,
        "rows": rows,
        "summary": summary,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "onnxruntime": onnxruntime.__version__,
        },
    }
    json_path = args.json or run_dir / "narrow.json"
    write_json_atomic(json_path, results)
    json_path.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
