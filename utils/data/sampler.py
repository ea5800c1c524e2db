"""Batches of training indices, epoch after epoch, that loader workers can run ahead on.

A training loader keeps its worker processes for the whole run and lets them prefetch across the end of an epoch,
so the first batch of an epoch does not wait for new workers to start. For a resumed run to repeat an
uninterrupted one exactly, nothing an epoch loads may depend on when or in which worker it is loaded: each epoch's
order comes from ``(seed, epoch)`` alone, and every index travels with its own augmentation seed, with which the
dataset seeds ``random`` and ``numpy`` before it loads that item (:meth:`YoloDataset.__getitem__`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import count

import torch
from torch.utils.data import Sampler

#: an item request: (dataset index, augmentation seed)
Item = tuple[int, int]


class EpochBatchSampler(Sampler[list[Item]]):
    """Endless batches of ``(index, seed)`` for epochs ``start_epoch, start_epoch + 1, ...``.

    Each epoch is a permutation of ``range(n)`` (or ``range(n)`` in order, without ``shuffle``) drawn from
    ``(seed, epoch)``; in a run of ``world`` processes every process takes every ``world``-th index from its
    ``rank`` (the order padded by repetition to a multiple of ``world``, as DistributedSampler does), then cuts its
    share into batches of ``batch_size`` (the last one of an epoch may be smaller; batches never span two epochs).
    ``len()`` is the number of batches of one epoch.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, start_epoch: int = 0, rank: int = 0,
                 world: int = 1):  # fmt: skip
        if n < 1 or batch_size < 1 or not 0 <= rank < world:
            raise ValueError(f"EpochBatchSampler: n={n}, batch_size={batch_size}, rank={rank}, world={world}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.start_epoch, self.rank, self.world = start_epoch, rank, world
        self.per_process = math.ceil(n / world)

    def __len__(self) -> int:
        return math.ceil(self.per_process / self.batch_size)

    def epoch(self, epoch: int) -> list[Item]:
        """This process's ``(index, seed)`` items of ``epoch``, in order."""
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        total = self.per_process * self.world
        order = order.repeat(math.ceil(total / self.n))[:total][self.rank :: self.world]
        seeds = torch.randint(0, 2**31 - 1, (total,), generator=g)[self.rank :: self.world]
        return list(zip(order.tolist(), seeds.tolist(), strict=True))

    def __iter__(self) -> Iterator[list[Item]]:
        for epoch in count(self.start_epoch):
            items = self.epoch(epoch)
            for i in range(0, len(items), self.batch_size):
                yield items[i : i + self.batch_size]
