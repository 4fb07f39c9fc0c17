"""Several processes on one run (`torchrun` / `accelerate launch`): which rank this process is,
a barrier, the label shards a rank owns, and a `Ledger` whose decisions every rank shares.

The launchers set `RANK`, `WORLD_SIZE` and `LOCAL_RANK` (and `MASTER_ADDR` / `MASTER_PORT`);
without them this is one process and every helper here is a no-op. The process group is made
on first use (gloo on CPU, nccl on GPU); the `Trainer` reuses it for DDP.

Rank 0 holds each stage's lock and writes its records, results and metrics. The other ranks
follow its reuse / build decisions: they take part in the stages whose work is shared
(`COLLECTIVE`: teacher fine-tuning and student training run data-parallel, labelling and the
teacher's sentence vectors split their shards) and wait at a barrier for the others, then read
the finished stage.

    torchrun --nproc_per_node 2 -m distilrnn run CONFIG
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from distilrnn.ledger import Ledger
from distilrnn.stages import Stage

logger = logging.getLogger(__name__)

# the stages all ranks build together; the others rank 0 builds alone while the rest wait
COLLECTIVE = frozenset({"teacher", "label", "states", "student"})


def rank() -> int:
    """This process's rank among all processes of all machines (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes run together (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's rank on its machine: the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run's records (rank 0)."""
    return rank() == 0


def rank_device(device: str) -> str:
    """`device` for this rank: plain `cuda` is the rank's own GPU (`cuda:LOCAL_RANK`)."""
    return f"cuda:{local_rank()}" if device == "cuda" and world_size() > 1 else device


def backend(device: str = "") -> str:
    """The process group backend: nccl for GPUs, gloo on CPU."""
    on_gpu = device.startswith("cuda") if device else torch.cuda.is_available()
    return "nccl" if on_gpu else "gloo"


def ensure_process_group() -> bool:
    """Join the launcher's process group unless already in it (or alone): whether one exists."""
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        if backend() == "nccl":
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend(), rank=rank(), world_size=world_size())
    return True


def barrier() -> None:
    """Wait until every rank gets here (nothing with one process)."""
    if ensure_process_group():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (a small picklable object)."""
    if not ensure_process_group():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def owned_shards(count: int, rank_: int | None = None, ranks: int | None = None) -> list[int]:
    """The shard numbers among `count` that rank `rank_` of `ranks` labels: r, r + N, ..."""
    rank_ = rank() if rank_ is None else rank_
    ranks = world_size() if ranks is None else ranks
    return list(range(rank_, count, ranks))


class RankedLedger(Ledger):
    """A `Ledger` for several ranks: rank 0 decides (reuse or build, under the stage's lock)
    and every rank follows; a stage in `COLLECTIVE` is built by all ranks, another by rank 0
    alone; every rank then waits at a barrier, so each sees the finished stage. With one
    process it is a plain `Ledger`."""

    def done(self, stage: Stage) -> bool:
        if world_size() == 1:
            return super().done(stage)
        decision = broadcast(super().done(stage) if is_main() else None)
        if not is_main():
            (self.reused if decision else self.built).append(stage.label)
        return decision

    def build(self, stage: Stage, make: Callable[[], None]) -> None:
        with self.building(stage) as build:
            if build and (is_main() or stage.name in COLLECTIVE):
                make()

    def building(self, stage: Stage) -> contextlib.AbstractContextManager[bool]:
        if world_size() == 1:
            return super().building(stage)
        return self._ranked_building(stage)

    @contextlib.contextmanager
    def _ranked_building(self, stage: Stage) -> Iterator[bool]:
        if is_main():
            with super().building(stage) as build:
                broadcast(build)
                yield build
        else:
            build = broadcast(None)
            if not build:  # rank 0 found it finished by another command meanwhile
                self.built.remove(stage.label)
                self.reused.append(stage.label)
            yield build
        barrier()  # rank 0 has finished the stage (and released its lock)
