"""Epoch-aware batches: each epoch's order and augmentation seeds come from (seed, epoch) alone."""

from __future__ import annotations

import itertools
import os

import pytest
import torch

from utils.data import create_dataloader
from utils.data.sampler import EpochBatchSampler


def _epochs(sampler: EpochBatchSampler, epochs: int) -> list[list[list[tuple[int, int]]]]:
    it = iter(sampler)
    return [list(itertools.islice(it, len(sampler))) for _ in range(epochs)]


def test_batches_never_span_two_epochs_and_every_index_comes_once():
    s = EpochBatchSampler(10, 4, shuffle=True, seed=0)
    assert len(s) == 3
    for batches in _epochs(s, 3):
        assert [len(b) for b in batches] == [4, 4, 2]
        assert sorted(i for b in batches for i, _ in b) == list(range(10))
    first, second = _epochs(s, 2)
    assert [i for b in first for i, _ in b] != [i for b in second for i, _ in b]  # reshuffled


def test_a_sampler_started_later_repeats_the_epochs_of_one_started_earlier():
    whole = _epochs(EpochBatchSampler(13, 4, shuffle=True, seed=7), 4)
    resumed = _epochs(EpochBatchSampler(13, 4, shuffle=True, seed=7, start_epoch=2), 2)
    assert resumed == whole[2:]
    assert _epochs(EpochBatchSampler(13, 4, shuffle=True, seed=8), 1) != whole[:1]


def test_without_shuffle_the_order_is_kept_and_processes_share_it():
    (batches,) = _epochs(EpochBatchSampler(5, 8, shuffle=False, seed=0), 1)
    assert [i for i, _ in batches[0]] == [0, 1, 2, 3, 4]
    shares = [_epochs(EpochBatchSampler(5, 8, shuffle=False, seed=0, rank=r, world=2), 1)[0][0] for r in (0, 1)]
    assert [i for i, _ in shares[0]] == [0, 2, 4] and [i for i, _ in shares[1]] == [1, 3, 0]  # padded to 6
    assert len({s for share in shares for _, s in share}) == 6  # every item its own augmentation seed


def test_an_items_augmentation_depends_on_its_seed_only(dataset_root):
    _, ds = create_dataloader(dataset_root / "images" / "train", 64, 2, 32, augment=True, workers=0, nc=3)
    a, la, *_ = ds[(0, 123)]
    torch.manual_seed(99)  # other global state in between changes nothing
    b, lb, *_ = ds[(0, 123)]
    c, *_ = ds[(0, 124)]
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for a loader worker")
def test_a_training_loader_keeps_its_workers_and_runs_on_across_epochs(dataset_root):
    loader, _ = create_dataloader(dataset_root / "images" / "train", 64, 2, 32, augment=True, workers=2, nc=3,
                                  shuffle=True, epochs_from=0)  # fmt: skip
    assert loader.persistent_workers and loader.num_workers >= 1
    it = iter(loader)
    seen = [[p for _, _, paths, _ in itertools.islice(it, len(loader)) for p in paths] for _ in range(2)]
    assert sorted(seen[0]) == sorted(seen[1]) and len(seen[0]) == len(loader.dataset)
