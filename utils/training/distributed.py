"""Multi-process training with DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N train.py ...`` starts N processes and tells each its place through environment
variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Every process trains the
same student on its own share of each batch; DDP averages the gradients, so all copies stay identical. Process 0
(the main process) alone logs, validates, plots and saves. Without those variables everything here is a no-op
and training runs in one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` of ``world_size`` in all, ``local_rank`` on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def dist_info_from_env() -> DistInfo:
    """``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` as torchrun sets them; a plain ``python train.py`` is 1 process."""
    info = DistInfo(_env_int("RANK", 0), _env_int("LOCAL_RANK", 0), _env_int("WORLD_SIZE", 1))
    if not 0 <= info.rank < info.world_size:
        raise ValueError(f"RANK={info.rank} is outside 0..{info.world_size - 1} (WORLD_SIZE={info.world_size})")
    return info


def init_distributed(device_spec: str) -> tuple[DistInfo, str]:
    """Join the process group when torchrun started us; returns the process's place and the device to use.

    On CUDA each process takes the GPU of its ``LOCAL_RANK`` (or the ``LOCAL_RANK``-th of a ``--device 0,1,..``
    list) and talks over NCCL; on CPU (``--device cpu`` or no GPU) it uses Gloo.
    """
    info = dist_info_from_env()
    if not info.enabled:
        return info, device_spec
    spec = str(device_spec).strip().lower()
    use_cuda = spec != "cpu" and torch.cuda.is_available()
    if use_cuda:
        ids = [i for i in spec.replace("cuda:", "").split(",") if i]
        ids = ids or [str(i) for i in range(torch.cuda.device_count())]
        if info.local_rank >= len(ids):
            raise ValueError(
                f"--device {device_spec!r}: LOCAL_RANK {info.local_rank} has no GPU ({len(ids)} listed); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device_spec = ids[info.local_rank]
        torch.cuda.set_device(int(device_spec))
    else:
        device_spec = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if not info.main:  # one voice: the other processes only report problems
        logging.getLogger().setLevel(logging.WARNING)
    LOGGER.info("DistributedDataParallel: %d processes, backend %s", info.world_size, dist.get_backend())
    return info, device_spec


def per_process_batch(total: int, info: DistInfo) -> int:
    """``--batch-size`` is the total over all processes; each process loads ``total / world_size`` images."""
    if total % info.world_size:
        raise ValueError(
            f"--batch-size {total} must be a multiple of the number of processes ({info.world_size}); "
            "it is the total batch over all of them"
        )
    return total // info.world_size


@contextlib.contextmanager
def main_process_first(info: DistInfo) -> Iterator[None]:
    """The main process runs the block first (e.g. writes a label cache); the others then read its result."""
    if info.enabled and not info.main:
        dist.barrier()
    yield
    if info.enabled and info.main:
        dist.barrier()


def all_processes(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is True in every process (so that all of them take the same branch, e.g. skip a step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([0 if flag else 1], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item()) == 0


def broadcast_object(obj, info: DistInfo):
    """The main process's ``obj`` (picklable) on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy the main process's parameters and buffers of ``module`` to every process."""
    if info.enabled:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool) -> nn.Module:
    """The module to call in training: ``model`` itself, or a DDP wrapper around it.

    ``model`` is the student with the add-ons' trainable modules (:class:`~utils.training.step.TrainModule`), so DDP
    averages the gradients of distillation adapters with the student's. DDP copies the main process's weights and
    buffers (e.g. the anchors autoanchor chose) to all processes here, and at every forward pass the main process's
    BN running statistics. ``model`` keeps its identity, so forward hooks registered on its layers (distillation
    features) still fire inside the wrapper.
    """
    if not info.enabled:
        if sync_bn:
            LOGGER.warning("--sync-bn has no effect in a single process")
        return model
    if sync_bn:
        if device.type == "cuda":
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
            LOGGER.info("Using SyncBatchNorm")
        else:
            LOGGER.warning("--sync-bn needs CUDA (PyTorch's SyncBatchNorm); BN statistics stay per process on CPU")
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group (at the end of training, also after an error)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
