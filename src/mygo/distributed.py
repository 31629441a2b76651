"""Data-parallel training across processes (torchrun; gloo on CPU, NCCL on GPUs).

Each rank scores its share of every query batch. The all-entity encoder pass, the largest
computation of a step, is sharded: each rank encodes a contiguous share of the entities and an
autograd-aware all-gather assembles the full (N, d) table, so adding ranks divides that work.
Gradients are summed across ranks after backward; losses are scaled so that the sum over ranks
equals the single-process loss on the whole batch. TuckER's batch norms use statistics of the
whole batch (synchronised), as a single process would.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def init_from_env(device_name: str = "auto") -> None:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")


def shard(n: int, index: int | None = None, count: int | None = None) -> tuple[int, int]:
    """[start, end) of this rank's contiguous share of n items."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    per = -(-n // count)
    return min(index * per, n), min((index + 1) * per, n)


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every rank's (share, d) rows into (n, d), differentiably."""
    from torch.distributed.nn.functional import all_gather
    per = -(-n // world_size())
    padded = F.pad(local, (0, 0, 0, per - local.shape[0]))
    return torch.cat(all_gather(padded), dim=0)[:n]


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(x, op=dist.ReduceOp.SUM)


def sync_batch_norm(bn: torch.nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d in training mode with mean and variance over every rank's rows."""
    count = all_reduce_sum(torch.tensor([float(x.shape[0])], device=x.device, dtype=x.dtype))
    mean = all_reduce_sum(x.sum(0)) / count
    var = all_reduce_sum(((x - mean) ** 2).sum(0)) / count              # biased, as BatchNorm normalises
    with torch.no_grad():
        bn.num_batches_tracked += 1
        unbiased = var * count / (count - 1).clamp(min=1)
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * unbiased)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


def all_reduce_gradients(model: torch.nn.Module) -> None:
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
