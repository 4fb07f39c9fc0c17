"""Run a teacher over texts and store its logits beside them, in shards, on disk.

Texts are batched in length order under a token budget (the shared `distilrnn.batching` loop),
so a batch pads to similar lengths, and run under `torch.inference_mode`. Each shard is written
atomically as it finishes; a killed run picks up at the first missing shard.

Launched as several processes (`distilrnn.distributed`), rank r of N labels shards r, r + N, ...
and writes only those; every shard is labelled as one process labels it, so the result is the
same logit for logit, and a kill of any rank leaves only its unfinished shards to label again.
With `precision` bf16 / fp16 the teacher runs under autocast (`distilrnn.training.autocast`).

`label_texts` labels with one model and its tokenizer; `label_with_teacher` with a teacher
object, which may be a `distilrnn.ensemble.TeacherEnsemble`: its shards hold the members'
combined logits. Given `member_caches`, `label_with_teacher` also keeps each member's own logits
of each shard (`<cache>/shard-NNNNN.npy`) and reads them back instead of running that member
again, so an ensemble that gains a member, combines another way, or grows from a single teacher
runs only the teachers that have not read those texts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distilrnn import distributed
from distilrnn.atomic import write_atomically
from distilrnn.batching import run_batched
from distilrnn.errors import MissingFileError
from distilrnn.inputs import columns, encode_joint
from distilrnn.training import autocast

logger = logging.getLogger(__name__)


class LogitSource(Protocol):
    """What labels texts: `Teacher` or `TeacherEnsemble` (`distilrnn.ensemble`)."""

    def logits(
        self,
        texts: Sequence[str],
        *,
        text_pairs: Sequence[str] | None = None,
        batch_size: int = 512,
        max_tokens: int = 8192,
        device: torch.device | str = "cpu",
        progress: bool | tqdm = False,
        precision: str = "fp32",
    ) -> np.ndarray: ...


def encode_for_teacher(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids of `texts` as the teacher reads them, and for pairs (one sequence each) the
    token type ids a cross-encoder reads (None for single texts or a tokenizer without them)."""
    if pairs is None:
        return encode_joint(tokenizer, texts, None, max_length), None
    both = tokenizer(list(texts), list(pairs), truncation=True, max_length=max_length)
    return both["input_ids"], both.get("token_type_ids")


def teacher_batch(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    token_type_ids: np.ndarray | None,
    device: torch.device | str,
) -> dict[str, torch.Tensor]:
    """One padded batch of `run_batched` as the transformers model's keyword arguments."""
    batch = {
        "input_ids": torch.from_numpy(input_ids).to(device),  # (batch, longest)
        "attention_mask": torch.from_numpy(attention_mask).to(device),
    }
    if token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(token_type_ids).to(device)
    return batch


def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device | str = "cpu",
    progress: tqdm | None = None,
    max_tokens: int = 0,
    pairs: Sequence[str] | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Teacher logits for `texts` (with `pairs`, each pair read as one sequence), in their
    order: float32 array of shape (len(texts), labels).

    Texts run in length order (`distilrnn.batching.run_batched`), in batches of at most
    `batch_size` texts and, when `max_tokens` is set, at most `max_tokens` padded tokens.
    `precision` (resolved: fp32 / bf16 / fp16) runs the model under autocast; logits are float32.
    """
    encoded, segments = encode_for_teacher(tokenizer, texts, pairs, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval().to(device)

    def call(
        input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None
    ) -> np.ndarray:
        batch = teacher_batch(input_ids, attention_mask, token_type_ids, device)
        return model(**batch).logits.float().cpu().numpy()  # (batch, num_labels)

    with torch.inference_mode(), autocast(precision, str(device)):
        return run_batched(
            encoded,
            call,
            model.config.num_labels,
            pad_id=pad_id,
            batch_size=batch_size,
            max_tokens=max_tokens,
            on_batch=progress.update if progress is not None else None,
            segments=segments,
        )


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
    precision: str = "fp32",
) -> Dataset:
    """Add a `teacher_logits` column to `dataset` (which has `text`, and `text_pair` for
    sentence pairs), shard by shard on disk.

    Shards already in `output_dir/shards` are reused, so an interrupted run continues where it
    stopped. Launched as several processes, each rank labels its own shards
    (`distilrnn.distributed.owned_shards`) and all wait for each other before the shards are read.
    Returns the memory-mapped concatenation of all shards.
    """

    def logits_of(
        number: int, texts: list[str], pairs: list[str] | None, progress: tqdm
    ) -> np.ndarray:
        return predict_logits(
            model,
            tokenizer,
            texts,
            batch_size,
            max_length,
            device,
            progress,
            max_tokens,
            pairs,
            precision,
        )

    return label_shards(dataset, output_dir, shard_size, logits_of)


def label_with_teacher(
    teacher: LogitSource,
    dataset: Dataset,
    output_dir: Path,
    *,
    batch_size: int,
    shard_size: int,
    device: torch.device | str = "cpu",
    max_tokens: int = 0,
    precision: str = "fp32",
    member_caches: Sequence[Path] | None = None,
) -> Dataset:
    """`label_texts` with a teacher object: a `distilrnn.teacher.Teacher`, or a
    `distilrnn.ensemble.TeacherEnsemble` whose combined logits are recorded. Same shards,
    same resumption, same split across ranks.

    `member_caches`: one folder per member (the teacher itself, or the ensemble's members in
    order), each only ever holding that member's logits of these texts labelled with these
    settings (shard size included). A member's shard found there is read instead of computed;
    one computed is saved there (atomically) before the shard is combined."""
    members = list(getattr(teacher, "members", [teacher]))
    if member_caches is not None and len(member_caches) != len(members):
        raise ValueError(
            f"member_caches: {len(member_caches)} folders for {len(members)} teacher(s)"
        )

    def run(
        model: LogitSource, texts: list[str], pairs: list[str] | None, progress: bool | tqdm
    ) -> np.ndarray:
        return model.logits(
            texts,
            text_pairs=pairs,
            batch_size=batch_size,
            max_tokens=max_tokens,
            device=device,
            progress=progress,
            precision=precision,
        )

    def logits_of(
        number: int, texts: list[str], pairs: list[str] | None, progress: tqdm
    ) -> np.ndarray:
        if member_caches is None:
            return run(teacher, texts, pairs, progress)
        found = []
        share = SharedProgress(progress, len(members))
        for member, cache in zip(members, member_caches, strict=True):
            path = cache / f"shard-{number:05d}.npy"
            logits = cached_logits(path, len(texts))
            if logits is None:
                logits = run(member, texts, pairs, share)  # type: ignore[arg-type]
                save_logits(path, logits)
            else:
                share.update(len(texts))
            found.append(logits)
        combine = getattr(teacher, "combined", None)
        return combine(found) if combine is not None else found[0]

    return label_shards(dataset, output_dir, shard_size, logits_of)


class SharedProgress:
    """A progress bar over texts that `parts` teachers each read: `update(n)` (n texts read by
    one of them) advances it by whole texts, n / parts of them, carrying the remainder."""

    def __init__(self, bar: tqdm, parts: int):
        self.bar, self.parts, self.read, self.shown = bar, parts, 0, 0

    def update(self, n: int) -> None:
        self.read += n
        whole = self.read // self.parts
        if whole > self.shown:
            self.bar.update(whole - self.shown)
            self.shown = whole


def cached_logits(path: Path, rows: int) -> np.ndarray | None:
    """The logits saved at `path` (`save_logits`), or None when there are none or they are not
    a sound `(rows, labels)` float32 array of finite values (a damaged file is computed again)."""
    try:
        logits = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    sound = (
        logits.dtype == np.float32
        and logits.ndim == 2
        and logits.shape[0] == rows
        and bool(np.isfinite(logits).all())
    )
    return logits if sound else None


def save_logits(path: Path, logits: np.ndarray) -> None:
    """Save one member's logits of one shard as `.npy`, atomically (a killed run leaves either
    the whole file or none)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, np.asarray(logits, dtype=np.float32), allow_pickle=False)

    write_atomically(path, write)


def label_shards(
    dataset: Dataset,
    output_dir: Path,
    shard_size: int,
    logits_of: Callable[[int, list[str], list[str] | None, tqdm], np.ndarray],
) -> Dataset:
    """The shard loop of `label_texts`: `logits_of(number, texts, pairs, progress)` gives shard
    `number`'s `(n, num_labels)` logits (and advances `progress` by n); each shard is saved
    atomically as it finishes, this rank's missing shards only."""
    shard_dir = output_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(dataset), shard_size)
    mine = distributed.owned_shards(len(starts))
    sizes = {number: min(shard_size, len(dataset) - starts[number]) for number in mine}
    done = sum(size for n, size in sizes.items() if (shard_dir / f"shard-{n:05d}").is_dir())
    progress = tqdm(total=sum(sizes.values()), initial=done, desc="labelling", unit="text")
    for number in mine:
        start = starts[number]
        path = shard_dir / f"shard-{number:05d}"
        if not path.is_dir():
            part = dataset.select(range(start, min(start + shard_size, len(dataset))))
            texts, pairs = columns(part)
            logits = logits_of(number, texts, pairs, progress)
            part = part.add_column("teacher_logits", [row for row in logits])
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            part.save_to_disk(str(tmp))
            tmp.rename(path)
    progress.close()
    distributed.barrier()  # every rank's shards are written
    return load_labelled(output_dir)


def load_labelled(output_dir: Path) -> Dataset:
    """The finished shards of `label_texts`, concatenated (memory-mapped)."""
    paths = sorted((output_dir / "shards").glob("shard-?????"))
    if not paths:
        raise MissingFileError(f"{output_dir}: no labelled shards")
    return concatenate_datasets([Dataset.load_from_disk(str(p)) for p in paths])
