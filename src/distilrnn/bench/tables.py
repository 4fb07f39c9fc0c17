"""How benchmark results are written: markdown tables, the JSON beside them, and the machine the
numbers belong to (quote them with it)."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distilrnn.atomic import write_json_atomic
from distilrnn.errors import DistilrnnError

MODELS = ("teacher", "student")


def machine(*packages: str) -> dict[str, Any]:
    """CPU count, platform and the `__version__` of each of `packages` (e.g. "torch")."""
    versions = {name: importlib.import_module(name).__version__ for name in packages}
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), **versions}


def write_results(json_path: Path, results: dict[str, Any], markdown: str) -> None:
    """`results` as JSON at `json_path` (atomically) and `markdown` beside it (`.md`)."""
    json_path = Path(json_path)
    write_json_atomic(json_path, results)
    json_path.with_suffix(".md").write_text(markdown, encoding="utf-8")


def record_script(
    script: str,
    argv: Sequence[str],
    results: dict[str, Any],
    render: Callable[[dict[str, Any]], str],
    json_path: Path,
) -> str:
    """What a benchmark script ends with: the command that made `results` recorded in them,
    the JSON and its markdown (`render(results)`) written; returns the markdown."""
    results["command"] = " ".join([f"python {script}", *argv])
    markdown = render(results)
    write_results(json_path, results, markdown)
    return markdown


def markdown_rows(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Markdown table lines; the first `left` columns align left, the others right."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    return ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def _size_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name in MODELS:
        counts = results[name]["parameters"]
        sizes = [_millions(counts[key]) for key in ("total", "trainable", "embedding")]
        rows.append([name, *sizes, f"{results[name]['size_bytes'] / 1e6:.1f}"])
    return markdown_rows(["model", "parameters", "trainable", "embedding", "size (MB)"], rows)


def _speed_table(results: dict[str, Any]) -> list[str]:
    ratios, rows = results["ratios"], []
    for count in results["teacher"]["latency_ms"]:
        for name in MODELS:
            latency = results[name]["latency_ms"][count]
            throughput = results[name]["throughput"][count]
            rows.append(
                [count, name, f"{latency['p50']:.2f}", f"{latency['p90']:.2f}", f"{throughput:.0f}"]
            )
        speedups = [
            f"{ratios['latency_p50'][count]:.1f}x",
            "",
            f"{ratios['throughput'][count]:.1f}x",
        ]
        rows.append([count, "speed-up", *speedups])
    header = ["threads", "model", "latency p50 (ms)", "latency p90 (ms)", "throughput (texts/s)"]
    return markdown_rows(header, rows, left=2)


def _train_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for name in MODELS:
        train = results[name]["train"]
        seconds = [f"{train['seconds_per_1000']:.2f}", f"{train['seconds_per_epoch']:.1f}"]
        rows.append([name, str(train["batch_size"]), *seconds])
    rows.append(["speed-up", "", "", f"{results['ratios']['train_epoch']:.1f}x"])
    epoch = f"s / epoch ({results['inputs']['epoch_size']} texts)"
    return markdown_rows(["model", "batch", "s / 1000 texts", epoch], rows)


def markdown_table(results: dict[str, Any]) -> str:
    """`benchmark_models` results as markdown: sizes, latency / throughput per thread count,
    training time."""
    inputs, host = results["inputs"], results["machine"]
    lines = [*_size_table(results), "", *_speed_table(results)]
    if results["teacher"]["train"] is not None:
        lines += ["", *_train_table(results)]
    lines += [
        "",
        f"{inputs['texts']} texts of {inputs['mean_tokens']:.1f} tokens on average (at most "
        f"{inputs['max_length']}), throughput in batches of {inputs['batch_size']}; training on "
        f"{inputs['train_sample']} texts at {inputs['train_threads']} threads; "
        f"{host['cpu_count']} CPUs, torch {host['torch']}.",
    ]
    return "\n".join(lines) + "\n"


def run_script(main: Callable[[], object]) -> None:
    """A benchmark script's entry point: a user's mistake (`DistilrnnError`) is one line on
    stderr and exit status 1, as in the CLI; anything else keeps its traceback."""
    try:
        main()
    except DistilrnnError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
