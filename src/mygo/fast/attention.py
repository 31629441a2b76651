"""Self-attention that stays batch-first in training.

nn.MultiheadAttention transposes to sequence-first and copies q, k and v apart, and autograd
zero-fills and adds their gradients back. This layer is an nn.TransformerEncoderLayer (the same
parameters and state-dict keys) whose training forward computes q, k and v as views of one
(E, L, 3d) projection and lays the heads' outputs out once: the same products and the same
scaled_dot_product_attention call, so outputs and gradients equal torch's to float tolerance
(tests). Outside training it is torch's layer, with its fused inference path.

On CPU with mygo.fast's dropout, the three dropouts' 1 / (1 - p) scales are folded into the
weights and bias of the linear layer before them or after them (a (d, 4d) multiply instead of a
pass over the (E, L, 4d) activations), and the FFN's ReLU and its dropout are one masked pass
with one bool mask kept for backward (mygo.fast.dropout.relu_dropout_unscaled).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mygo.fast import counter
from mygo.fast.counter import Counter
from mygo.fast.dropout import CounterDropout, Dropout, kept_fraction, mask_unscaled, relu_dropout_unscaled
from mygo.model import feed_forward, slot0_attention_folded


class BatchFirstEncoderLayer(nn.TransformerEncoderLayer):
    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        attn = self.self_attn
        if (not self.training or src_mask is not None or is_causal or self.norm_first or not attn.batch_first
                or attn.in_proj_weight is None):
            return super().forward(src, src_mask, src_key_padding_mask, is_causal)
        x = self.norm1(src + self.self_attention(src, src_key_padding_mask))
        if self.folds_dropout(x):
            return self.norm2(x + self.feed_forward(x))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x))))))

    def folds_dropout(self, x: torch.Tensor) -> bool:
        """Whether the dropout scales can be folded into the linear layers (CPU, fast dropout: one kind
        in all three places)."""
        kinds = {type(m) for m in (self.dropout, self.dropout1, self.dropout2)}
        return (x.device.type == "cpu" and not torch.compiler.is_compiling() and self.activation is F.relu
                and len(kinds) == 1 and kinds <= {Dropout, CounterDropout})

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """dropout2(linear2(dropout(relu(linear1(x))))) with both scales on linear2's parameters."""
        shape, d = x.shape, x.shape[-1]
        scale, scale2 = 1.0 / kept_fraction(self.dropout.p), 1.0 / kept_fraction(self.dropout2.p)
        # 2-D, so that the in-place masks act on the products themselves, not on views of them
        masks = self.dropout.masks
        h = relu_dropout_unscaled(self.linear1(x.reshape(-1, d)), self.dropout.p, masks)   # (E L, 4d)
        y = F.linear(h, self.linear2.weight * (scale * scale2), self.linear2.bias * scale2)
        return mask_unscaled(y, self.dropout2.p, masks).view(shape)

    def self_attention(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """x (E, L, d); key_padding_mask (E, L), True or -inf = padded key -> (E, L, d)."""
        attn = self.self_attn
        E, L, d = x.shape
        h = attn.num_heads
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(E, L, 3, h, d // h)  # (E, L, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                                      # (E, h, L, d/h) each
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.dtype == torch.bool:
                key_padding_mask = torch.zeros_like(key_padding_mask, dtype=x.dtype).masked_fill_(
                    key_padding_mask, float("-inf"))
            mask = key_padding_mask.view(E, 1, 1, L).to(q.dtype)                              # added to (E, h, L, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=attn.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(E, L, d)                                            # (E, L, d)
        if self.folds_dropout(x):
            scale = 1.0 / kept_fraction(self.dropout1.p)
            y = F.linear(out.view(E * L, d), attn.out_proj.weight * scale, attn.out_proj.bias * scale)
            return mask_unscaled(y, self.dropout1.p, self.dropout1.masks).view(E, L, d)
        return self.dropout1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))


class _FoldedSlot0(torch.autograd.Function):
    """mygo.model.slot0_attention_folded's computation with its own backward: x's gradient from
    the scores and the attention-weighted sum comes out of one batched product (instead of two
    summed in autograd), and the [ENT] query's part is added to slot 0 in place (instead of a
    zero-filled (E, L, d) tensor added on), with the residual's: slot 0's input is a second output
    (mygo.model.first_slot), so that its gradient too goes into slot 0 in place. On any device:
    under autocast (of x's device type) forward and backward alike.

    x (E, L, d); w (3d, d), b (3d,) the in-projection; padded (E, L) bool; mask the attention
    dropout: None, a Counter (counter masks, nothing stored: CPU) or a probability p (drawn by
    torch.native_dropout, as F.dropout draws on CUDA, its (E, h, L) bool mask kept); scale the
    kept entries' factor -> (E, d), and x[:, :1] (E, 1, d)."""

    @staticmethod
    def forward(ctx, x, w, b, padded, heads: int, mask, scale: float):
        E, L, d = x.shape
        c = d // heads
        x0 = x[:, 0]
        residual = x[:, :1].clone()
        device = x.device.type
        ctx.autocast = None                                  # no autocast for this device type
        if torch.amp.is_autocast_available(device):
            ctx.autocast = dict(device_type=device, enabled=torch.is_autocast_enabled(device),
                                dtype=torch.get_autocast_dtype(device))
        if ctx.autocast and ctx.autocast["enabled"] and x.dtype == torch.float32:
            # x in the autocast dtype once (autocast would cast it again for each of the four
            # products below and in backward), and kept in it for backward
            x = x.to(ctx.autocast["dtype"])
        qs = F.linear(x0, w[:d], b[:d]).view(E, heads, c) * c ** -0.5                      # (E, h, c), scaled
        qk = torch.bmm(qs.transpose(0, 1), w[d:2 * d].view(heads, c, d)).transpose(0, 1)   # (E, h, d): W_k,h^T q_h
        a = torch.bmm(qk, x.transpose(1, 2)).masked_fill_(padded.view(E, 1, L), float("-inf")).softmax(-1)
        kept = ()                                                                          # a drawn mask
        if mask is None:
            ad = a
        elif isinstance(mask, Counter):
            ad = counter.scaled(a, mask, scale)                                            # (E, h, L)
        else:
            ad, keep = torch.native_dropout(a, mask, True)
            kept = (keep,)
        mixed = torch.bmm(ad, x)                                                           # (E, h, d)
        out = torch.bmm(mixed.transpose(0, 1), w[2 * d:].view(heads, c, d).transpose(1, 2)).transpose(0, 1)
        bias = b[2 * d:].view(heads, c)
        total = ad.sum(-1, keepdim=True) if mask is not None else None                    # sum_l a_l with dropout
        out = out + (total * bias if mask is not None else bias)
        ctx.save_for_backward(x, w, b, qs, qk, a, ad, mixed, *kept, *(() if total is None else (total,)))
        ctx.heads, ctx.mask, ctx.scale, ctx.dtype = heads, mask, scale, residual.dtype
        return out.reshape(E, d), residual

    @staticmethod
    def backward(ctx, grad, grad_residual):
        if ctx.autocast is None:
            return _FoldedSlot0._backward(ctx, grad, grad_residual)
        with torch.autocast(**ctx.autocast):                 # under autocast when forward was
            return _FoldedSlot0._backward(ctx, grad, grad_residual)

    @staticmethod
    def _backward(ctx, grad, grad_residual):
        x, w, b, qs, qk, a, ad, mixed, *rest = ctx.saved_tensors
        mask = ctx.mask
        keep = rest.pop(0) if mask is not None and not isinstance(mask, Counter) else None
        total = rest
        E, L, d = x.shape
        h = ctx.heads
        c = d // h
        g = grad.reshape(E, h, c)
        gt = g.transpose(0, 1)                                                              # (h, E, c)
        bias = b[2 * d:].view(h, c)
        # out_h = mixed_h W_v,h^T + (sum_l a_l) b_v,h
        grad_bv = (g * total[0]).sum(0) if mask is not None else g.sum(0)                  # (h, c)
        grad_mixed = torch.bmm(gt, w[2 * d:].view(h, c, d)).transpose(0, 1)                 # (E, h, d)
        grad_wv = torch.bmm(gt.transpose(1, 2), mixed.transpose(0, 1))                     # (h, c, d)
        # mixed = ad x; ad = dropout(a); a = softmax(qk x^T)
        grad_ad = torch.bmm(grad_mixed, x.transpose(1, 2))                                  # (E, h, L)
        if mask is not None:
            grad_ad = grad_ad.add_((g * bias).sum(-1, keepdim=True))
            grad_a = (counter.scaled(grad_ad, mask, ctx.scale) if keep is None
                      else torch.ops.aten.native_dropout_backward(grad_ad, keep, ctx.scale))
        else:
            grad_a = grad_ad
        grad_scores = grad_a.sub_((grad_a * a).sum(-1, keepdim=True)).mul_(a)              # (E, h, L)
        grad_qk = torch.bmm(grad_scores, x)                                                 # (E, h, d)
        # both of x's products in one: scores^T qk + ad^T grad_mixed
        grad_x = torch.bmm(torch.cat([grad_scores, ad], 1).transpose(1, 2), torch.cat([qk, grad_mixed], 1))
        grad_x = grad_x.to(ctx.dtype)                         # x's dtype: slot 0's sums below in it
        # qk_h = W_k,h^T q_h
        grad_qs = torch.bmm(grad_qk.transpose(0, 1), w[d:2 * d].view(h, c, d).transpose(1, 2))   # (h, E, c)
        grad_wk = torch.bmm(qs.transpose(0, 1).transpose(1, 2), grad_qk.transpose(0, 1))          # (h, c, d)
        grad_q = grad_qs.transpose(0, 1).reshape(E, d) * c ** -0.5                          # (E, d)
        grad_x[:, 0] += (grad_q @ w[:d]).to(grad_x.dtype)
        if grad_residual is not None:
            grad_x[:, :1] += grad_residual
        grad_w = torch.cat([grad_q.t() @ x[:, 0], grad_wk.reshape(d, d), grad_wv.reshape(d, d)])
        grad_b = torch.cat([grad_q.sum(0), torch.zeros(d, dtype=b.dtype, device=b.device), grad_bv.reshape(d)])
        return grad_x, grad_w, grad_b, None, None, None, None


def folded_feed_forward(layer: nn.TransformerEncoderLayer, y: torch.Tensor) -> torch.Tensor:
    """mygo.model.feed_forward for the [ENT] slot (mygo.model.first_slot): the layer's folded block
    (BatchFirstEncoderLayer.feed_forward) in training with counter masks, else feed_forward."""
    if (isinstance(layer, BatchFirstEncoderLayer) and layer.training and layer.folds_dropout(y)
            and layer.dropout.masks == "counter"):
        return layer.feed_forward(y)
    return feed_forward(layer, y)


def slot0_attention_fused(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padded: torch.Tensor,
                          masks: str | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """mygo.model.slot0_attention_folded (the same function and forward arithmetic) with the
    backward of _FoldedSlot0 where gradients are wanted, returning (E, d) and the residual
    x[:, :1] (mygo.model.first_slot); without gradients, and under torch.compile,
    slot0_attention_folded itself. Its attention dropout (`masks`): "counter" masks, the default
    on the CPU, or "drawn" by torch.native_dropout, the default elsewhere (the draws F.dropout
    makes on CUDA, so the same numbers as slot0_attention_folded there)."""
    attn = layer.self_attn
    wants_grad = torch.is_grad_enabled() and (x.requires_grad or attn.in_proj_weight.requires_grad)
    if not wants_grad or torch.compiler.is_compiling():
        return slot0_attention_folded(layer, x, padded)
    p = attn.dropout if layer.training else 0.0
    masks = masks or ("counter" if x.device.type == "cpu" else "drawn")
    if masks not in ("counter", "drawn") or (masks == "counter" and x.device.type != "cpu"):
        raise ValueError(f"masks = {masks!r} on {x.device.type}: expected 'drawn', or 'counter' on the CPU")
    if p == 0:
        mask, scale = None, 1.0
    elif masks == "counter":
        mask, scale = Counter.draw(p), 1.0 / kept_fraction(p)
    else:
        mask, scale = p, 1.0 / (1.0 - p)
    return _FoldedSlot0.apply(x, attn.in_proj_weight, attn.in_proj_bias, padded, attn.num_heads, mask, scale)


__all__ = ["BatchFirstEncoderLayer", "folded_feed_forward", "slot0_attention_fused"]
