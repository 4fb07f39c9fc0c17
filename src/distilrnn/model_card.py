"""The README.md of a bundle: what the model is, how well and how fast it does, how to call it.

It opens with Hugging Face Hub card metadata (YAML front matter: library, tags, pipeline and a
`model-index` with the accuracies), so a bundle pushed to the Hub is listed and its results
shown there.
"""

from __future__ import annotations

import json
from typing import Any

LIBRARY_NAME = "distilrnn"
HUB_TAGS = ["distilrnn", "text-classification", "onnx", "distillation"]
PIPELINE_TAG = "text-classification"
_CARD_METRICS = ("variant", "seed", "validation_accuracy", "test_accuracy", "train_seconds")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def teacher_phrase(teacher: dict[str, Any], task: str | None) -> str:
    """Where the teacher came from: fine-tuned by distilrnn from a backbone on the task, or an
    already fine-tuned checkpoint used as given."""
    name = f"`{teacher.get('name') or 'unknown'}`"
    on_task = f" on `{task}`" if task else ""
    if teacher.get("source") == "fine-tuned":
        return f"a teacher that distilrnn fine-tuned{on_task} from {name}"
    if teacher.get("source") == "checkpoint":
        return f"the fine-tuned classifier {name}, used as the teacher as given"
    return f"the fine-tuned teacher {name}"


def _shown(name: str, value: float | None) -> str:
    """A metric for the card: accuracy and F1 in percent, correlations as they are."""
    if value is None:
        return "-"
    return _percent(value) if name in ("accuracy", "f1") else f"{value:.4f}"


def _kind(student: dict[str, Any]) -> str:
    """What the student is: a text classifier, or a sentence-pair classifier / regressor."""
    design = student.get("pair_design", "none")
    if student.get("task_type") == "regression":
        what = "regressor (it predicts a score)"
    else:
        what = "classifier"
    if design == "none":
        return f"text {what}"
    return f"sentence-pair {what}, reading a pair {_DESIGNS.get(design, design)},"


_DESIGNS = {"joint": "as one sequence", "siamese": "one text at a time (siamese)"}


def _architecture(student: dict[str, Any]) -> str:
    """The card's first words: the student's encoder, size and pooling."""
    encoder, pooling = student.get("encoder", "rnn"), student["pooling"]
    if encoder == "bag":
        return (
            f"A bag-of-embeddings {_kind(student)} (no encoder: {pooling} pooling of its "
            f"{student['embedding_dim']}-wide word embeddings, then an MLP)"
        )
    if encoder == "cnn":
        return (
            f"A convolutional {_kind(student)} ({student['num_layers']} layer(s) of "
            f"{student['hidden_size']} channels, kernel width {student['kernel_size']}, "
            f"{pooling} pooling)"
        )
    direction = "bidirectional" if student["bidirectional"] else "unidirectional"
    return (
        f"A {direction} {student['rnn'].upper()} {_kind(student)} ({student['num_layers']} "
        f"layer(s), hidden size {student['hidden_size']}, {pooling} pooling)"
    )


def hub_metadata(config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's Hub metadata: library, tags, pipeline and, when any score is known, a
    `model-index` entry with the eager student's test / validation score of each of the task's
    metrics (`config["metrics"]`, default accuracy) and the bundle's."""
    meta: dict[str, Any] = {
        "library_name": LIBRARY_NAME,
        "tags": list(HUB_TAGS),
        "pipeline_tag": PIPELINE_TAG,
    }
    evaluation = config.get("evaluation") or {}
    bundle_metrics = evaluation.get("metrics") or {"accuracy": evaluation.get("accuracy")}
    results = []
    for metric in config.get("metrics") or ["accuracy"]:
        measured = [
            (f"test {metric}", metrics.get(f"test_{metric}")),
            (f"validation {metric}", metrics.get(f"validation_{metric}")),
            (f"bundle test {metric}", bundle_metrics.get(metric)),
        ]
        results += [
            {"type": metric, "value": float(value), "name": name}
            for name, value in measured
            if value is not None
        ]
    if results:
        task = str(config.get("task") or "unknown")
        meta["model-index"] = [
            {
                "name": str(metrics.get("variant") or "distilrnn-student"),
                "results": [
                    {
                        "task": {"type": PIPELINE_TAG},
                        "dataset": {"name": task, "type": task},
                        "metrics": results,
                    }
                ],
            }
        ]
    return meta


def front_matter(meta: dict[str, Any]) -> str:
    """`meta` as a card's YAML front matter, `---` lines included."""
    try:
        import yaml
    except ImportError:  # JSON is YAML (flow style), and strings come out quoted
        body = json.dumps(meta, indent=2, ensure_ascii=False)
    else:
        body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip("\n")
    return f"---\n{body}\n---\n"


def model_card(
    config: dict[str, Any], labels: list[str], metrics: dict[str, Any], sizes: dict[str, int]
) -> str:
    """The bundle's README.md: Hub metadata, then what it is, how well and how fast it does,
    how to call it."""
    student = config["student"]
    teacher = config.get("teacher") or {}
    settings = metrics.get("settings", {})
    lines = [
        front_matter(hub_metadata(config, metrics)),
        f"# distilrnn student: {metrics.get('variant', 'RNN classifier')}",
        "",
        f"{_architecture(student)}, trained by distilrnn from "
        f"{teacher_phrase(teacher, config.get('task'))}.",
        "",
        "## Task",
        "",
        f"- task: `{config.get('task') or 'unknown'}`",
        f"- labels: {', '.join(f'`{name}`' for name in labels)}",
        f"- teacher: `{teacher.get('name') or 'unknown'}`"
        + {"fine-tuned": " (fine-tuned on this task by distilrnn)"}.get(
            teacher.get("source", ""), " (fine-tuned)"
        )
        + ", validation "
        f"{_percent(teacher.get('validation_accuracy'))}, test "
        f"{_percent(teacher.get('test_accuracy'))}",
        f"- objective: `{settings.get('objective', 'unknown')}`"
        + (f", temperature {settings['temperature']}" if "temperature" in settings else "")
        + (f", transfer set `{settings['transfer_set']}`" if "transfer_set" in settings else ""),
        f"- max tokens per text: {config['max_length']}",
        "",
        "## Metrics (from the run, eager PyTorch student)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    task_metrics = config.get("metrics") or ["accuracy"]
    shown_keys = list(_CARD_METRICS)
    for metric in task_metrics:
        for split in ("validation", "test"):
            if f"{split}_{metric}" not in shown_keys:
                shown_keys.insert(-1, f"{split}_{metric}")
    for key in shown_keys:
        if key in metrics:
            value = metrics[key]
            metric = key.split("_", 1)[-1]
            shown = (
                _shown(metric, value)
                if metric in ("accuracy", "f1", "pearson", "spearman")
                else value
            )
            shown = f"{value:.0f} s" if key == "train_seconds" else shown
            lines.append(f"| {key} | {shown} |")
    evaluation = config.get("evaluation")
    if evaluation:
        primary = evaluation.get("metric", "accuracy")
        primary_value = evaluation.get("value", evaluation.get("accuracy"))
        delta = evaluation["delta_points"]
        lines += [
            "",
            f"This bundle: {primary} {_shown(primary, primary_value)}"
            f" on {evaluation['examples']} inputs of the test half"
            + ("" if delta is None else f" ({delta:+.2f} points against the eager student)")
            + ".",
        ]
    lines += ["", "## Size", "", "| file | bytes |", "|---|---:|"]
    lines += [f"| {name} | {size:,} |" for name, size in sizes.items()]
    lines += [f"| **bundle** | **{sum(sizes.values()):,}** |", ""]
    compression = config["compression"]
    factorised = compression.get("embedding_rank")
    if factorised:
        lines.append(
            f"Embedding and first recurrent layer factorised from {factorised['from_width']} to "
            f"{factorised['rank']} columns, without training (tokens weighted: "
            f"{factorised['token_weights']})."
        )
    pruning = compression["prune_vocab"]
    if pruning:
        lines.append(
            f"Vocabulary pruning keeps {pruning['kept_rows']:,} of {pruning['vocab_size']:,} "
            f"embedding rows (saves {pruning['bytes_saved']:,} bytes); other tokens read the "
            "unknown token's row."
        )
    folded = compression.get("fold_first_layer")
    if folded:
        lines.append(
            f"The first convolution is precomputed for every embedding row (a table of "
            f"{folded['table_rows']:,} x {folded['table_columns']:,}): each token's share is "
            "looked up and added, not multiplied."
        )
    if compression["quantize"]:
        quantized = compression["quantize"]
        cell = (
            "GRU"
            if quantized.get("gru_int8_nodes", 0)
            else "LSTM"
            if quantized.get("lstm_int8_nodes", 0)
            else ""
        )
        folded = (
            f"; the first {cell} layer's input projection is looked up per token, precomputed "
            "for every embedding row"
            if quantized.get("rnn_folded_nodes", 0)
            else ""
        )
        lines.append(
            (
                f"Weights stored as int8; the {cell}'s matrix products computed in int8 (each "
                "token's input with its own scale, so a prediction does not depend on the "
                f"batch){folded}"
                if cell
                else "Weights stored as int8 (weight-only: activations stay float32, so a "
                "prediction does not depend on the batch)"
            )
            + (
                ", the embedding to 4-bit blocks."
                if compression["quantize"].get("embedding_bits") == 4
                else "."
            )
        )
    if not factorised and not pruning and not compression["quantize"]:
        lines.append("No compression: float32 weights, every embedding row.")
    latency = config["latency_ms"]
    lines += [
        "",
        "## Speed",
        "",
        f"One sentence at a time, {latency['threads']} thread, tokenisation included: p50 "
        f"{latency['p50']:.3f} ms, p90 {latency['p90']:.3f} ms over {latency['calls']} calls "
        f"(measured at export on {latency['machine']}).",
        "",
        "## Usage",
        "",
        "Needs onnxruntime, tokenizers and numpy only (no torch):",
        "",
        "```bash",
        "pip install 'distilrnn[runtime]'",
        'distilrnn predict BUNDLE_DIR "a gripping, beautifully acted film"',
        "distilrnn predict BUNDLE_DIR --file texts.txt --format jsonl",
        "```",
        "",
        "```python",
        "from distilrnn import Predictor",
        "",
        'predictor = Predictor("BUNDLE_DIR", threads=1)',
        'for prediction in predictor.predict(["a gripping film", "dull and long"]):',
        "    print(prediction.label, prediction.probabilities)",
        "```",
        "",
    ]
    if config.get("pair_design", "none") != "none":  # a pair bundle reads (text, text_pair)
        shown = (
            "prediction.score" if config.get("task_type") == "regression" else "prediction.label"
        )
        lines[-12:] = [  # from the first `distilrnn predict` line
            "distilrnn predict BUNDLE_DIR --pairs pairs.tsv --format jsonl  # text<TAB>text_pair",
            "```",
            "",
            "```python",
            "from distilrnn import Predictor",
            "",
            'predictor = Predictor("BUNDLE_DIR", threads=1)',
            'for prediction in predictor.predict([("a man plays", "a man is playing")]):',
            f"    print({shown})",
            "```",
            "",
        ]
    return "\n".join(lines)
