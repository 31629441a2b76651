"""Dropout with cheap random numbers on CPU, and TuckER's core dropout fused into its contraction.

torch's CPU dropout draws each element's Bernoulli through `bernoulli_`, one generator call per
element, and keeps a float mask for backward (docs/benchmarks.md has what that cost). Here each keep/drop decision compares a uniform 16-bit number with round((1 - p) 2^16), the
numbers drawn from torch's generator in bulk (one 64-bit draw for four entries): the masks are
Bernoulli(1 - p') with p' = p rounded to a multiple of 2^-16 (|p' - p| <= 2^-17 = 7.6e-6: p = 0.4
keeps 0.600006 of entries), kept entries are scaled by 1 / (1 - p') so expectations are unchanged,
and for a seed they are as reproducible as nn.Dropout's, though not the same stream. Backward
keeps a bool mask (a quarter of a float mask's memory).

On CUDA and under torch.compile the native dropout is used: there it is already fused and cheap.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def keep_mask(shape: torch.Size | tuple, p: float, device: torch.device | str = "cpu",
              dropped: bool = False) -> torch.Tensor:
    """A bool tensor of `shape`, each entry True (kept) with probability 1 - p', independently,
    p' = p rounded to a multiple of 2^-16; with `dropped`, True marks the dropped entries instead
    (the complement of the same draw)."""
    numel = math.prod(shape)
    threshold = round((1.0 - p) * 2**16) - 2**15
    if threshold >= 2**15:                           # p' = 0: every entry kept (no draw)
        return torch.full(tuple(shape), not dropped, dtype=torch.bool, device=device)
    words = torch.randint(-2**63, 2**63 - 1, (-(-numel // 4),), dtype=torch.int64, device=device)
    u = words.view(torch.int16)[:numel]              # uniform 16-bit numbers, minus 2^15 (int16)
    return (u >= threshold if dropped else u < threshold).view(shape)


def kept_fraction(p: float) -> float:
    """1 - p': the probability that `keep_mask` keeps an entry."""
    return round((1.0 - p) * 2**16) / 2**16


class _MaskedScale(torch.autograd.Function):
    """x with the `drop` entries zeroed, times scale; the bool mask (not a float copy) is kept
    for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, drop: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return torch.where(drop, 0.0, x).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (drop,) = ctx.saved_tensors
        return torch.where(drop, 0.0, grad).mul_(ctx.scale), None, None


def _native(x: torch.Tensor) -> bool:
    return x.device.type != "cpu" or torch.compiler.is_compiling()


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """F.dropout with the cheap CPU masks."""
    if not training or p == 0.0:
        return x
    if _native(x):
        return F.dropout(x, p, training)
    return _MaskedScale.apply(x, keep_mask(x.shape, p, x.device, dropped=True), 1.0 / kept_fraction(p))


class Dropout(nn.Dropout):
    """nn.Dropout (same arguments, no state) with the cheap CPU masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)


class _CoreDropoutContract(torch.autograd.Function):
    """y_b = x_b Drop(r'_b W) for a batch of queries, TuckER's training contraction.

    x, relation (B, d), core (d, d, d), drop (B, d, d) bool, True = dropped. Each query's d x d
    matrix is built once and masked in place; backward keeps that matrix and the bool mask (the
    unfused version keeps the matrix before and after dropout and a float mask), and the 1 / (1 - p)
    scale is carried on the (B, d) vectors instead of the (B, d, d) matrices.
    """

    @staticmethod
    def forward(ctx, x, relation, core, drop, scale):
        B, d = x.shape
        matrices = (relation @ core.view(d, d * d)).view(B, d, d).masked_fill_(drop, 0.0)   # (B, d, d)
        ctx.save_for_backward(x, relation, core, drop, matrices)
        ctx.scale = scale
        return torch.bmm((x * scale).unsqueeze(1), matrices).squeeze(1)                    # (B, d)

    @staticmethod
    def backward(ctx, grad):
        x, relation, core, drop, matrices = ctx.saved_tensors
        B, d = x.shape
        scale = ctx.scale
        grad_x = torch.bmm(matrices, grad.unsqueeze(2)).squeeze(2).mul_(scale)              # (B, d)
        grad_matrices = ((x * scale).unsqueeze(2) * grad.unsqueeze(1)).masked_fill_(drop, 0.0)  # (B, d, d)
        flat = grad_matrices.view(B, d * d)
        grad_relation = flat @ core.view(d, d * d).t()                                     # (B, d)
        grad_core = (relation.t() @ flat).view(d, d, d)
        return grad_x, grad_relation, grad_core, None, None


def core_dropout_contract(x: torch.Tensor, relation: torch.Tensor, core: torch.Tensor, p: float) -> torch.Tensor:
    """x Drop(r' W): x, relation (B, d), core (d, d, d) -> (B, d), dropout p on each query's matrix."""
    B, d = x.shape
    if p == 0.0 or _native(x):
        matrices = F.dropout((relation @ core.view(d, d * d)).view(B, d, d), p, p > 0)    # (B, d, d)
        return torch.bmm(x.unsqueeze(1), matrices).squeeze(1)
    drop = keep_mask((B, d, d), p, x.device, dropped=True)
    return _CoreDropoutContract.apply(x, relation, core, drop, 1.0 / kept_fraction(p))


__all__ = ["keep_mask", "kept_fraction", "dropout", "Dropout", "core_dropout_contract"]
