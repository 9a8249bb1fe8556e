"""Multi-process training with PyTorch DDP, started by ``torchrun``.

``torchrun --nproc_per_node=N -m training.cli fit --config C.yaml`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; each process then trains on its shard of every epoch
(``DistributedSampler``) and gradients are averaged. NCCL on GPUs, gloo on CPUs. Only rank 0
writes logs, checkpoints and the run summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_kind: str) -> Distributed:
    """Join the process group when started by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    return Distributed(rank, world, local)


def all_reduce_sum(values: torch.Tensor, ctx: Distributed) -> torch.Tensor:
    """Sum a tensor over processes (identity when single)."""
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: Distributed) -> None:
    if ctx.enabled:
        dist.barrier()


def teardown(ctx: Distributed) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj, ctx: Distributed):
    """Rank 0's value of ``obj`` on every process (e.g. the run folder name)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
