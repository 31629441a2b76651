"""The systems work, kept apart from the model's mathematics (mygo.model).

`ops(kernels)` is the one switch: it returns the mygo.model.Ops a model is built from.

    fast              the default: dropout masks computed from a counter in C (mygo.fast.counter:
                      masked in place, recomputed in backward) and TuckER's core dropout fused into its
                      contraction (mygo.fast.dropout), batch-first self-attention (mygo.fast.attention), the last
                      layer's [ENT] attention with the query folded into the key and value
                      projections (mygo.model.slot0_attention_folded) and its own backward
                      (mygo.fast.attention.slot0_attention_fused), the token tables projected
                      row by row before gathering (mygo.model.project_table_rows), the entity
                      sequence assembled in one pass (mygo.fast.tokens), the C heap trimmed
                      before each encoder chunk on CPU (mygo.memory)
    drawn-masks       fast, but the dropout masks drawn from torch's generator and kept for backward
                      (mygo.fast.dropout.keep_mask), the folded attention through autograd and the
                      tokens projected after gathering: the counter masks' "before"
    kv-attention      drawn-masks, and the [ENT] attention through every slot's keys and values, in
                      torch's order of operations (the folded attention's "before")
    plain             torch's own operations (what mygo.model builds by default)
    torch-dropout     fast, but torch's dropout (the cheap masks' "before")
    torch-attention   fast, but nn.MultiheadAttention's self-attention (the batch-first "before")

Each fast operation computes the same function as the plain one (tests compare them to float
tolerance); the dropout masks come from another random stream, so a run with dropout is
reproducible per switch, not across switches; the folded attention rounds differently from the
keys-and-values order (equal to float tolerance). `ops()` without kernels builds `default_kernels()`,
as the stages do, in both CPU modes (the pinned mode differs in its environment only: mygo.reproducible).
With `distributed=True` (under torchrun) the
all-entity pass is sharded across ranks and TuckER's batch norms use the whole batch's statistics
(mygo.distributed). Evaluation needs none of this: in eval mode every variant computes the same.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mygo import distributed
from mygo.fast.attention import BatchFirstEncoderLayer, folded_feed_forward, slot0_attention_fused
from mygo.fast.dropout import CounterDropout, Dropout, core_dropout_contract, counter_core_dropout_contract
from mygo.fast.tokens import assemble_in_place
from mygo.memory import release_free_memory
from mygo.model import (Ops, contract, feed_forward, project_table_rows, project_tokens, slot0_attention,
                        slot0_attention_folded)

KERNELS = ("fast", "drawn-masks", "kv-attention", "plain", "torch-dropout", "torch-attention")


def _trim_heap(device: torch.device) -> None:
    if device.type == "cpu":
        release_free_memory()


def _sharded_entities(encode, n: int, device: torch.device) -> torch.Tensor:
    start, end = distributed.shard(n)
    return distributed.gather_rows(encode(torch.arange(start, end, device=device)), n)


def default_kernels() -> str:
    """The kernels the stages build their models with, in every mode and on every device: `fast`.
    The others are the benchmarks' befores (bench/harness.py)."""
    return "fast"


def ops(kernels: str | None = None, *, distributed_step: bool = False) -> Ops:
    """The operations for `kernels` (one of KERNELS; default: `default_kernels()`); with
    `distributed_step`, across ranks."""
    kernels = default_kernels() if kernels is None else kernels
    if kernels not in KERNELS:
        raise ValueError(f"kernels = {kernels!r}: expected one of {', '.join(KERNELS)}")
    chosen = Ops()
    if kernels != "plain":
        chosen = Ops(dropout=CounterDropout, encoder_layer=BatchFirstEncoderLayer,
                     core_contract=counter_core_dropout_contract, before_chunk=_trim_heap,
                     ent_attention=slot0_attention_fused, tokens=project_table_rows,
                     assemble=assemble_in_place, ent_feed_forward=folded_feed_forward)
    if kernels in ("drawn-masks", "kv-attention"):
        chosen = dataclasses.replace(chosen, dropout=Dropout, core_contract=core_dropout_contract,
                                     ent_attention=slot0_attention_folded, tokens=project_tokens,
                                     ent_feed_forward=feed_forward)
    if kernels == "kv-attention":
        chosen = dataclasses.replace(chosen, ent_attention=slot0_attention)
    if kernels == "torch-dropout":
        chosen = dataclasses.replace(chosen, dropout=nn.Dropout, core_contract=contract)
    if kernels == "torch-attention":
        chosen = dataclasses.replace(chosen, encoder_layer=nn.TransformerEncoderLayer)
    if distributed_step:
        chosen = dataclasses.replace(chosen, batch_norm=distributed.sync_batch_norm, all_entities=_sharded_entities)
    return chosen


__all__ = ["KERNELS", "ops", "default_kernels"]
