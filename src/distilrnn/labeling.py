"""Run a teacher over texts and store its logits beside them, in shards, on disk.

Texts are batched in length order, so a batch pads to similar lengths, and run under
`torch.inference_mode`. Each shard is written atomically as it finishes; a killed run picks up
at the first missing shard.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_batch_size: int
) -> list[np.ndarray]:
    """Group indices into length-sorted batches whose padded size stays within `max_tokens`.

    A batch of n texts padded to length L costs n * L tokens; short texts therefore travel in
    large batches and long ones in small batches, so the teacher does about the same work per
    batch and little of it on padding.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        # lengths ascend, so the last text of the candidate batch sets its padded length
        while (
            end < len(order)
            and end - start < max_batch_size
            and (end - start + 1) * lengths[order[end]] <= max_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device | str = "cpu",
    progress: tqdm | None = None,
    max_tokens: int = 0,
) -> np.ndarray:
    """Teacher logits for `texts`, in their order: float32 array of shape (len(texts), labels).

    Texts run in length order, in batches of at most `batch_size` texts and, when `max_tokens`
    is set, at most `max_tokens` padded tokens.
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    budget = max_tokens or batch_size * max(lengths, default=1)
    logits = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    model.eval().to(device)
    with torch.inference_mode():
        for index in token_budget_batches(lengths, budget, batch_size):
            batch = tokenizer.pad(
                {"input_ids": [encoded[i] for i in index]}, return_tensors="pt"
            ).to(device)
            logits[index] = model(**batch).logits.float().cpu().numpy()
            if progress is not None:
                progress.update(len(index))
    return logits


def label_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    output_dir: Path,
    batch_size: int,
    shard_size: int,
    max_length: int,
    device: torch.device | str = "cpu",
    max_tokens: int = 0,
) -> Dataset:
    """Add a `teacher_logits` column to `dataset` (which has `text`), shard by shard on disk.

    Shards already in `output_dir/shards` are reused, so an interrupted run continues where it
    stopped. Returns the memory-mapped concatenation of all shards.
    """
    shard_dir = output_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(dataset), shard_size)
    done = sum(
        min(shard_size, len(dataset) - s)
        for i, s in enumerate(starts)
        if (shard_dir / f"shard-{i:05d}").is_dir()
    )
    progress = tqdm(total=len(dataset), initial=done, desc="labelling", unit="text")
    for number, start in enumerate(starts):
        path = shard_dir / f"shard-{number:05d}"
        if not path.is_dir():
            part = dataset.select(range(start, min(start + shard_size, len(dataset))))
            logits = predict_logits(
                model,
                tokenizer,
                part["text"],
                batch_size,
                max_length,
                device,
                progress,
                max_tokens,
            )
            part = part.add_column("teacher_logits", [row for row in logits])
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            part.save_to_disk(str(tmp))
            tmp.rename(path)
    progress.close()
    return load_labelled(output_dir)


def load_labelled(output_dir: Path) -> Dataset:
    """The finished shards of `label_texts`, concatenated (memory-mapped)."""
    paths = sorted((output_dir / "shards").glob("shard-?????"))
    if not paths:
        raise FileNotFoundError(f"{output_dir}: no labelled shards")
    return concatenate_datasets([Dataset.load_from_disk(str(p)) for p in paths])
