"""Distributed data parallel training under ``torchrun``.

``torchrun --nproc_per_node=N -m landscape train ...`` (or
``python -m torch.distributed.run ...``) starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them into
one process group (gloo on CPU, NCCL on GPU, one GPU per process). Every rank
holds the same model (broadcast from rank 0), draws its own slice of each
global batch and its own SGLD replay buffer; gradients are averaged with one
all-reduce per step (flattened into a single tensor), so the update is the
same on every rank. Only rank 0 evaluates and writes files; the buffers and
RNG states of all ranks are gathered into rank 0's checkpoint.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

log = logging.getLogger(__name__)

__all__ = ["Dist", "init_distributed"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self._device())
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def average_gradients(self, params) -> None:
        """Average ``.grad`` of ``params`` over ranks (one flattened all-reduce)."""
        if not self.enabled or self.world_size == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                tdist.broadcast(t.data, src=0)

    def gather(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` on rank 0, None elsewhere."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        tdist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def _device(self) -> torch.device:
        if tdist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def close(self) -> None:
        if self.enabled and self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()


def init_distributed(device: str = "auto") -> Dist:
    """Join the process group ``torchrun`` describes; a plain run gets a single-rank :class:`Dist`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if tdist.is_initialized():
        return Dist(tdist.get_rank(), tdist.get_world_size(), local, True, False)
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local)
    tdist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    log.info("distributed: rank %d of %d (%s)", rank, world, backend)
    return Dist(rank, world, local, True, True)
