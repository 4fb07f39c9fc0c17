"""Labelling throughput: distilrnn's length-sorted, token-budget batches against the naive way.

The naive way runs fixed batches of 32 texts in file order, each padded to `max_length`. Both run
in this one process, on the same texts, with the same teacher, one after the other; the script
prints texts/s for each and the ratio, and checks that both give the same logits.

    python benchmarks/label_throughput.py --teacher runs/sst2/teacher/model \
        --texts runs/sst2/augment/transfer --sample 20000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distilrnn.labeling import predict_logits


def naive_logits(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                texts[start : start + 32],
                truncation=True,
                max_length=max_length,
                padding="max_length",
                return_tensors="pt",
            )
            out.append(model(**batch).logits.float().numpy())
    return np.concatenate(out)


def load_texts(path: Path, sample: int, seed: int) -> list[str]:
    if path.is_dir():
        texts = Dataset.load_from_disk(str(path))["text"]
    else:  # a GLUE-style TSV: text in the first column, header line
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        texts = [line.split("\t")[0] for line in lines if line.strip()]
    if sample and sample < len(texts):
        index = np.random.default_rng(seed).choice(len(texts), sample, replace=False)
        texts = [texts[i] for i in sorted(index)]  # file order is kept
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="fine-tuned teacher folder")
    parser.add_argument(
        "--texts",
        required=True,
        type=Path,
        help="a saved transfer set (Arrow folder) or a TSV file",
    )
    parser.add_argument("--sample", type=int, default=20000, help="texts to label (0: all)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    model = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    texts = load_texts(args.texts, args.sample, args.seed)
    predict_logits(model, tokenizer, texts[:256], 64, args.max_length)  # warm-up

    started = time.perf_counter()
    naive = naive_logits(model, tokenizer, texts, args.max_length)
    naive_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = predict_logits(
        model, tokenizer, texts, args.batch_size, args.max_length, max_tokens=args.max_tokens
    )
    ours_seconds = time.perf_counter() - started

    results = {
        "texts": len(texts),
        "threads": args.threads,
        "max_length": args.max_length,
        "naive_texts_per_s": len(texts) / naive_seconds,
        "distilrnn_texts_per_s": len(texts) / ours_seconds,
        "ratio": naive_seconds / ours_seconds,
        "max_abs_logit_difference": float(np.abs(naive - ours).max()),
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
    }
    print(f"{'way':<36}{'texts/s':>10}")
    print(f"{'naive (32 in file order, padded)':<36}{results['naive_texts_per_s']:>10.0f}")
    print(f"{'distilrnn (sorted, token budget)':<36}{results['distilrnn_texts_per_s']:>10.0f}")
    print(
        f"ratio {results['ratio']:.2f}x; max |logit difference| "
        f"{results['max_abs_logit_difference']:.2e}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
