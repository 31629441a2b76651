"""MyGO (AAAI 2025, arXiv 2404.09468), read top to bottom:

    ModelConfig               the hyperparameters and the shapes the data fixes
    Ops                       the operations the model is built from (mygo.fast: faster equivalents)
    CrossModalEntityEncoder   [ENT] + structure + m visual + n text tokens -> entity embedding
    ContextualTripleEncoder   [h, r, MASK] or [MASK, r, t] -> context c and relation r'
    TuckER                    c, r' -> scores against all entity embeddings
    MyGO                      the three; scores, and the KGC and fine-grained contrastive losses

This module imports torch only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The hyperparameters (params.yaml `train.model`, validated by mygo.params) plus the shapes
    that the data fixes. Saved in every checkpoint, so a file alone rebuilds its model."""
    dim: int = 256
    hidden_dim: int = 1024
    num_head: int = 2
    num_layer_enc: int = 1
    num_layer_dec: int = 1
    emb_dropout: float = 0.6          # structure and relation embeddings
    vis_dropout: float = 0.3
    txt_dropout: float = 0.1
    attn_dropout: float = 0.01        # attention and FFN dropout inside the transformer layers
    input_dropout: float = 0.3        # TuckER's three dropouts
    core_dropout: float = 0.4
    hidden_dropout: float = 0.5
    use_structure: bool = True
    use_visual: bool = True
    use_text: bool = True
    init: str = "reference"           # reference: the authors' init_weights; ours: the constructors'
    encoder_chunk: int = 0            # entities per checkpointed encoder chunk; 0 = one pass
    num_entities: int
    num_relations: int
    max_vis_token: int = 0
    max_txt_token: int = 0
    visual_rows: int = 1              # rows of the compact frozen visual table (row 0 = padding)
    visual_dim: int = 1
    text_rows: int = 1
    text_dim: int = 1

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"ModelConfig.{f.name} = {value!r}: expected an integer >= 0")
        if self.dim < 1 or self.num_head < 1 or self.dim % self.num_head:
            raise ValueError(f"ModelConfig: num_head = {self.num_head} must divide dim = {self.dim}")
        if self.init not in ("reference", "ours"):
            raise ValueError(f"ModelConfig.init = {self.init!r}: expected 'reference' or 'ours'")


def contract(x: torch.Tensor, relation: torch.Tensor, core: torch.Tensor, p: float) -> torch.Tensor:
    """TuckER's x Drop(r' W) with dropout p on each query's d x d matrix: x, relation (B, d),
    core (d, d, d) -> (B, d)."""
    B, d = x.shape
    matrices = F.dropout((relation @ core.view(d, d * d)).view(B, d, d), p, p > 0)    # (B, d, d)
    return torch.bmm(x.unsqueeze(1), matrices).squeeze(1)


def project_tokens(proj: nn.Linear, norm: nn.LayerNorm, table: torch.Tensor, ids: torch.Tensor,
                   dropout: nn.Module) -> torch.Tensor:
    """A modality's token embeddings, dropout(norm(proj(table[ids]))): ids (E, k) into the frozen
    table (V, D) -> (E, k, d)."""
    return dropout(norm(proj(table[ids])))


@dataclass(frozen=True)
class Tokens:
    """A modality's token embeddings not yet gathered: dropout(rows[ids]), rows (V, d) the
    projected table, ids (E, k). assemble gathers them into the sequence (Ops.assemble may do it
    in the same pass as the rest of the sequence)."""
    rows: torch.Tensor
    ids: torch.Tensor
    dropout: nn.Module

    @property
    def width(self) -> int:
        return self.ids.shape[1]

    def gathered(self) -> torch.Tensor:
        d = self.rows.shape[-1]
        return self.dropout(self.rows.index_select(0, self.ids.reshape(-1)).view(*self.ids.shape, d))


def project_table_rows(proj: nn.Linear, norm: nn.LayerNorm, table: torch.Tensor, ids: torch.Tensor,
                       dropout: nn.Module) -> torch.Tensor | Tokens:
    """project_tokens with proj and norm applied to the table's rows, to be gathered (Tokens): both
    act on each row alone, so norm(proj(table))[ids] = norm(proj(table[ids])). Chosen when the
    table has no more rows than ids has entries (the all-entity pass: a DB15K step gathers 103 k
    visual tokens from 8 k codebook rows), so the product and the layer norm, and their backward,
    run on fewer rows; otherwise (a few entities) project_tokens. Gathered with index_select,
    whose backward is one index_add_ (rows[ids]'s accumulates through index_put_, several times
    slower on CPU). The same values up to the product's blocking; gradients summed in another
    order."""
    if table.shape[0] > ids.numel():
        return project_tokens(proj, norm, table, ids, dropout)
    return Tokens(norm(proj(table)), ids, dropout)                                    # rows (V, d)


def assemble(pieces: list[torch.Tensor | Tokens], slot_bias: torch.Tensor) -> torch.Tensor:
    """The entity sequence: pieces (E, L_i, d) (Tokens gathered) side by side along the slots, plus
    slot_bias (1, L, d)."""
    return torch.cat([p.gathered() if isinstance(p, Tokens) else p for p in pieces], dim=1) + slot_bias


def slot0_attention(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
    """Slot 0's multi-head attention output in `layer`, before the output projection: its query
    against every slot's keys and values. x (E, L, d), padded (E, L) bool, True = padded key
    -> (E, d)."""
    attn = layer.self_attn
    E, L, d = x.shape
    h = attn.num_heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(x[:, 0], w[:d], b[:d]).view(E, h, 1, d // h)                         # (E, h, 1, d/h)
    k, v = F.linear(x, w[d:], b[d:]).view(E, L, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)  # (E, h, L, d/h)
    mask = torch.zeros(E, 1, 1, L, dtype=q.dtype, device=x.device).masked_fill_(padded.view(E, 1, 1, L),
                                                                                 float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                         dropout_p=attn.dropout if layer.training else 0.0)   # (E, h, 1, d/h)
    return out.reshape(E, d)


def slot0_attention_folded(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
    """slot0_attention with the query folded into the key and value projections, so that no key
    or value is computed: per head h, q_h . (x_l W_k,h^T + b_k,h) = x_l . (W_k,h^T q_h) + q_h . b_k,h,
    and sum_l a_l (x_l W_v,h^T + b_v,h) = (sum_l a_l x_l) W_v,h^T + (sum_l a_l) b_v,h. The per-slot
    (E L, d) x (d, 2d) projection, the all-entity pass's largest product, becomes two (E, d) x (d, d)
    ones; q_h . b_k,h adds the same number to every slot's score and drops out of the softmax. The
    same function as slot0_attention (tests: outputs and gradients to float tolerance); it rounds
    differently, and attention dropout draws masks of another shape (the same distribution)."""
    attn = layer.self_attn
    E, L, d = x.shape
    h = attn.num_heads
    c = d // h
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(x[:, 0], w[:d], b[:d]).view(E, h, c) * c ** -0.5                       # (E, h, c), scaled
    q_keys = torch.bmm(q.transpose(0, 1), w[d:2 * d].view(h, c, d)).transpose(0, 1)    # (E, h, d): W_k,h^T q_h
    scores = torch.bmm(q_keys, x.transpose(1, 2))                                       # (E, h, L)
    weights = scores.masked_fill_(padded.view(E, 1, L), float("-inf")).softmax(-1)     # a_l
    p = attn.dropout if layer.training else 0.0
    if p > 0:
        weights = F.dropout(weights, p)
    mixed = torch.bmm(weights, x)                                                       # (E, h, d): sum_l a_l x_l
    out = torch.bmm(mixed.transpose(0, 1), w[2 * d:].view(h, c, d).transpose(1, 2)).transpose(0, 1)   # (E, h, c)
    bias = b[2 * d:].view(h, c)
    out = out + (weights.sum(-1, keepdim=True) * bias if p > 0 else bias)               # with dropout sum a_l != 1
    return out.reshape(E, d)


def feed_forward(layer: nn.TransformerEncoderLayer, y: torch.Tensor) -> torch.Tensor:
    """A post-norm ReLU encoder layer's feed-forward block on y, its dropouts included."""
    return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(y)))))


def first_slot(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padded: torch.Tensor,
               attention: Callable[..., torch.Tensor] = slot0_attention,
               ffn: Callable[..., torch.Tensor] = feed_forward) -> torch.Tensor:
    """A post-norm ReLU encoder layer's output at slot 0 only: x (E, L, d), padded (E, L) bool,
    True = padded key -> (E, 1, d). Slot 0's query attends over every slot's keys and values; the
    other slots' queries, attention outputs and feed-forward passes, which slot 0's output does
    not depend on, are not computed. The layer's own parameters and dropout modules; `attention`
    computes slot 0's attention output (slot0_attention, or an equivalent from Ops) and `ffn` the
    feed-forward block (feed_forward, or an equivalent). The attention may also return slot 0's
    input x[:, :1] as a second output, the residual, so that its own backward adds the residual's
    gradient into x's (no zero-filled (E, L, d) gradient for the slice)."""
    attn = layer.self_attn
    E, _, d = x.shape
    out = attention(layer, x, padded)                                                  # (E, d)
    out, residual = out if isinstance(out, tuple) else (out, x[:, :1])
    y = layer.norm1(residual + layer.dropout1(F.linear(out.view(E, 1, d), attn.out_proj.weight,
                                                        attn.out_proj.bias)))                   # (E, 1, d)
    return layer.norm2(y + ffn(layer, y))


@dataclass(frozen=True)
class Ops:
    """The operations the model is built from. These defaults are torch's own; mygo.fast.ops()
    gives equivalents (the same parameters and mathematics, tested equal) that are faster on CPU,
    bound memory, or share work across processes."""
    dropout: Callable[[float], nn.Module] = nn.Dropout
    encoder_layer: type = nn.TransformerEncoderLayer            # constructed as nn.TransformerEncoderLayer
    core_contract: Callable[..., torch.Tensor] = contract       # (x, relation, core, p) -> (B, d)
    before_chunk: Callable[[torch.device], None] | None = None  # called before each encoder chunk
    batch_norm: Callable[[nn.BatchNorm1d, torch.Tensor], torch.Tensor] | None = None   # in training
    all_entities: Callable[..., torch.Tensor] | None = None     # (encode, N, device) -> (N, d), in training
    ent_attention: Callable[..., torch.Tensor] = slot0_attention   # (layer, x, padded) -> (E, d), the last layer's [ENT]
    tokens: Callable[..., torch.Tensor | Tokens] = project_tokens  # (proj, norm, table, ids, dropout) -> (E, k, d)
    assemble: Callable[..., torch.Tensor] = assemble               # (pieces, slot_bias) -> (E, L, d)
    ent_feed_forward: Callable[..., torch.Tensor] = feed_forward   # (layer, y) -> y's shape, the last layer's [ENT]


@dataclass(frozen=True)
class Losses:
    """A training step's loss: the KGC term and the (weighted) contrastive term."""
    kgc: torch.Tensor
    contrastive: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.kgc + self.contrastive


def _transformer(config: ModelConfig, num_layers: int, ops: Ops) -> nn.TransformerEncoder:
    """Post-norm ReLU transformer layers, batch first; their dropouts are ops.dropout."""
    layer = ops.encoder_layer(config.dim, config.num_head, config.hidden_dim, dropout=config.attn_dropout,
                              activation="relu", batch_first=True, norm_first=False)
    stack = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
    for each in stack.layers:
        each.dropout, each.dropout1, each.dropout2 = (ops.dropout(config.attn_dropout) for _ in range(3))
    return stack


class CrossModalEntityEncoder(nn.Module):
    """CMEE (paper 4.2): one sequence per entity, the output at [ENT] is the entity embedding."""

    def __init__(self, config: ModelConfig, visual_table: torch.Tensor, visual_ids: torch.Tensor,
                 visual_mask: torch.Tensor, text_table: torch.Tensor, text_ids: torch.Tensor,
                 text_mask: torch.Tensor, ops: Ops = Ops()):
        super().__init__()
        d, Dropout = config.dim, ops.dropout
        self.config = config
        self.ent_token = nn.Parameter(torch.empty(1, 1, d))
        self.structure = nn.Parameter(torch.empty(config.num_entities, d))
        self.norm_str, self.drop_str = nn.LayerNorm(d), Dropout(config.emb_dropout)
        self.proj_vis, self.norm_vis = nn.Linear(config.visual_dim, d), nn.LayerNorm(d)
        self.drop_vis = Dropout(config.vis_dropout)
        self.proj_txt, self.norm_txt = nn.Linear(config.text_dim, d), nn.LayerNorm(d)
        self.drop_txt = Dropout(config.txt_dropout)
        self.bias_str = nn.Parameter(torch.empty(1, 1, d))   # "modality bias" vectors
        self.bias_vis = nn.Parameter(torch.empty(1, 1, d))
        self.bias_txt = nn.Parameter(torch.empty(1, 1, d))
        # Frozen token tables and each entity's selected ids: buffers, never trained, saved
        # with the model so a checkpoint alone rebuilds it.
        self.register_buffer("visual_table", visual_table.float())       # (Vv, Dv)
        self.register_buffer("text_table", text_table.float())           # (Vt, Dt)
        self.register_buffer("visual_ids", visual_ids.long())            # (N, m)
        self.register_buffer("text_ids", text_ids.long())                # (N, n)
        # Token masks: True = real token. Ablations switch a modality off by masking it.
        self.register_buffer("visual_mask", visual_mask.bool() & config.use_visual)
        self.register_buffer("text_mask", text_mask.bool() & config.use_text)
        self.encoder = _transformer(config, config.num_layer_enc, ops)
        self.ent_attention, self.ent_feed_forward = ops.ent_attention, ops.ent_feed_forward
        self.tokens, self.assemble = ops.tokens, ops.assemble
        self.skip_padded_slots = True      # drop slots padded for the whole batch (same outputs, faster)
        self.fixed_slots: torch.Tensor | None = None   # fix_slots(): the kept slots, decided once
        for p in (self.ent_token, self.structure, self.bias_str, self.bias_vis, self.bias_txt):
            nn.init.xavier_uniform_(p.view(-1, d))

    def forward(self, entities: torch.Tensor | None = None, ent_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode `entities` (E,) long, or all N when None.

        Returns outputs (E, 2 + m + n, d) and the key mask (E, 2 + m + n), True = real slot.
        Slot order: [ENT], structure, m visual, n text. With `ent_only`, the outputs are the
        [ENT] slot's alone, (E, 1, d): the last layer then computes only that slot (its queries,
        attention output and feed-forward), keys and values still from every slot. The same
        numbers as slicing the full output, at a fraction of the last layer's work.
        """
        every = entities is None      # all N in order: the tables themselves, no gathered copies
        device = self.structure.device
        host_entities = None          # entities given on the host for a model on the device
        if every:
            entities = torch.arange(self.config.num_entities, device=device)
        elif entities.device != device:
            host_entities, entities = entities, entities.to(device, non_blocking=True)
        E, d = entities.shape[0], self.config.dim

        def rows(table: torch.Tensor) -> torch.Tensor:
            return table if every else table[entities]
        ent = self.ent_token.expand(E, 1, d)                                          # (E, 1, d)
        structure = self.drop_str(self.norm_str(rows(self.structure))).unsqueeze(1)   # (E, 1, d)
        visual = self.tokens(self.proj_vis, self.norm_vis, self.visual_table, rows(self.visual_ids),
                             self.drop_vis)                                           # (E, m, d) or Tokens
        text = self.tokens(self.proj_txt, self.norm_txt, self.text_table, rows(self.text_ids),
                           self.drop_txt)                                             # (E, n, d) or Tokens
        # The modality biases as one (1, L, d) row added to the whole sequence ([ENT] gets zero):
        # the same sums as adding each to its slots, and backward reduces one contiguous gradient
        # instead of strided slices of it.
        m, n = (p.width if isinstance(p, Tokens) else p.shape[1] for p in (visual, text))
        slot_bias = torch.cat([torch.zeros_like(self.bias_str), self.bias_str, self.bias_vis.expand(1, m, d),
                               self.bias_txt.expand(1, n, d)], dim=1)                 # (1, L, d)
        sequence = self.assemble([ent, structure, visual, text], slot_bias)           # (E, L, d)
        mask = self.slot_mask(None if every else entities)                           # (E, L)
        host_mask = None       # on a device: the same mask from host copies, so that deciding waits for nothing
        if mask.device.type != "cpu" and (every or host_entities is not None):
            host_mask = self.host_slot_mask(host_entities)
        keep = self._kept_slots(mask, host_mask)
        if keep is None:
            return self._encode(sequence, ~mask, ent_only), mask
        # Slots padded for every entity in the batch (e.g. all visual slots when there are no
        # images) are dropped before attention: masked keys contribute nothing, so the outputs
        # of the other slots are unchanged and the encoder runs on a shorter sequence.
        encoded = self._encode(sequence.index_select(1, keep), ~mask.index_select(1, keep), ent_only)
        if ent_only:                                                                  # [ENT] is always kept
            return encoded, mask
        return sequence.new_zeros(sequence.shape).index_copy(1, keep, encoded), mask

    def slot_mask(self, entities: torch.Tensor | None = None) -> torch.Tensor:
        """(E, L) bool, True = a real slot ([ENT], structure, m visual, n text) of `entities` (None:
        all N, in order)."""
        return self._slot_mask(self.visual_mask, self.text_mask, entities)

    def host_slot_mask(self, entities: torch.Tensor | None = None) -> torch.Tensor:
        """slot_mask on the host, for `entities` on the host (None: all N), from host copies of the
        token masks (made again whenever the buffers change): what the slots to encode and the
        contrastive views' valid rows are decided from without waiting for the device."""
        key = tuple((t.device, t.data_ptr(), t._version) for t in (self.visual_mask, self.text_mask))
        if getattr(self, "_host_masks", (None,))[0] != key:
            self._host_masks = (key, self.visual_mask.cpu(), self.text_mask.cpu())
        return self._slot_mask(self._host_masks[1], self._host_masks[2], entities)

    def _slot_mask(self, visual_mask: torch.Tensor, text_mask: torch.Tensor,
                   entities: torch.Tensor | None) -> torch.Tensor:
        visual, text = (m if entities is None else m[entities] for m in (visual_mask, text_mask))
        always = torch.ones(len(visual), 1, dtype=torch.bool, device=visual.device)
        return torch.cat([always, always & self.config.use_structure, visual, text], dim=1)

    def _kept_slots(self, mask: torch.Tensor, host_mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The slots to encode, (L',) long, or None for all: those some entity of the batch fills
        (mask (E, L)), decided from `host_mask`, its copy on the host, when given (else reading
        the mask back from the device); after fix_slots(), the decision made once for all
        entities is used instead."""
        if self.fixed_slots is not None:
            return None if len(self.fixed_slots) == mask.shape[1] else self.fixed_slots
        if not self.skip_padded_slots:
            return None
        active = (mask if host_mask is None else host_mask).any(0)                   # (L,)
        if bool(active.all()):
            return None
        kept = active.nonzero().squeeze(1)
        return kept if host_mask is None else kept.to(mask.device, non_blocking=True)

    def fix_slots(self) -> None:
        """Decide once which slots are encoded: those some entity of the whole graph fills. Every
        batch then has the same shapes and nothing waits for the device to decide (a CUDA graph
        needs both); a batch's slots that its own entities leave empty stay, masked (the same
        outputs to float tolerance)."""
        active = self.slot_mask().any(0)
        if not self.skip_padded_slots:
            active[:] = True
        self.fixed_slots = active.nonzero().squeeze(1)

    def _encode(self, sequence: torch.Tensor, padded: torch.Tensor, ent_only: bool) -> torch.Tensor:
        """The transformer layers over (E, L, d) with padded keys (E, L); with `ent_only`, the last
        layer for slot 0 alone -> (E, 1, d)."""
        if not ent_only:
            return self.encoder(sequence, src_key_padding_mask=padded)
        layers = self.encoder.layers
        for layer in layers[:-1]:
            sequence = layer(sequence, src_key_padding_mask=padded)
        if not len(layers):
            return sequence[:, :1]
        return first_slot(layers[-1], sequence, padded, self.ent_attention, self.ent_feed_forward)


class ContextualTripleEncoder(nn.Module):
    """CTE: [h + p_head, r + p_rel, MASK + p_tail] (mask in the head slot for (?, r, t))."""

    def __init__(self, config: ModelConfig, ops: Ops = Ops()):
        super().__init__()
        d, Dropout = config.dim, ops.dropout
        self.relation = nn.Parameter(torch.empty(config.num_relations, d))
        self.norm_rel, self.drop_rel = nn.LayerNorm(d), Dropout(config.emb_dropout)
        self.mask_token = nn.Parameter(torch.empty(1, d))
        self.position = nn.Parameter(torch.empty(3, d))       # p_head, p_rel, p_tail
        self.decoder = _transformer(config, config.num_layer_dec, ops)
        for p in (self.relation, self.mask_token, self.position):
            nn.init.xavier_uniform_(p)

    def forward(self, entity_emb: torch.Tensor, known: torch.Tensor, relation: torch.Tensor,
                predict_head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """entity_emb (N, d); known, relation (B,) long; predict_head (B,) bool.

        Returns context c (B, d) at the masked slot and relation r' (B, d).
        """
        B = known.shape[0]
        e = entity_emb[known]                                                  # (B, d)
        m = self.mask_token.expand(B, -1)                                      # (B, d)
        r = self.drop_rel(self.norm_rel(self.relation[relation]))              # (B, d)
        first = torch.where(predict_head[:, None], m, e)
        last = torch.where(predict_head[:, None], e, m)
        sequence = torch.stack([first, r, last], dim=1) + self.position        # (B, 3, d)
        out = self.decoder(sequence)                                           # (B, 3, d)
        context = torch.where(predict_head[:, None], out[:, 0], out[:, 2])
        return context, out[:, 1]


class TuckER(nn.Module):
    """Relation decoder: score(t) = Drop(BN1(x M)) . e_t, x = Drop(BN0(c)), M = Drop(r' W)."""

    def __init__(self, config: ModelConfig, ops: Ops = Ops()):
        super().__init__()
        d, Dropout = config.dim, ops.dropout
        self.ops = ops
        self.core = nn.Parameter(torch.empty(d, d, d).uniform_(-1.0, 1.0))   # W (d_r, d_e, d_e)
        self.bn0, self.bn1 = nn.BatchNorm1d(d), nn.BatchNorm1d(d)
        self.drop_in = Dropout(config.input_dropout)
        self.drop_core = Dropout(config.core_dropout)
        self.drop_hidden = Dropout(config.hidden_dropout)

    def forward(self, context: torch.Tensor, relation: torch.Tensor, entity_emb: torch.Tensor) -> torch.Tensor:
        """context, relation (B, d); entity_emb (N, d) -> scores (B, N)."""
        x = self.drop_in(self._norm(self.bn0, context))                      # (B, d)
        # Core dropout acts on each query's own d x d matrix, so training with it materialises them.
        y = self.contract(x, relation, materialise=self.training and self.drop_core.p > 0)
        y = self.drop_hidden(self._norm(self.bn1, y))                        # (B, d)
        if not self.training and torch.is_autocast_enabled(y.device.type):
            # Ranking under bf16 autocast: the scores themselves in float32, or bf16's 8-bit
            # mantissa would tie near scores.
            with torch.autocast(y.device.type, enabled=False):
                return y.float() @ entity_emb.float().t()
        return y @ entity_emb.t()                                            # (B, N)

    def contract(self, x: torch.Tensor, relation: torch.Tensor, materialise: bool) -> torch.Tensor:
        """x M with M = Drop(r' W): x, relation (B, d) -> (B, d).

        materialise: build each query's d x d matrix (needed for core dropout); otherwise the
        same result in a cheaper order, (x outer r') flattened times W, with no per-query matrix.
        """
        B, d = x.shape
        if materialise:
            return self.ops.core_contract(x, relation, self.core, self.drop_core.p if self.drop_core.training else 0.0)
        return (relation.unsqueeze(2) * x.unsqueeze(1)).view(B, d * d) @ self.core.view(d * d, d)

    def _norm(self, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.ops.batch_norm is not None:
            return self.ops.batch_norm(bn, x)              # e.g. the statistics of all ranks' batches
        return bn(x)


def cosine_logits(anchor: torch.Tensor, view: torch.Tensor, tau: float) -> torch.Tensor:
    """Cosine similarity of every anchor (B, d) with every view (B, d), over tau -> (B, B)."""
    return F.normalize(anchor, dim=-1) @ F.normalize(view, dim=-1).t() / tau


def info_nce(anchor: torch.Tensor, view: torch.Tensor, valid: torch.Tensor, tau: float,
             host_valid: torch.Tensor | None = None) -> torch.Tensor | None:
    """InfoNCE with cosine similarity / tau; row i's positive is view i, negatives the other
    valid views in the batch. anchor, view (B, d); valid (B,) bool. None when no row is valid.
    `host_valid`: valid's copy on the host, from which the valid rows are chosen without waiting
    for the device (the same rows, so the same loss)."""
    if host_valid is None and not bool(valid.any()):
        return None
    rows = None if host_valid is None else host_valid.nonzero().squeeze(1)
    if rows is not None and not len(rows):
        return None
    logits = cosine_logits(anchor, view, tau).masked_fill(~valid[None, :], float("-inf"))
    targets = torch.arange(anchor.shape[0], device=anchor.device)
    if rows is None:
        return F.cross_entropy(logits[valid], targets[valid])
    if len(rows) == len(host_valid):                                   # every row
        return F.cross_entropy(logits, targets)
    rows = rows.to(anchor.device, non_blocking=True)
    return F.cross_entropy(logits.index_select(0, rows), targets.index_select(0, rows))


def info_nce_terms(anchor: torch.Tensor, view: torch.Tensor, valid: torch.Tensor,
                   tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """info_nce without reading anything back from the device: (loss, present), present 1.0 when
    some row is valid (loss 0.0 otherwise). Invalid rows are weighted out instead of selected, and
    invalid views are masked with a finite -1e4 (exp of which is 0.0 in float32 next to cosines
    over tau), so that no row is ever all -inf. The same value as info_nce to float tolerance."""
    logits = cosine_logits(anchor, view, tau).masked_fill(~valid[None, :], -1e4)
    targets = torch.arange(anchor.shape[0], device=anchor.device)
    weights = valid.float()
    count = weights.sum()
    loss = (F.cross_entropy(logits.float(), targets, reduction="none") * weights).sum() / count.clamp(min=1.0)
    return loss, (count > 0).float()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (E, L, d), mask (E, L) -> (E, d), padded slots ignored (zero when all padded)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class MyGO(nn.Module):
    """The whole model: `forward` scores queries against every entity, `losses` gives a training
    step's KGC and contrastive terms."""

    def __init__(self, config: ModelConfig, visual_table: torch.Tensor, visual_ids: torch.Tensor,
                 visual_mask: torch.Tensor, text_table: torch.Tensor, text_ids: torch.Tensor,
                 text_mask: torch.Tensor, ops: Ops = Ops()):
        super().__init__()
        self.config, self.ops = config, ops
        self.entity_encoder = CrossModalEntityEncoder(config, visual_table, visual_ids, visual_mask,
                                                      text_table, text_ids, text_mask, ops)
        self.triple_encoder = ContextualTripleEncoder(config, ops)
        self.decoder = TuckER(config, ops)
        if config.init == "reference":
            self.reference_init()

    def reference_init(self) -> None:
        """The authors' init_weights: Xavier-uniform on every learned table and vector in their
        shapes, entity (N, 1, d) and relation (R, 1, d) tables (bound sqrt(6 / (d (N + 1)))),
        single vectors (1, 1, d) (bound sqrt(3 / d)) except the mask token, (1, d) there (bound
        sqrt(6 / (d + 1))), the core (d, d, d) (bound sqrt(3) / d) and
        the modality projections' weights; biases, LayerNorm and BatchNorm keep their defaults.
        `init: ours` instead keeps the constructors' scheme: (N, d)-shaped Xavier, uniform(-1, 1)
        core, nn.Linear defaults (docs/model.md, "Initialisation")."""
        d = self.config.dim
        cmee, cte = self.entity_encoder, self.triple_encoder
        with torch.no_grad():
            for table in (cmee.structure, cte.relation):
                nn.init.xavier_uniform_(table.view(-1, 1, d))
            for vectors in (cmee.ent_token, cmee.bias_str, cmee.bias_vis, cmee.bias_txt, cte.position):
                for row in vectors.view(-1, d):
                    nn.init.xavier_uniform_(row.view(1, 1, d))
            nn.init.xavier_uniform_(cte.mask_token.view(1, d))      # (1, d) there: bound sqrt(6 / (d + 1))
            nn.init.xavier_uniform_(self.decoder.core)
            nn.init.xavier_uniform_(cmee.proj_vis.weight)
            nn.init.xavier_uniform_(cmee.proj_txt.weight)

    @classmethod
    def empty(cls, config: ModelConfig, ops: Ops = Ops()) -> "MyGO":
        """A model with zero-filled token buffers of the right shapes, for load_state_dict."""
        N, m, n = config.num_entities, config.max_vis_token, config.max_txt_token
        return cls(config, torch.zeros(config.visual_rows, config.visual_dim), torch.zeros(N, m, dtype=torch.long),
                   torch.zeros(N, m, dtype=torch.bool), torch.zeros(config.text_rows, config.text_dim),
                   torch.zeros(N, n, dtype=torch.long), torch.zeros(N, n, dtype=torch.bool), ops)

    def set_encoder_chunk(self, chunk: int) -> None:
        """Encode entities `chunk` at a time from now on (0: one pass); saved with the config."""
        self.config = dataclasses.replace(self.config, encoder_chunk=chunk)
        self.entity_encoder.config = self.config

    def compile_parts(self, **options) -> None:
        """torch.compile the entity encoder, the triple encoder and TuckER in place (parameters
        and state-dict keys unchanged). Compiling takes a while on the first steps and on each
        new input shape, and on CPU it is slower than the eager model (docs/benchmarks.md).
        Inductor draws its own dropout masks, so a compiled run matches an eager one to float
        tolerance only without dropout."""
        for part in (self.entity_encoder, self.triple_encoder, self.decoder):
            part.compile(**options)

    def entity_embeddings(self) -> torch.Tensor:
        """All N entity embeddings (N, d): the CMEE output at [ENT]. In training, ops.all_entities
        may share the pass out (e.g. each rank encodes its share and the shares are gathered)."""
        N, device = self.config.num_entities, self.entity_encoder.structure.device
        if self.training and self.ops.all_entities is not None:
            return self.ops.all_entities(self.encode, N, device)
        return self.encode(None)

    def encode(self, entities: torch.Tensor | None) -> torch.Tensor:
        """CMEE [ENT] outputs (E, d) of `entities` (E,) (None: all N, in order), in chunks of
        `encoder_chunk` when set.

        Chunked, activation memory is bounded by one chunk: each chunk keeps only its (chunk, d)
        output and, when gradients are needed, is recomputed in backward (activation
        checkpointing, with the chunk's dropout RNG state restored, so the recomputation draws the
        same masks). Each entity's sequence is encoded on its own, so the outputs are those of one
        pass; with dropout, masks are drawn chunk by chunk instead of for all entities at once (the
        same distribution, another stream).
        """
        chunk = self.config.encoder_chunk
        E = self.config.num_entities if entities is None else len(entities)
        if not chunk or E <= chunk:
            return self.entity_encoder(entities, ent_only=True)[0][:, 0]
        if entities is None:
            entities = torch.arange(E, device=self.entity_encoder.structure.device)
        parts = []
        for part in entities.split(chunk):
            if torch.is_grad_enabled():
                parts.append(checkpoint(self._encode_ent, part, use_reentrant=False, preserve_rng_state=True))
            else:
                parts.append(self._encode_ent(part))
        return torch.cat(parts)

    def _encode_ent(self, entities: torch.Tensor) -> torch.Tensor:
        if self.ops.before_chunk is not None:
            self.ops.before_chunk(entities.device)     # e.g. give the previous chunk's freed heap back
        return self.entity_encoder(entities, ent_only=True)[0][:, 0]

    def score(self, entity_emb: torch.Tensor, known: torch.Tensor, relation: torch.Tensor,
              predict_head: torch.Tensor) -> torch.Tensor:
        """Scores (B, N) of every entity as the missing head/tail of each query."""
        context, rel = self.triple_encoder(entity_emb, known, relation, predict_head)
        return self.decoder(context, rel, entity_emb)

    def contrastive_loss(self, entity_emb: torch.Tensor, sample: torch.Tensor, tau: float) -> torch.Tensor:
        """Fine-grained contrastive loss (paper 4.3) over the sampled entities `sample` (B_c,).

        The second, independently dropped-out pass encodes only the B_c sampled entities: each
        entity's sequence is encoded on its own, so this has the same distribution as slicing a
        full N-entity pass, at B_c / N of the cost.
        """
        out, mask = self.entity_encoder(sample)                            # (B_c, L, d)
        host_mask = None          # a sample drawn on the host for a model on the device: decide there
        if mask.device.type != "cpu" and sample.device.type == "cpu":
            host_mask = self.entity_encoder.host_slot_mask(sample)
        return self.fine_grained_loss(entity_emb[sample.to(entity_emb.device, non_blocking=True)], out, mask, tau,
                                      host_mask)

    def fine_grained_loss(self, anchor: torch.Tensor, out: torch.Tensor, mask: torch.Tensor,
                          tau: float, host_mask: torch.Tensor | None = None) -> torch.Tensor:
        """InfoNCE of the anchors (B_c, d) against four views of a second encoder pass
        out (B_c, L, d) with its mask (B_c, L): [ENT], all slots, visual slots, text slots.
        `host_mask`: the mask's copy on the host, which the views' valid rows are read from."""
        m = self.config.max_vis_token
        vis_mask, txt_mask = mask[:, 2:2 + m], mask[:, 2 + m:]
        views = [
            (out[:, 0], torch.ones_like(mask[:, 0])),                       # [ENT]
            (masked_mean(out, mask), torch.ones_like(mask[:, 0])),          # all slots
            (masked_mean(out[:, 2:2 + m], vis_mask), vis_mask.any(1)),      # visual slots
            (masked_mean(out[:, 2 + m:], txt_mask), txt_mask.any(1)),       # text slots
        ]
        if self.entity_encoder.fixed_slots is not None:         # nothing read back (mygo.fast.graphs)
            losses, present = zip(*(info_nce_terms(anchor, view, valid, tau) for view, valid in views))
            present = torch.stack(present)
            return (torch.stack(losses) * present).sum() / present.sum()
        if host_mask is None:
            hosts = [None] * len(views)
        else:
            every = torch.ones(len(host_mask), dtype=torch.bool)
            hosts = [every, every, host_mask[:, 2:2 + m].any(1), host_mask[:, 2 + m:].any(1)]
        losses = [loss for (view, valid), host in zip(views, hosts)
                  if (loss := info_nce(anchor, view, valid, tau, host)) is not None]
        return torch.stack(losses).mean()

    def forward(self, known: torch.Tensor, relation: torch.Tensor, predict_head: torch.Tensor) -> torch.Tensor:
        """Scores (B, N) of every entity as the missing head (predict_head) or tail of each query."""
        return self.score(self.entity_embeddings(), known, relation, predict_head)

    def losses(self, known: torch.Tensor, relation: torch.Tensor, predict_head: torch.Tensor, target: torch.Tensor,
               *, mu: float = 0.0, tau: float = 0.5, contrastive_size: int = 512, label_smoothing: float = 0.0,
               generator: torch.Generator | None = None, kgc_weight: float = 1.0,
               con_weight: float = 1.0, sample: torch.Tensor | None = None) -> Losses:
        """The training loss of a batch of queries with their targets (B,):
        kgc_weight * L_kgc + con_weight * mu * L_con (the weights let the ranks of a distributed
        step hold shares that sum to the single-process loss). The contrastive loss's entities are
        drawn from `generator` (contrastive_sample), or given as `sample` (on the host or the model's device)."""
        entity_emb = self.entity_embeddings()
        scores = self.score(entity_emb, known, relation, predict_head)
        kgc = kgc_weight * F.cross_entropy(scores.float(), target, label_smoothing=label_smoothing)
        con = torch.zeros((), device=kgc.device)
        if mu > 0:
            if sample is None:
                sample = contrastive_sample(self.config.num_entities, contrastive_size, generator)
            con = con_weight * mu * self.contrastive_loss(entity_emb, sample, tau)       # on the host or device
        return Losses(kgc, con)


def contrastive_sample(num_entities: int, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """A training step's entities for the contrastive loss: min(size, N) distinct ones, drawn on
    the CPU from `generator` (so the same on every device)."""
    return torch.randperm(num_entities, generator=generator, device="cpu")[:min(size, num_entities)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ModelConfig", "Ops", "Losses", "MyGO", "CrossModalEntityEncoder", "ContextualTripleEncoder", "TuckER",
           "Tokens", "contract", "project_tokens", "project_table_rows", "assemble", "feed_forward", "first_slot",
           "slot0_attention", "slot0_attention_folded", "info_nce", "info_nce_terms", "masked_mean", "contrastive_sample",
           "count_parameters"]
