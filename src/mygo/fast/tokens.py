"""The entity sequence assembled in one pass.

assemble_in_place is mygo.model.assemble writing each piece plus its slots' bias straight into
the sequence: one pass, where concatenating and then adding the bias is two over the whole
(E, L, d) sequence. The same additions, so the same bits, forward and backward.
"""
from __future__ import annotations

import functools

import torch


class _Assemble(torch.autograd.Function):
    """torch.cat(pieces, 1) + slot_bias, each piece added to its slots' bias into the output."""

    @staticmethod
    def forward(ctx, slot_bias: torch.Tensor, *pieces: torch.Tensor) -> torch.Tensor:
        E, d = pieces[0].shape[0], slot_bias.shape[-1]
        widths = [piece.shape[1] for piece in pieces]
        dtype = functools.reduce(torch.promote_types, [piece.dtype for piece in pieces], slot_bias.dtype)
        sequence = torch.empty(E, sum(widths), d, dtype=dtype, device=slot_bias.device)
        start = 0
        for piece, width in zip(pieces, widths):
            torch.add(piece, slot_bias[:, start:start + width], out=sequence[:, start:start + width])
            start += width
        ctx.widths, ctx.dtypes = widths, [piece.dtype for piece in pieces]
        return sequence

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grads, start = [], 0
        for width, dtype in zip(ctx.widths, ctx.dtypes):
            grads.append(grad[:, start:start + width].to(dtype))
            start += width
        return grad.sum(0, keepdim=True), *grads


def assemble_in_place(pieces: list[torch.Tensor], slot_bias: torch.Tensor) -> torch.Tensor:
    """mygo.model.assemble: pieces (E, L_i, d), slot_bias (1, L, d) -> (E, L, d)."""
    return _Assemble.apply(slot_bias, *pieces)
