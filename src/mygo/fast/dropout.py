"""Dropout with cheap random numbers on CPU, and TuckER's core dropout fused into its contraction.

torch's CPU dropout draws each element's Bernoulli through `bernoulli_`, one generator call per
element, and keeps a float mask for backward (docs/benchmarks.md has what that cost). Here each keep/drop decision compares a uniform 16-bit number with round((1 - p) 2^16), the
numbers drawn from torch's generator in bulk (one 64-bit draw for four entries): the masks are
Bernoulli(1 - p') with p' = p rounded to a multiple of 2^-16 (|p' - p| <= 2^-17 = 7.6e-6: p = 0.4
keeps 0.600006 of entries), kept entries are scaled by 1 / (1 - p') so expectations are unchanged,
and for a seed they are as reproducible as nn.Dropout's, though not the same stream. Backward
keeps a bool mask (a quarter of a float mask's memory).

On CUDA and under torch.compile the native dropout is used: there it is already fused and cheap.

`masks="counter"` (mygo.fast.counter, what the `fast` kernels use) computes the same kind of mask
from a counter instead of drawing it: masking is one in-place pass, backward recomputes the mask
instead of keeping it, and TuckER's core dropout builds its gradient in one pass. `masks="drawn"`
(the masks above) is what the pinned CPU mode keeps, so that its committed bytes stay.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mygo.fast import counter
from mygo.fast.counter import Counter, keep_threshold

MASKS = ("drawn", "counter")


def keep_mask(shape: torch.Size | tuple, p: float, device: torch.device | str = "cpu",
              dropped: bool = False) -> torch.Tensor:
    """A bool tensor of `shape`, each entry True (kept) with probability 1 - p', independently,
    p' = p rounded to a multiple of 2^-16; with `dropped`, True marks the dropped entries instead
    (the complement of the same draw)."""
    numel = math.prod(shape)
    threshold = keep_threshold(p) - 2**15
    if threshold >= 2**15:                           # p' = 0: every entry kept (no draw)
        return torch.full(tuple(shape), not dropped, dtype=torch.bool, device=device)
    words = torch.randint(-2**63, 2**63 - 1, (-(-numel // 4),), dtype=torch.int64, device=device)
    u = words.view(torch.int16)[:numel]              # uniform 16-bit numbers, minus 2^15 (int16)
    return (u >= threshold if dropped else u < threshold).view(shape)


def kept_fraction(p: float) -> float:
    """1 - p': the probability that `keep_mask` keeps an entry."""
    return keep_threshold(p) / 2**16


def _as_float(keep: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    """A bool keep-mask as 0 / `scale` floats. Multiplying by it is a branch-free vectorised pass;
    masked_fill_ or where with a random bool mask branch on every element and run several times
    slower on CPU (docs/benchmarks.md)."""
    out = keep.to(dtype)
    return out.mul_(scale) if scale != 1.0 else out


def new_mask(shape: torch.Size | tuple, p: float, device: torch.device | str, masks: str) -> torch.Tensor | Counter:
    """A fresh keep-mask for dropout p: a bool tensor (`drawn`) or a Counter (`counter`)."""
    if masks not in MASKS:
        raise ValueError(f"masks = {masks!r}: expected one of {', '.join(MASKS)}")
    return Counter.draw(p) if masks == "counter" else keep_mask(shape, p, device)


def _save(ctx, keep: torch.Tensor | Counter, *tensors: torch.Tensor) -> None:
    """Save `tensors` for backward, and the mask: a Counter as an attribute, a bool tensor saved."""
    ctx.counter = keep if isinstance(keep, Counter) else None
    ctx.save_for_backward(*tensors, *(() if ctx.counter else (keep,)))


def _saved(ctx) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | Counter]:
    saved = ctx.saved_tensors
    return (saved, ctx.counter) if ctx.counter else (saved[:-1], saved[-1])


class _MaskedScale(torch.autograd.Function):
    """x times the `keep` mask times scale; the bool mask (not a float copy) is kept for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor | Counter, scale: float) -> torch.Tensor:
        _save(ctx, keep)
        ctx.scale = scale
        if isinstance(keep, Counter):
            return counter.scaled(x, keep, scale)
        return x * _as_float(keep, x.dtype, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        _, keep = _saved(ctx)
        if isinstance(keep, Counter):
            return counter.scaled(grad, keep, ctx.scale), None, None
        return grad * _as_float(keep, grad.dtype, ctx.scale), None, None


class _ReluDropout(torch.autograd.Function):
    """relu(h) times the `keep` mask, in place on h and without the 1 / (1 - p) scale (the caller
    folds it into the next layer's weights). The output, which the next layer keeps anyway,
    serves backward: its positive entries are where both relu and the mask let the gradient
    through (its sign, a float pass, is that 0 / 1 mask)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, keep: torch.Tensor | Counter) -> torch.Tensor:
        ctx.counter = isinstance(keep, Counter)
        if ctx.counter:
            counter.mask_(h, keep, relu=True)
        else:
            h.relu_().mul_(_as_float(keep, h.dtype))
        ctx.mark_dirty(h)
        ctx.save_for_backward(h)
        return h

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        if ctx.counter:                                      # one pass (drawn masks: the pinned mode's two)
            return counter.relu_grad(grad, out), None
        return grad * out.sign(), None


class _MaskInPlace(torch.autograd.Function):
    """y times the `keep` mask in place, unscaled (the scale is folded into the weights that made
    y); the bool mask is kept for backward."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, keep: torch.Tensor | Counter) -> torch.Tensor:
        if isinstance(keep, Counter):
            counter.mask_(y, keep)
        else:
            y.mul_(_as_float(keep, y.dtype))
        ctx.mark_dirty(y)
        _save(ctx, keep)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        _, keep = _saved(ctx)
        if isinstance(keep, Counter):
            return counter.scaled(grad, keep, 1.0), None
        return grad * _as_float(keep, grad.dtype), None


def relu_dropout_unscaled(h: torch.Tensor, p: float, masks: str = "drawn") -> torch.Tensor:
    """relu(h) with dropout p but without its 1 / kept_fraction(p) scale, in place on h: a fresh
    activation that is no view (e.g. a 2-D linear layer's output). Unscaled, so only for CPU
    callers that fold the scale into the next linear layer (mygo.fast.attention)."""
    if p == 0.0:
        return F.relu(h)
    return _ReluDropout.apply(h, new_mask(h.shape, p, h.device, masks))


def mask_unscaled(y: torch.Tensor, p: float, masks: str = "drawn") -> torch.Tensor:
    """y with dropout p's mask but without its scale, in place (the scale folded upstream; y a
    fresh activation that is no view)."""
    if p == 0.0:
        return y
    return _MaskInPlace.apply(y, new_mask(y.shape, p, y.device, masks))


def _native(x: torch.Tensor) -> bool:
    return x.device.type != "cpu" or torch.compiler.is_compiling()


def dropout(x: torch.Tensor, p: float, training: bool = True, masks: str = "drawn") -> torch.Tensor:
    """F.dropout with the cheap CPU masks (`masks`: one of MASKS)."""
    if not training or p == 0.0:
        return x
    if _native(x):
        return F.dropout(x, p, training)
    return _MaskedScale.apply(x, new_mask(x.shape, p, x.device, masks), 1.0 / kept_fraction(p))


class Dropout(nn.Dropout):
    """nn.Dropout (same arguments, no state) with the cheap CPU masks, drawn."""

    masks = "drawn"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training, self.masks)


class CounterDropout(Dropout):
    """nn.Dropout (same arguments, no state) with counter masks (mygo.fast.counter)."""

    masks = "counter"


class _CoreDropoutContract(torch.autograd.Function):
    """y_b = x_b Drop(r'_b W) for a batch of queries, TuckER's training contraction.

    x, relation (B, d), core (d, d, d), keep (B, d, d) bool, False = dropped, or a Counter. Each
    query's d x d matrix is built once and masked in place; backward keeps that matrix, and the
    0 / 1 float mask it was multiplied by (drawn masks: the matrices' gradient from it in two
    passes) or nothing more (counter masks: the gradient and its mask in one pass). The unfused
    version keeps the matrix before and after dropout and a float mask. The 1 / (1 - p) scale is
    carried on the (B, d) vectors instead of the (B, d, d) matrices.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, relation, core, keep, scale):
        B, d = x.shape
        matrices = (relation @ core.view(d, d * d)).view(B, d, d)                         # (B, d, d)
        if isinstance(keep, Counter):                         # masked in place; backward recomputes it
            counter.mask_(matrices, keep)
            _save(ctx, keep, x, relation, core, matrices)
        else:
            mask = _as_float(keep, matrices.dtype)          # bf16 under autocast: the mask in that dtype
            matrices.mul_(mask)
            _save(ctx, mask, x, relation, core, matrices)
        ctx.scale = scale
        return torch.bmm((x * scale).unsqueeze(1), matrices).squeeze(1)                    # (B, d)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")              # under bf16 autocast when forward was
    def backward(ctx, grad):
        (x, relation, core, matrices), mask = _saved(ctx)
        B, d = x.shape
        scale = ctx.scale
        grad_x = torch.bmm(matrices, grad.unsqueeze(2)).squeeze(2).mul_(scale)              # (B, d)
        # the (B, d, d) work in the matrices' dtype (bf16 under autocast): no mixed-dtype passes;
        # mask_ij x_i g_j, which is x_i g_j or zero exactly as (x_i g_j) mask_ij is
        dtype = matrices.dtype
        xs, g = (x * scale).to(dtype), grad.to(dtype)
        if isinstance(mask, Counter):
            grad_matrices = counter.outer(xs, g, mask)      # one pass
        else:
            grad_matrices = torch.mul(mask, xs.unsqueeze(2)).mul_(g.unsqueeze(1))
        flat = grad_matrices.view(B, d * d)
        grad_relation = flat @ core.view(d, d * d).t()                                     # (B, d)
        grad_core = (relation.t() @ flat).view(d, d, d)
        return grad_x, grad_relation, grad_core, None, None


def core_dropout_contract(x: torch.Tensor, relation: torch.Tensor, core: torch.Tensor, p: float,
                          masks: str = "drawn") -> torch.Tensor:
    """x Drop(r' W): x, relation (B, d), core (d, d, d) -> (B, d), dropout p on each query's matrix."""
    B, d = x.shape
    if p == 0.0 or _native(x):
        matrices = F.dropout((relation @ core.view(d, d * d)).view(B, d, d), p, p > 0)    # (B, d, d)
        return torch.bmm(x.unsqueeze(1), matrices).squeeze(1)
    return _CoreDropoutContract.apply(x, relation, core, new_mask((B, d, d), p, x.device, masks),
                                      1.0 / kept_fraction(p))


def counter_core_dropout_contract(x: torch.Tensor, relation: torch.Tensor, core: torch.Tensor,
                                  p: float) -> torch.Tensor:
    """core_dropout_contract with counter masks."""
    return core_dropout_contract(x, relation, core, p, masks="counter")


__all__ = ["MASKS", "keep_mask", "kept_fraction", "new_mask", "dropout", "Dropout", "CounterDropout",
           "core_dropout_contract", "counter_core_dropout_contract", "relu_dropout_unscaled", "mask_unscaled"]
