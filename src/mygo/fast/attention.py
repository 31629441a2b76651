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

from mygo.fast.dropout import CounterDropout, Dropout, kept_fraction, mask_unscaled, relu_dropout_unscaled


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


__all__ = ["BatchFirstEncoderLayer"]
