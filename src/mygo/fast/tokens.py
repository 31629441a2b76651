"""The entity sequence assembled in one pass.

assemble_in_place is mygo.model.assemble writing each piece plus its slots' bias straight into
the sequence (where concatenating and then adding the bias is two passes over the whole (E, L, d)
sequence). A piece that is still table rows and ids (mygo.model.Tokens) with counter-mask dropout
is gathered, dropped out and biased in that same pass, by a C loop (mygo.fast.counter.gather_into):
no gathered copy, no masked copy; its backward reads the sequence's gradient once, adding each
token's masked gradient into its row and summing the bias's. Values are the same bits as the
unfused pieces (the same masks, products and sums, rounded the same way); the gradients of the
rows and of the bias are sums in another order (tests: equal to float tolerance).
"""
from __future__ import annotations

import functools

import torch

from mygo.fast import counter
from mygo.fast.counter import Counter
from mygo.fast.dropout import kept_fraction
from mygo.model import Tokens, assemble

KEEP_ALL = Counter(0, 2**16)


class _Assemble(torch.autograd.Function):
    """torch.cat(pieces, 1) + slot_bias. layout: per piece ("tensor", width, dtype), its tensor
    among `tensors`, or ("tokens", width, mask, scale, rows), its rows and ids among them."""

    @staticmethod
    def forward(ctx, slot_bias: torch.Tensor, layout: tuple, *tensors: torch.Tensor) -> torch.Tensor:
        E, d = tensors[1 if layout[0][0] == "tokens" else 0].shape[0], slot_bias.shape[-1]
        dtypes = [piece[2] for piece in layout if piece[0] == "tensor"]
        dtype = functools.reduce(torch.promote_types, dtypes, slot_bias.dtype)
        sequence = torch.empty(E, sum(piece[1] for piece in layout), d, dtype=dtype, device=slot_bias.device)
        start, inputs, ids = 0, iter(tensors), []
        for kind, width, *rest in layout:
            bias = slot_bias[0, start:start + width]
            if kind == "tensor":
                torch.add(next(inputs), bias, out=sequence[:, start:start + width])
            else:
                mask, scale, _ = rest
                rows, token_ids = next(inputs), next(inputs)
                counter.gather_into(sequence, start, rows, token_ids, bias.contiguous(), mask, scale)
                ids.append(token_ids)
            start += width
        ctx.layout = layout
        ctx.save_for_backward(*ids)
        return sequence

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        only_tensors = all(piece[0] == "tensor" for piece in ctx.layout)
        grads, bias, start, ids = [], [], 0, iter(ctx.saved_tensors)
        for kind, width, *rest in ctx.layout:
            if kind == "tensor":
                grads.append(grad[:, start:start + width].to(rest[0]))
                if not only_tensors:
                    bias.append(grad[:, start:start + width].sum(0))
            else:
                mask, scale, num_rows = rest
                rows, token_bias = counter.scatter_from(grad, start, next(ids), num_rows, mask, scale)
                grads += [rows, None]
                bias.append(token_bias)
            start += width
        # tensors only: one reduction, as autograd's for cat + bias
        slot_bias = grad.sum(0, keepdim=True) if only_tensors else torch.cat(bias).unsqueeze(0)
        return slot_bias, None, *grads


def _fusable(piece: Tokens, slot_bias: torch.Tensor) -> bool:
    """Whether a Tokens piece is gathered in the sequence's pass: float32 on CPU, its dropout
    inactive or with counter masks (mygo.fast.dropout.CounterDropout)."""
    dropout = piece.dropout
    active = dropout.training and dropout.p > 0
    return (piece.rows.device.type == "cpu" and piece.rows.dtype == slot_bias.dtype == torch.float32
            and (not active or getattr(dropout, "masks", None) == "counter"))


def assemble_in_place(pieces: list[torch.Tensor | Tokens], slot_bias: torch.Tensor) -> torch.Tensor:
    """mygo.model.assemble: pieces (E, L_i, d) or Tokens, slot_bias (1, L, d) -> (E, L, d); under
    torch.compile, assemble itself."""
    if torch.compiler.is_compiling():
        return assemble(pieces, slot_bias)
    layout, tensors = [], []
    for piece in pieces:
        if isinstance(piece, Tokens) and _fusable(piece, slot_bias):
            p = piece.dropout.p if piece.dropout.training else 0.0
            mask, scale = (Counter.draw(p), 1.0 / kept_fraction(p)) if p > 0 else (KEEP_ALL, 1.0)
            layout.append(("tokens", piece.width, mask, scale, piece.rows.shape[0]))
            tensors += [piece.rows, piece.ids]
        else:
            tensor = piece.gathered() if isinstance(piece, Tokens) else piece
            layout.append(("tensor", tensor.shape[1], tensor.dtype))
            tensors.append(tensor)
    return _Assemble.apply(slot_bias, tuple(layout), *tensors)
