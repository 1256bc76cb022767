"""Running under PyTorch's own launcher, torchrun: one process per device, DistributedDataParallel.

Nothing here launches processes; `torchrun --nproc_per_node=N -m trilemma train ...` does, and
sets RANK, WORLD_SIZE and LOCAL_RANK. Without those (or with WORLD_SIZE=1) every helper is a
no-op and a run is exactly the single-process run: no process group is ever created.

The rule for batches: the configured batch size is the *global* batch. Under N processes each
rank takes a disjoint B/N of every global batch (DistributedSampler over the single-process
permutation), DDP averages the gradients, and the learning rate is left as configured: one
step under N processes is the same optimisation step as one single-process step at batch B.

Per-sample randomness (noise, timesteps, latents, augmentations) is drawn for the whole global
batch on every rank from the same seeded stream, and each rank keeps the rows of its own
samples (`per_sample`); the random stream therefore does not depend on the number of processes,
which is what lets a run resume under a different one.

Groups: `compare --parallel-families` splits the ranks into groups (`split_ranks`) and trains a
different family in each. Inside `in_group(...)` every helper here speaks of the group alone:
rank() is the rank within it, world_size() its size, is_main() its first rank, and collectives
(and DDP, through `process_group()`) reach only its members. A group of one is a plain
single-process run: no collective at all.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from trilemma.errors import UnsupportedRequest

__all__ = [
    "Group", "all_reduce_sum", "barrier", "batch_shard", "broadcast_flag", "gather_objects", "global_rank",
    "global_world_size", "in_group", "init", "is_distributed", "is_main", "launched", "local_rank", "per_sample",
    "process_group", "randn_like", "rank", "rank_local", "shutdown", "split_ranks", "work_split", "world_size",
]


def launched() -> bool:
    """True when torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass(frozen=True)
class Group:
    """Some of torchrun's ranks, working on one thing together (`split_ranks`)."""

    ranks: tuple[int, ...]  # global ranks, in order
    handle: Any = None  # the process group of the ranks (None for a group of one)


_group: Group | None = None  # inside in_group(): the group this rank works in


def _joined() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_distributed() -> bool:
    """True when this rank works with others: under torchrun, in a group of more than one."""
    if _group is not None:
        return len(_group.ranks) > 1
    return _joined()


def global_rank() -> int:
    """This process's rank among all of torchrun's; RANK even before the group is joined."""
    if _joined():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched() else 0


def global_world_size() -> int:
    if _joined():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def rank() -> int:
    """This process's rank in its group (`in_group`), or among all processes outside one."""
    if _group is not None:
        return _group.ranks.index(global_rank())
    return global_rank()


def world_size() -> int:
    """The number of processes working together: the group's, or all of torchrun's."""
    if _group is not None:
        return len(_group.ranks)
    return global_world_size()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def is_main() -> bool:
    """Rank 0 (of the group, inside one), or the only process: the one that writes files,
    prints and evaluates."""
    return rank() == 0


def process_group() -> Any:
    """The process group that collectives and DDP use here: the group's, or the default (None)."""
    return _group.handle if _group is not None else None


def split_ranks(size: int) -> list[Group]:
    """All ranks cut into groups of `size` consecutive ranks (the ranks past the last whole
    group are left out). Every rank must call this, in the same order, as torch requires of
    new process groups."""
    world = global_world_size()
    if not 1 <= size <= world:
        raise ValueError(f"group size {size} for {world} ranks")
    groups = []
    for start in range(0, world - size + 1, size):
        ranks = tuple(range(start, start + size))
        handle = dist.new_group(list(ranks)) if size > 1 else None
        groups.append(Group(ranks, handle))
    return groups


@contextmanager
def in_group(group: Group) -> Iterator[None]:
    """Within this context this rank works in `group` alone (see the module's docstring)."""
    global _group
    if global_rank() not in group.ranks:
        raise ValueError(f"rank {global_rank()} is not in the group {group.ranks}")
    previous, _group = _group, group
    try:
        yield
    finally:
        _group = previous


def init(device: torch.device) -> bool:
    """Join torchrun's process group (gloo on the CPU, NCCL on CUDA) if launched by it and not
    joined yet; idempotent. Returns whether the run is distributed."""
    if _joined() or not launched():
        return _joined()
    if not dist.is_available():
        raise UnsupportedRequest("launched by torchrun, but this PyTorch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # A long timeout: rank 0 evaluates inside on_step while the others wait at a collective.
    dist.init_process_group(backend, timeout=timedelta(minutes=60),
                            device_id=device if device.type == "cuda" else None)
    return True


def shutdown() -> None:
    """Leave the process group: first let every object that holds it (DDP's reducer, in a
    reference cycle) be collected, so none is destroyed after it at interpreter exit."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier(group=process_group())


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_flag(flag: bool) -> bool:
    """True on every rank if it is True on any: stop decisions (Ctrl-C, on_step, a non-finite
    loss) must be taken by all ranks together, or the others would wait forever in DDP."""
    if not is_distributed():
        return flag
    value = torch.tensor([float(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=process_group())
    return bool(value.item())


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a small tensor over ranks (returned on the tensor's device)."""
    if not is_distributed():
        return values
    out = values.to(_collective_device()).clone()
    dist.all_reduce(out, group=process_group())
    return out.to(values.device)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's object, in rank order, on every rank (a list of one without torchrun)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=process_group())
    return out


# ----------------------------------------------------------------------------- split work

_alone = False  # inside rank_local(): this rank does whole jobs by itself


def work_split() -> tuple[int, int]:
    """(this rank, number of ranks) for work that every rank calls together and splits:
    sampling (`sampling.generate`) and feature extraction. (0, 1) without torchrun or inside
    `rank_local()`."""
    if _alone or not is_distributed():
        return 0, 1
    return rank(), world_size()


@contextmanager
def rank_local() -> Iterator[None]:
    """Within this context generate() and feature extraction do all the work on this rank and
    take part in no collective: for code that only rank 0 runs, e.g. ``if is_main():`` blocks.
    (Outside it, those calls must be made by every rank, or rank 0 waits for the others.)"""
    global _alone
    previous, _alone = _alone, True
    try:
        yield
    finally:
        _alone = previous


# ----------------------------------------------------------------------------- batch shards

_shard: tuple[int, int] | None = None  # (this rank's offset, stride) within the global batch


@contextmanager
def batch_shard(offset: int, stride: int) -> Iterator[None]:
    """Within this context, a batch of n is rows offset, offset + stride, ... of a global batch
    of n * stride: the rows DistributedSampler gives this rank."""
    global _shard
    previous, _shard = _shard, (offset, stride) if stride > 1 else None
    try:
        yield
    finally:
        _shard = previous


def per_sample(draw: Callable[[int], torch.Tensor], n: int) -> torch.Tensor:
    """draw(m) makes random values for m samples (rows); returns those of this rank's n samples.

    Each rank draws the whole global batch's values and keeps its rows, so every sample gets
    the noise it would get in a single-process run, and all ranks' random streams stay equal."""
    if _shard is None:
        return draw(n)
    offset, stride = _shard
    return draw(n * stride)[offset::stride]


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """torch.randn_like(x) for a batch x, sharded as per_sample (memory layout kept, so the
    values equal randn_like's on the single-process batch)."""
    layout = (torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
              else torch.contiguous_format)
    return per_sample(
        lambda m: torch.empty((m, *x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=layout).normal_(),
        len(x),
    )
