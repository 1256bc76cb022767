"""The data order of a run: which training images make each step's batch, on which device.

Data order is a function of (seed, epoch): the single-process permutation is drawn with the
seed seed * 1_000_003 + epoch, and under torchrun rank r of N reads positions r, r + N, ... of
it (what one DistributedSampler gives, `epoch_order`), so the ranks' i-th batches together are
the single-process i-th batch. A resumed run therefore reads exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import torch

from trilemma.data import Dataset
from trilemma.data.streaming import release_pages

DEVICE_RESIDENT_BYTES = 2 << 30  # training sets up to 2 GiB are copied to the GPU once


def epoch_order(n: int, seed: int, world: int, rank: int) -> torch.Tensor:
    """Rank `rank`'s positions of one epoch: exactly what `DistributedSampler(range(n),
    num_replicas=world, rank=rank, shuffle=True)` yields at seed + epoch = `seed` (a
    permutation seeded so, padded with its own head to a multiple of `world`, every world-th
    position from `rank`), made as a tensor rather than a list of n Python ints (4 ms an epoch
    at 20,000, a tenth of a millisecond per step of a small model)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    padding = -n % world
    if padding:
        order = torch.cat([order, order.repeat(padding // n + 1)[:padding]])
    return order[rank::world]


class Batches:
    """Step i's batch of `batch_size` (the global batch; this rank's share of it under DDP)."""

    def __init__(self, dataset: Dataset, *, labelled: bool, batch_size: int, seed: int, device: torch.device,
                 layout: torch.memory_format, world: int = 1, rank: int = 0):
        self.normalizer, self.device, self.layout = dataset.normalizer, device, layout
        self.batch_size, self.world = batch_size, world
        self.x = dataset.x_train
        self.y = dataset.y_train if labelled else None
        if device.type == "cuda":
            # A training set that fits lives on the GPU (no copy per step); a larger one is
            # pinned, so its batches copy without a staging buffer, unless it is streamed from
            # its disk cache (`data.streaming`), which pinning would read whole into memory.
            if self.x.numel() * self.x.element_size() <= DEVICE_RESIDENT_BYTES:
                self.x = self.x.to(device)
                self.y = self.y.to(device) if self.y is not None else None
                release_pages(dataset.x_train)  # a disk cache's pages, now copied to the device
            elif dataset.info.get("storage") != "disk":
                self.x = self.x.pin_memory()
        # A disk-cached set (`data.streaming`) read on the host drops its pages after each batch.
        self.streamed = dataset.info.get("storage") == "disk" and self.x.device.type == "cpu"
        self.per_epoch = len(self.x) // batch_size
        self.seed, self.rank = seed * 1_000_003, rank
        self.order, self.order_epoch = None, -1

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step `step`'s images in the model's space, laid out for the model, and labels."""
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self.order_epoch:
            self.order, self.order_epoch = epoch_order(len(self.x), self.seed + epoch, self.world, self.rank), epoch
        rank_batch = self.batch_size // self.world
        index = self.order[position * rank_batch:(position + 1) * rank_batch].to(self.x.device)
        x = self.x[index]
        if self.streamed:
            release_pages(self.x)  # x is a copy; about 0.3 ms for the whole cache's mapping
        x = self.normalizer.to_model(x.to(self.device, non_blocking=True))
        labels = self.y[index].to(self.device) if self.y is not None else None
        return x.contiguous(memory_format=self.layout), labels
