"""Representation distillation: the teacher's sentence vectors, cached, and the student's
projection onto them.

Besides the teacher's logits, a student can learn the teacher's sentence representation: its
pooled sentence vector, through a learned linear projection (FitNets' regressor, Romero et al.
2015; TinyBERT's W_h, Jiao et al. 2020), is pulled towards the masked mean of one teacher
layer's token states (`label.repr_layer`; -1 the last layer, 0 the embedding output).

The vectors are computed once per teacher, text set and layer, over exactly the texts the label
stage labels, in shards of float16 safetensors written atomically (a killed run computes only
the missing shards again). They cost 2 bytes x the teacher's hidden size per text: 768 bytes
for a hidden size of 384, about 0.7 GB for 900k texts. `SentenceVectors` reads the shards
memory-mapped, so training gathers the rows of each batch from the page cache instead of
holding the whole cache in every process.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from safetensors.numpy import save_file
from torch import nn
from tqdm.auto import tqdm

from distilrnn import distributed
from distilrnn.atomic import write_atomically
from distilrnn.batching import run_batched
from distilrnn.errors import ConfigError, DataError, MissingFileError, StudentError
from distilrnn.inputs import Input, columns, split_inputs
from distilrnn.labeling import encode_for_teacher, teacher_batch
from distilrnn.training import autocast

logger = logging.getLogger(__name__)

VECTORS_KEY = "vectors"  # the one tensor of a shard: (rows, hidden_size) float16
SHARD_PATTERN = "shard-?????.safetensors"


# teacher side -----------------------------------------------------------------------------------
def check_layer(model: Any, layer: int) -> None:
    """Raise `ConfigError` naming `label.repr_layer` unless `model` has hidden-state layer
    `layer`: 0 is the embedding output, 1..L the transformer layers, -1..-(L + 1) from the end."""
    count = getattr(model.config, "num_hidden_layers", None)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ConfigError(f"label.repr_layer: must be an integer, got {layer!r}")
    if count is not None and not -(count + 1) <= layer <= count:
        raise ConfigError(
            f"label.repr_layer: the teacher has {count} layers (hidden states 0 = embeddings to "
            f"{count}, or -1 to -{count + 1} from the end), got {layer}"
        )


def sentence_vectors(
    teacher: Any,
    texts: Sequence[Input],
    layer: int = -1,
    *,
    text_pairs: Sequence[str] | None = None,
    batch_size: int = 512,
    max_tokens: int = 8192,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    on_batch: Callable[[int], object] | None = None,
) -> np.ndarray:
    """The teacher's sentence vectors: float32 `(len(texts), hidden_size)`, in `texts`' order.

    A text's vector is the mean of hidden-state layer `layer`'s token states over its tokens
    (the attention mask: `[CLS]` and `[SEP]` included, padding not). `teacher` is a
    `distilrnn.Teacher`; texts are read as it reads them (truncated to its `max_length`; a pair,
    given as `(text, text_pair)` tuples or through `text_pairs`, as one sequence). Batches are
    length-sorted (`distilrnn.batching.run_batched`); `precision` (resolved: fp32 / bf16 / fp16)
    runs the teacher under autocast; `on_batch(n)` is told each batch's size.

    Raises:
        ConfigError: the teacher has no layer `layer` (named as `label.repr_layer`).
    """
    model, tokenizer = teacher.model, teacher.tokenizer
    check_layer(model, layer)
    if text_pairs is None:
        texts, text_pairs = split_inputs(texts)
    encoded, segments = encode_for_teacher(tokenizer, texts, text_pairs, teacher.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval().to(device)

    def call(
        input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None
    ) -> np.ndarray:
        batch = teacher_batch(input_ids, attention_mask, token_type_ids, device)
        states = model(**batch, output_hidden_states=True).hidden_states[layer].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()  # (batch, longest, 1)
        vectors = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (batch, hidden)
        return vectors.cpu().numpy()

    with torch.inference_mode(), autocast(precision, str(device)):
        return run_batched(
            encoded,
            call,
            int(model.config.hidden_size),
            pad_id=pad_id,
            batch_size=batch_size,
            max_tokens=max_tokens,
            on_batch=on_batch,
            segments=segments,
        )


# the cache --------------------------------------------------------------------------------------
def _memory_map(path: Path) -> np.ndarray:
    """A shard's `(rows, hidden_size)` float16 tensor, memory-mapped (the safetensors layout: a
    little-endian u64 header length, the JSON header, then the raw data)."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            entry = json.loads(handle.read(length))[VECTORS_KEY]
        rows, width = entry["shape"]
        begin, end = entry["data_offsets"]
        sound = entry["dtype"] == "F16" and end - begin == rows * width * 2
        sound = sound and path.stat().st_size == 8 + length + end
    except FileNotFoundError:
        raise MissingFileError(f"sentence vectors: {path} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        sound = False
    if not sound:
        raise DataError(f"sentence vectors: {path} is not a whole float16 shard; remove it")
    if rows == 0:
        return np.zeros((0, width), dtype=np.float16)
    return np.memmap(path, dtype="<f2", mode="r", offset=8 + length + begin, shape=(rows, width))


class SentenceVectors:
    """The teacher's cached sentence vectors, `(n, width)` float16 across shards, read
    memory-mapped. `vectors[rows]` (an integer array) gathers rows as float32 `(len(rows),
    width)`; `vectors[a:b]` is a view of rows a..b-1; `len(vectors)` counts rows."""

    def __init__(self, shards: Sequence[np.ndarray], width: int | None = None):
        self.shards = list(shards)
        self.width = int(
            width if width is not None else (self.shards[0].shape[1] if self.shards else 0)
        )
        self.ends = np.cumsum([len(s) for s in self.shards], dtype=np.int64)

    @classmethod
    def load(cls, directory: Path, expected: int | None = None) -> SentenceVectors:
        """The shards in `directory`, in order; `expected` rows, when given, must be there."""
        paths = sorted(Path(directory).glob(SHARD_PATTERN))
        vectors = cls([_memory_map(p) for p in paths])
        if expected is not None and len(vectors) != expected:
            raise MissingFileError(
                f"sentence vectors: {directory} holds {len(vectors)} rows, expected {expected}"
            )
        return vectors

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.width

    @property
    def nbytes(self) -> int:
        """Bytes of vector data (2 per value; the shards' headers add a few hundred bytes)."""
        return len(self) * self.width * 2

    def __getitem__(self, rows: Any) -> Any:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step != 1:
                raise ValueError("SentenceVectors slices take every row (step 1)")
            parts, begin = [], 0
            for shard, end in zip(self.shards, self.ends, strict=True):
                low, high = max(start, begin), min(stop, int(end))
                if low < high:
                    parts.append(shard[low - begin : high - begin])
                begin = int(end)
            return SentenceVectors(parts, self.width)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} sentence vectors")
        out = np.empty((len(rows), self.width), dtype=np.float32)
        shard_of = np.searchsorted(self.ends, rows, side="right")  # (len(rows),)
        for number in np.unique(shard_of):
            chosen = shard_of == number
            begin = int(self.ends[number - 1]) if number else 0
            out[chosen] = self.shards[number][rows[chosen] - begin]
        return out


def write_sentence_vectors(
    teacher: Any,
    dataset: Dataset,
    output_dir: Path,
    layer: int,
    *,
    shard_size: int,
    batch_size: int = 512,
    max_tokens: int = 8192,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> SentenceVectors:
    """`sentence_vectors` of `dataset`'s `text` (and `text_pair`) rows, written to `output_dir`
    as float16 safetensors shards of `shard_size` rows (`shard-00000.safetensors`, ...), each
    atomically. Shards already there are kept, so a killed run computes only the missing ones.
    Returns the whole cache, memory-mapped."""
    output_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(dataset), shard_size)
    paths = [output_dir / f"shard-{number:05d}.safetensors" for number in range(len(starts))]
    sizes = [min(shard_size, len(dataset) - start) for start in starts]
    # launched as several processes, rank r of N computes shards r, r + N, ... (as labelling)
    mine = set(range(distributed.rank(), len(paths), distributed.world_size()))
    total = sum(sizes[number] for number in mine)
    done = sum(sizes[number] for number in mine if paths[number].is_file())
    progress = tqdm(total=total, initial=done, desc="sentence vectors", unit="text")
    for number, (start, path) in enumerate(zip(starts, paths, strict=True)):
        if number not in mine or path.is_file():
            continue
        part = dataset.select(range(start, min(start + shard_size, len(dataset))))
        texts, pairs = columns(part)
        vectors = sentence_vectors(
            teacher,
            texts,
            layer,
            text_pairs=pairs,
            batch_size=batch_size,
            max_tokens=max_tokens,
            device=device,
            precision=precision,
            on_batch=progress.update,
        ).astype(np.float16)
        if not np.isfinite(vectors).all():  # beyond float16's range (65504): say so, not NaN later
            raise DataError(
                f"sentence vectors: teacher layer {layer} has states beyond float16's range "
                f"(rows {start}-{start + len(part) - 1}); choose another label.repr_layer"
            )
        metadata = {"layer": str(layer), "first_row": str(start)}
        write_atomically(
            path, lambda tmp, v=vectors, m=metadata: save_file({VECTORS_KEY: v}, str(tmp), m)
        )
    progress.close()
    distributed.barrier()  # every rank's shards are written
    return SentenceVectors.load(output_dir, expected=len(dataset))


# student side -----------------------------------------------------------------------------------
def check_fits(repr_weight: float, pair_design: str, is_pair: bool, where: str = "") -> None:
    """Raise `ConfigError` (its message starting with `where`, e.g. `variant x: `) for
    representation distillation a student cannot do: a siamese student reads the two texts of
    a pair apart, while the cross-encoder teacher has one vector per pair."""
    if repr_weight > 0 and is_pair and pair_design == "siamese":
        raise ConfigError(
            f"{where}student.repr_weight: a siamese student has one sentence vector per text, the "
            'cross-encoder teacher one per pair; use pair_design = "joint" or repr_weight = 0'
        )


class ProjectedStudent(nn.Module):
    """A student and a linear projection of its pooled sentence vector onto the teacher's
    hidden size, trained together. Only `student` is kept afterwards: the projection exists
    for the representation loss and is saved neither with the student nor in its bundle.

    `forward(...)` is the student's; with `project=True` it returns `(logits, projected)`,
    `projected` `(batch, teacher_hidden_size)`, from one pass of the encoder."""

    def __init__(self, student: nn.Module, teacher_hidden_size: int):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student.config.output_size, teacher_hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
        project: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not project:
            return self.student(input_ids, attention_mask, pair_input_ids, pair_attention_mask)
        if pair_input_ids is not None:
            raise StudentError("a siamese student has no one sentence vector per pair to project")
        vector = self.student.encode(input_ids, attention_mask)  # (batch, output_size)
        logits = self.student.head(vector)  # as the student's forward reads one sequence
        return logits, self.projection(vector)
