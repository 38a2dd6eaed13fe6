"""Data-parallel helpers for the trainer: process detection, gather with gradients, gradient averaging.

What they implement (used by ``workbench.training.trainer.train`` when ``world_size() > 1``):

- **Process detection** (:func:`init_from_env`, :func:`rank`, :func:`world_size`): an already
  initialised ``torch.distributed`` process group (created by the caller, an ``accelerate``
  ``Accelerator`` / ``PartialState`` or a test) is used as it is; otherwise, when the launcher's
  environment says ``WORLD_SIZE > 1`` (``accelerate launch``, ``torchrun``: ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), the group is created from it (``env://``;
  NCCL on CUDA, gloo on CPU). Without either, everything is single-process and the helpers are
  no-ops.
- **Gather with gradients** (:func:`gather_with_grad`): all-gather of a (n, d) tensor whose
  backward sums every process's gradient of the gathered tensor and hands each process the slice
  of its own rows, i.e. the gradient of the *sum of all processes' losses* w.r.t. the local rows
  (as ``torch.distributed.nn.functional.all_gather``, which is deprecated in torch 2.13 and emulates
  reduce-scatter with scatters on gloo; here the backward is one ``all_reduce``, which every backend
  has). This is the cross-process in-batch negatives of DPR / CLIP-style training.
- **Gradient averaging** (:func:`average_gradients`): ``all_reduce(grad) / world_size`` over
  bucketed flat buffers, so every process holds the same averaged gradient (what DDP does, without
  wrapping the model: the encoder runs several forwards per step, which DDP's hooks do not fit).
- :func:`broadcast_parameters` (rank 0's weights to every process, at the start), :func:`barrier`,
  :func:`all_reduce_sum`, :func:`gather_rows` (no gradient, for the dynamics table) and
  :func:`all_gather_objects` (the per-process RNG states a checkpoint stores).

With each process's loss scaled as ``world_size / B * sum of its per-query losses`` (B = global
batch), the averaged gradient equals the gradient of one process's mean loss over the whole global
batch: the sum over processes of their gradients counts each query's path once (its own process)
and each code's path once (through the gather's backward).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "init_from_env",
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "local_device",
    "barrier",
    "gather_with_grad",
    "gather_rows",
    "average_gradients",
    "broadcast_parameters",
    "all_reduce_sum",
    "all_gather_objects",
    "shard_sizes",
]


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(timeout_s: float = 1800.0) -> bool:
    """Join the launcher's process group if there is one; return :func:`is_distributed`.

    Does nothing when a group is already initialised or ``WORLD_SIZE`` is unset / 1. Otherwise
    ``init_process_group("nccl" on CUDA else "gloo", init_method="env://")`` after
    ``torch.cuda.set_device(LOCAL_RANK)``.
    """
    if not dist.is_available() or dist.is_initialized() or _env_world_size() <= 1:
        return is_distributed()
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "nccl"
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s))
    return is_distributed()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """``LOCAL_RANK`` from the launcher (the GPU index of this process on its node); 0 without one."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def local_device() -> torch.device:
    """The device this process should train on: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    """Wait for every process (no-op single-process)."""
    if is_distributed():
        dist.barrier()


def shard_sizes(n: int, world: int) -> list[int]:
    """Contiguous shard sizes of ``n`` items over ``world`` processes (the first ``n % world`` get one more)."""
    base, extra = divmod(n, world)
    return [base + (1 if r < extra else 0) for r in range(world)]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; backward: all-reduce (sum) the gathered gradient, keep own slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        ctx.rows = x.shape[0]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x)
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        r = dist.get_rank()
        return grad[r * ctx.rows : (r + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``cat([x of rank 0, x of rank 1, ...])`` with gradients flowing back to each owner.

    Every process must pass a tensor of the same shape (pad to the largest shard), and each must
    run the backward (the backward is a collective). Returns ``x`` itself single-process.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 without gradient (same shape on every process)."""
    if not is_distributed():
        return x.detach()
    x = x.detach().contiguous()
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x)
    return torch.cat(out, dim=0)


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes (a new tensor; ``x`` single-process)."""
    if not is_distributed():
        return x.detach()
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def _buckets(tensors: Sequence[torch.Tensor], max_numel: int) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() > max_numel or t.dtype != bucket[0].dtype or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


@torch.no_grad()
def average_gradients(parameters: Iterable[torch.nn.Parameter], bucket_numel: int = 1 << 24) -> None:
    """Replace every ``p.grad`` by its mean over processes (flat buckets of <= ``bucket_numel`` elements).

    Parameters without a gradient (``grad is None``) are skipped; every process must have the same
    set of them (true for the trainer: all processes run the same graph).
    """
    if not is_distributed():
        return
    world = dist.get_world_size()
    grads = [p.grad for p in parameters if p.grad is not None]
    for bucket in _buckets(grads, bucket_numel):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


@torch.no_grad()
def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters and buffers into every process's ``module`` (no-op single-process)."""
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` single-process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
