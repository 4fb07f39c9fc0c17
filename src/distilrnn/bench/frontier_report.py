"""The speed frontier as markdown (frontier.json, `distilrnn.bench.frontier`): the frontier table
with its notes, where a batch's time goes, and the whole page `benchmarks/frontier.py` writes.
The report's section uses the two tables; the Pareto plot is `distilrnn.report.plots`'.
"""

from __future__ import annotations

from typing import Any

from distilrnn.bench.frontier import FLOAT_TEACHER, THREADS
from distilrnn.bench.peer import REFERENCE


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
