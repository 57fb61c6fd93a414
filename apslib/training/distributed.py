"""The distributed context of a training process (torchrun / DDP), or a single process.

Conventions: launched by torchrun (``WORLD_SIZE > 1``), :func:`setup_distributed` joins
the process group (NCCL on cuda, gloo on cpu) unless one exists; rank 0 is the ``main``
process (the one that writes files and prints). Collective calls are no-ops in a single
process. :meth:`DistContext.agree` turns an error of one rank into an error on every rank,
so that no rank waits forever at the next collective for a rank that has failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from ..device import resolve_device
from .errors import TrainingError

__all__ = ["DistContext", "setup_distributed"]

T = TypeVar("T")


@dataclass
class DistContext:
    """World size, rank and device of this process; collectives that are no-ops alone."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(t)
        return t

    def sampler(self, dataset, seed: int):
        """A shuffling ``DistributedSampler`` of ``dataset`` (``None`` alone)."""
        if not self.active:
            return None
        return torch.utils.data.distributed.DistributedSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed
        )

    def shard(self, dataset):
        """This rank's items ``rank, rank + world_size, ...`` of ``dataset`` (all alone)."""
        if not self.active:
            return dataset
        return torch.utils.data.Subset(dataset, range(self.rank, len(dataset), self.world_size))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (itself alone)."""
        if not self.active:
            return model
        cuda = self.device.type == "cuda"
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if cuda else None
        )

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Every rank gets rank 0's buffers (BatchNorm statistics)."""
        if self.active:
            for b in module.buffers():
                torch.distributed.broadcast(b, 0)

    def agree(self, error: BaseException | None, what: str) -> None:
        """Raise ``error`` here, and a :class:`TrainingError` on every other rank, if any
        rank failed at ``what``; return on every rank otherwise."""
        if self.active:
            flag = torch.tensor([1.0 if error is not None else 0.0], device=self.device)
            torch.distributed.all_reduce(flag)
            failed = bool(flag.item())
        else:
            failed = error is not None
        if error is not None:
            raise error
        if failed:
            raise TrainingError(f"rank {self.rank}: another rank failed to {what}; see its error")

    def on_main(self, fn: Callable[[], T], what: str) -> T | None:
        """``fn()`` on rank 0 (``None`` elsewhere); if it raises, every rank raises
        (:meth:`agree`)."""
        result, error = None, None
        if self.main:
            try:
                result = fn()
            except Exception as err:
                error = err
        self.agree(error, what)
        return result

    def close(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device_name: str) -> tuple[DistContext, torch.device]:
    """The context and device of this process (joins the process group under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        device = resolve_device(device_name)
        return DistContext(device=device), device
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistContext(dist.get_world_size(), dist.get_rank(), local, owns, device), device
