"""Benchmark harness: seconds per training step / epoch, full filtered evaluation, peak memory and
where a step's forward time goes, for a dataset and a model config.

    python bench/harness.py --dataset ../shared/data/DB15K --preset db15k
    python bench/harness.py --synthetic 4000 --preset db15k --out bench/results/synthetic_4k

Each scenario runs in its own process (so its peak memory is its own). The step scenarios time
`--steps` training steps after a warm-up step and give an epoch as the median step time times
the steps per epoch (a DB15K epoch is long on a CPU: docs/benchmarks.md); the `epoch` scenario (not run by
default) times `--epochs` whole epochs after a warm-up epoch, which checks that estimate. Tokens are synthetic with every slot filled (m visual ids
into an 8192 x 32 codebook, n text ids into a 30522 x 384 table), the shape of the paper's setting.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mygo import reproducible  # noqa: E402
from mygo.evaluation import compute_ranks  # noqa: E402
from mygo.memory import reuse_memory_if  # noqa: E402
from mygo.graph import load_raw  # noqa: E402
from mygo.io import atomic_path  # noqa: E402
from mygo import fast  # noqa: E402
from mygo.fast import graphs  # noqa: E402
from mygo.model import ModelConfig, MyGO, assemble, project_tokens, slot0_attention_folded  # noqa: E402
from mygo.training import TrainParams, adam, train_step, training_queries  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
import version  # noqa: E402

reproducible.flush_denormals()    # as every stage does (MYGO_KEEP_DENORMALS=1 for the before)

MATMULS = {torch.ops.aten.mm.default: "mm", torch.ops.aten.addmm.default: "addmm",
           torch.ops.aten.bmm.default: "bmm", torch.ops.aten.baddbmm.default: "baddbmm"}


class RecordMatmuls(TorchDispatchMode):
    """Records every dense matrix product a step runs (forward and backward): the op and its
    tensor arguments' shapes, strides and dtypes, and the scalars."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            self.calls.append((func, [(tuple(a.shape), a.stride(), a.dtype, a.device) if isinstance(a, torch.Tensor)
                                      else a for a in args], kwargs))
        return func(*args, **kwargs)


def matmul_flop(func, shapes) -> float:
    """2 M K N per product (batched: times the batch); shapes are the op's tensor arguments'."""
    name = MATMULS[func]
    a, b = shapes[-2:] if name in ("addmm", "baddbmm") else shapes[:2]
    batch = a[0] if name in ("bmm", "baddbmm") else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def time_matmuls(calls, device: torch.device) -> tuple[float, float]:
    """Seconds and FLOP of the recorded products, each run alone on random inputs of the same
    shapes and strides (one untimed run of each first)."""
    def inputs(args):
        out = []
        for a in args:
            if isinstance(a, tuple):
                shape, stride, dtype, dev = a
                out.append(torch.empty_strided(shape, stride, dtype=dtype, device=dev).normal_())
            else:
                out.append(a)
        return out

    total, flop = 0.0, 0.0
    for func, args, kwargs in calls:
        tensors = inputs(args)
        func(*tensors, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        func(*tensors, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total += time.perf_counter() - started
        flop += matmul_flop(func, [a[0] for a in args if isinstance(a, tuple)])
    return total, flop

PRESETS = {  # SPEC, "Optimisation": the authors' run-script settings
    "db15k": dict(model=dict(dim=256, hidden_dim=1024, num_head=2, num_layer_dec=1, emb_dropout=0.6,
                             vis_dropout=0.3, txt_dropout=0.1), m=8, n=4, lr=1e-3, mu=0.01),
    "mkgw": dict(model=dict(dim=256, hidden_dim=1024, num_head=4, num_layer_dec=2, emb_dropout=0.9,
                            vis_dropout=0.4, txt_dropout=0.1), m=8, n=8, lr=5e-4, mu=0.001),
}
SCENARIOS = {
    "step": "training step, contrastive loss on (mu > 0)",
    "step_no_contrastive": "training step, mu = 0",
    "step_torch_dropout": "training step with torch's own dropout (bernoulli_ masks, unfused core dropout): the before",
    "step_torch_attention": "training step with nn.MultiheadAttention's sequence-first self-attention: the before",
    "step_denormals": "training step with denormals kept (MYGO_KEEP_DENORMALS=1): the before of flushing them",
    "step_system_allocator": "training step with freed memory returned to the system (train.reuse_memory: false): the before",
    "step_all_slots": "training step with the all-entity pass's last layer computed for every slot: the before of [ENT] only",
    "step_unfolded": "training step with the FFN's ReLU, dropout and scales as separate passes: the before of folding",
    "step_drawn_masks": "training step with dropout masks drawn from torch's generator and kept for backward "
                        "(kernels drawn-masks): the before of counter masks",
    "step_kv_attention": "training step with the kernels kv-attention: drawn masks, and the last "
                         "layer's [ENT] attention through every slot's keys and values (the before of folding "
                         "the query into them, against step_drawn_masks)",
    "step_autograd_attention": "training step with the folded [ENT] attention's backward through autograd: the "
                               "before of its own backward (mygo.fast.attention.slot0_attention_fused)",
    "step_per_op_adam": "training step with torch's per-operation Adam update (the pinned mode's): the before of "
                        "fused Adam",
    "step_gathered_tokens": "training step with the visual and text tokens gathered, then projected and normed "
                            "(mygo.model.project_tokens): the before of projecting the tables' rows",
    "step_cat_sequence": "training step with the visual and text tokens gathered and dropped out on their own, "
                         "the entity sequence concatenated, then its slot bias added, and the [ENT] residual's "
                         "gradient zero-filled through autograd: the before of assembling in one pass "
                         "(mygo.fast.tokens) and of the residual in the attention's backward",
    "step_before": "training step as the reference code: contrastive pass over all N, padded slots kept",
    "step_no_visual": "training step, no images (all visual slots padded), padded slots skipped",
    "step_no_visual_before": "training step, no images, padded slots kept",
    "step_amp": "training step under bf16 autocast",
    "step_compiled": "training step, model parts under torch.compile (compile time in the warm-up step)",
    "step_fp32": "training step in float32 without TF32 (on CUDA; `step` uses bf16 autocast there)",
    "step_tf32": "training step in float32 with TF32 matmuls (CUDA)",
    "step_max_autotune": "training step, torch.compile(mode='max-autotune') (CUDA; CUDA graphs where they apply)",
    "step_device_decisions": "training step with the slots to encode and the contrastive views' valid rows "
                             "decided by reading the masks back from the device (a wait for the device each "
                             "time on a GPU; the same as `step` on a CPU): the before of deciding from host copies",
    "step_graphed": "training step replayed as one captured CUDA graph (train.cuda_graph; mygo.fast.graphs): "
                    "the after of `step`'s kernel-by-kernel launches",
    "eval": "full filtered test evaluation, both directions, batched (after one untimed evaluation); its parts and "
            "matrix FLOP",
    "eval_before": "the evaluation as the previous version: known answers looked up on the host per batch and copied "
                   "over, ranks copied back per batch (the before of `eval`)",
    "eval_amp": "full filtered test evaluation with the encoders under bf16 autocast (evaluate.amp; scores float32)",
    "eval_loop": "evaluation as the reference code: one query at a time (timed on 500 queries, scaled)",
    "breakdown": "forward time of each part of a training step",
    "epoch": "whole training epochs (every batch of the shuffled train split)",
    "floor": "training step against its floor: the step's own matrix products (forward and backward) timed alone",
    "peak": "the machine's peak matrix rate: a large square product in fp32, TF32 (CUDA) and bf16",
    "profile": "one training step under torch.profiler: self time of each operator, matrix products apart",
    "resume_save": "the resume state after a step (model, Adam, best weights) saved at an epoch's end: written "
                   "while training waits (the before) against a snapshot taken and written in the background",
}
# Not by default: a DB15K epoch is long on CPU, and bf16 autocast is what `step` already does on
# CUDA while on a CPU without bf16 units it is many times slower than float32.
DEFAULT_SCENARIOS = [name for name in SCENARIOS
                     if name not in ("epoch", "step_amp", "step_fp32", "step_tf32", "step_max_autotune", "peak", "profile",
                                     "eval_amp", "step_graphed", "resume_save", "step_device_decisions")]
CUDA_SCENARIOS = ("peak,step,step_graphed,step_device_decisions,step_fp32,step_tf32,step_no_visual,floor,eval,eval_before,breakdown,"
                  "resume_save,step_compiled,step_max_autotune")


def load_graph(args):
    if args.dataset:
        graph = load_raw(args.dataset)
        return graph.num_entities, graph.num_relations, graph.splits, Path(args.dataset).name
    rng = np.random.default_rng(0)
    n, r = args.synthetic, max(2, args.synthetic // 50)
    triples = np.stack([rng.integers(0, n, 6 * n), rng.integers(0, r, 6 * n), rng.integers(0, n, 6 * n)], 1)
    return n, r, {"train": triples[: 5 * n], "valid": triples[5 * n: 5 * n + n // 2],
                  "test": triples[5 * n + n // 2:]}, f"synthetic-{n}"


def build(num_entities, num_relations, preset, seed=0, visual=True, kernels=None, distributed_step=False,
          model_class=MyGO):
    g = torch.Generator().manual_seed(seed)
    m, n = preset["m"], preset["n"]
    visual_rows, text_rows = 8193, 30523
    config = ModelConfig(num_entities=num_entities, num_relations=num_relations, max_vis_token=m, max_txt_token=n,
                         visual_rows=visual_rows, visual_dim=32, text_rows=text_rows, text_dim=384, **preset["model"])
    visual_mask = torch.full((num_entities, m), visual)
    torch.manual_seed(seed)
    return model_class(config, torch.randn(visual_rows, 32, generator=g),
                       torch.randint(1, visual_rows, (num_entities, m), generator=g), visual_mask,
                       torch.randn(text_rows, 384, generator=g),
                       torch.randint(1, text_rows, (num_entities, n), generator=g),
                       torch.ones(num_entities, n, dtype=torch.bool),
                       fast.ops(kernels, distributed_step=distributed_step))


class ContrastiveOverAllEntities(MyGO):
    """The reference code's contrastive loss: a second pass over all N entities, then the sample
    is sliced (MyGO encodes the sample only)."""

    def contrastive_loss(self, entity_emb, sample, tau):
        out, mask = self.entity_encoder()
        return self.fine_grained_loss(entity_emb[sample], out[sample], mask[sample], tau)


def copy_rate(device: torch.device, mib: int, repeats: int = 10) -> float:
    """Bytes/s a copy of `mib` MiB moves (read and written: twice its size): the best of `repeats`
    timed copies (each synchronised on CUDA) after one untimed one, as peak_rate takes the best."""
    a = torch.ones(mib * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        b.copy_(a)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2.0 * a.numel() * a.element_size() / best


def peak_rate(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """FLOP/s of a size x size x size product on random data: the best of `repeats` timed products
    (each synchronised on CUDA) after three untimed ones; the best, since a peak is what the
    machine can do, and a shared or virtual machine's other work only ever slows one down."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size ** 3 / best


class DictAnswersBefore:
    """The previous version's known answers, the before of mygo.evaluation.KnownAnswers: a Python
    dictionary of lists, and a (B, N) mask built query by query."""

    def __init__(self, triples):
        self.answers = {}
        for split in triples:
            for h, r, t in split.tolist():
                self.answers.setdefault((h, r, 0), []).append(t)
                self.answers.setdefault((t, r, 1), []).append(h)

    def mask(self, known, relation, predict_head, num_entities):
        rows, cols = [], []
        for i, key in enumerate(zip(known.tolist(), relation.tolist(), predict_head.astype(int).tolist())):
            answers = self.answers.get(key, ())
            rows.extend([i] * len(answers))
            cols.extend(answers)
        out = torch.zeros(len(known), num_entities, dtype=torch.bool)
        out[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = True
        return out


class HostAnswersBefore:
    """The previous version's known-answer lookup, the before of KnownAnswers.pairs on the device:
    the same sorted index searched with numpy on the host for each batch, the pairs copied to the
    device."""

    def __init__(self, answers):
        self.keys, self.offsets, self.answers = answers.keys, answers.offsets, answers.answers

    def pairs(self, known, relation, predict_head, device):
        keys = (known.astype(np.int64) << 32) | (relation.astype(np.int64) << 1) | predict_head.astype(np.int64)
        at = np.searchsorted(self.keys, keys)
        hit = at < len(self.keys)
        hit[hit] = self.keys[at[hit]] == keys[hit]
        at = np.where(hit, at, 0)
        starts = self.offsets[at]
        counts = np.where(hit, self.offsets[at + hit] - starts, 0)
        rows = np.repeat(np.arange(len(keys)), counts)
        first = np.cumsum(counts) - counts
        cols = self.answers[np.repeat(starts - first, counts) + np.arange(counts.sum())]
        return torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)


@torch.no_grad()
def ranks_before(model, triples, filters, batch_size, device) -> dict:
    """mygo.evaluation.compute_ranks as the previous version ran it: per batch, the queries copied
    over, the known answers looked up on the host (HostAnswersBefore) and copied over, and the ranks
    copied back (each copy waits for the device); with the ranking's counts of that version."""
    from mygo.evaluation import KnownAnswers, queries_both_directions
    model.eval()
    host = HostAnswersBefore(KnownAnswers(filters))
    q = queries_both_directions(triples)
    entity_emb = model.entity_embeddings()
    out = []
    for start in range(0, len(q["known"]), batch_size):
        sl = slice(start, start + batch_size)
        known, relation, head, target = (torch.as_tensor(q[k][sl], device=device)
                                         for k in ("known", "relation", "predict_head", "target"))
        scores = model.score(entity_emb, known, relation, head).float()
        rows, cols = host.pairs(q["known"][sl], q["relation"][sl], q["predict_head"][sl], device)
        out.append(sparse_rank_before(scores, target, rows, cols)["realistic"].cpu())
    return {"realistic": torch.cat(out).numpy()}


def sparse_rank_before(scores, targets, rows, cols) -> dict:
    """rank_filtered as the previous version counted the known answers: boolean selections and
    bincount (each waits for the device to size its output)."""
    B = scores.shape[0]
    target_score = scores[torch.arange(B, device=scores.device), targets].unsqueeze(1)
    greater = (scores > target_score).sum(1, dtype=torch.int32)
    greater_equal = (scores >= target_score).sum(1, dtype=torch.int32)
    other = cols != targets[rows]
    rows, cols = rows[other], cols[other]
    known_score, bar = scores[rows, cols], target_score[rows, 0]
    greater -= torch.bincount(rows[known_score > bar], minlength=B)
    greater_equal -= torch.bincount(rows[known_score >= bar], minlength=B)
    optimistic, pessimistic = (1 + greater).double(), greater_equal.double()
    return {"optimistic": optimistic, "pessimistic": pessimistic, "realistic": (optimistic + pessimistic) / 2}


def masked_rank_before(scores, targets, known) -> dict:
    """The filtered ranking of the previous version, the before of mygo.evaluation.rank_filtered:
    a (B, N) keep mask, then the masked comparisons counted."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_score = scores[rows, targets].unsqueeze(1)
    keep = ~known
    keep[rows, targets] = True
    greater = ((scores > target_score) & keep).sum(1)
    greater_equal = ((scores >= target_score) & keep).sum(1)
    return {"optimistic": (1 + greater).double(), "pessimistic": greater_equal.double()}


def eval_parts(model, splits, batch_size: int, device: torch.device) -> dict:
    """The evaluation's work part by part, each timed on its own (the same batches as
    compute_ranks), with the matrix FLOP of the two model parts and their products timed alone;
    and the befores of the sparse filter (DictAnswersBefore, masked_rank_before)."""
    from mygo.evaluation import KnownAnswers, queries_both_directions, rank_filtered

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.eval()
    parts, flop, floor = {}, {}, {}
    with torch.no_grad():
        started = time.perf_counter()
        filters = KnownAnswers(list(splits.values()))
        parts["known-answer index (sorted arrays)"] = time.perf_counter() - started
        started = time.perf_counter()
        filters_before = DictAnswersBefore(list(splits.values()))
        index_before = time.perf_counter() - started
        host_before, host_lookup = HostAnswersBefore(filters), 0.0
        sync()
        started = time.perf_counter()
        emb = model.entity_embeddings()
        sync()
        parts["entity encoder (all N)"] = time.perf_counter() - started
        with RecordMatmuls() as recorder:
            model.entity_embeddings()
        floor["entity encoder (all N)"], flop["entity encoder (all N)"] = time_matmuls(recorder.calls, device)
        q = queries_both_directions(splits["test"])
        scoring, answers, ranking, masks_before, ranking_before, calls = 0.0, 0.0, 0.0, 0.0, 0.0, []
        for start in range(0, len(q["known"]), batch_size):
            sl = slice(start, start + batch_size)
            known, relation, head, target = (torch.as_tensor(q[k][sl], device=device)
                                              for k in ("known", "relation", "predict_head", "target"))
            sync()
            t0 = time.perf_counter()
            scores = model.score(emb, known, relation, head).float()
            sync()
            t1 = time.perf_counter()
            rows, cols = filters.pairs(known, relation, head, device)
            sync()
            t2 = time.perf_counter()
            host_rows, host_cols = host_before.pairs(q["known"][sl], q["relation"][sl], q["predict_head"][sl], device)
            sync()
            host_lookup += time.perf_counter() - t2
            assert torch.equal(host_rows, rows) and torch.equal(host_cols, cols), "host and device pairs differ"
            t2 = time.perf_counter()
            after = rank_filtered(scores, target, rows, cols)
            sync()
            t3 = time.perf_counter()
            mask = filters_before.mask(q["known"][sl], q["relation"][sl], q["predict_head"][sl], emb.shape[0]).to(device)
            sync()
            t4 = time.perf_counter()
            old = masked_rank_before(scores, target, mask)
            sync()
            t5 = time.perf_counter()
            assert all(torch.equal(old[k], after[k]) for k in old), "sparse and masked ranks differ"
            scoring, answers, ranking = scoring + t1 - t0, answers + t2 - t1, ranking + t3 - t2
            masks_before, ranking_before = masks_before + t4 - t3, ranking_before + t5 - t4
            if start == 0:
                with RecordMatmuls() as recorder:
                    model.score(emb, known, relation, head)
                calls = recorder.calls
        batches = -(-len(q["known"]) // batch_size)
        one_floor, one_flop = time_matmuls(calls, device)           # the first (full) batch, times the batches
        key = "triple encoder + TuckER scoring (all queries)"
        parts[key], floor[key], flop[key] = scoring, one_floor * batches, one_flop * batches
        parts["known answers per batch (row, entity pairs, looked up on the device)"] = answers
        parts["tie-aware ranking (all counted, known answers taken off)"] = ranking
    return {"eval_parts_seconds": parts, "eval_parts_gflop": {k: v / 1e9 for k, v in flop.items()},
            "eval_parts_floor_seconds": floor, "eval_queries": len(q["known"]),
            "eval_before_seconds": {"known answers per batch looked up on the host and copied over": host_lookup,
                                    "known-answer index as a Python dictionary": index_before,
                                    "(B, N) masks built per query in Python": masks_before,
                                    "masked tie-aware ranking on the (B, N) masks": ranking_before}}


def scenario_model(name: str, num_entities: int, num_relations: int, preset: dict) -> MyGO:
    """The model a scenario times (on the CPU): `build`'s, with the scenario's before, if it is one
    of the model's (step_all_slots, step_autograd_attention, ...), in place of the after."""
    kernels = {"step_torch_dropout": "torch-dropout", "step_torch_attention": "torch-attention",
               "step_kv_attention": "kv-attention", "step_drawn_masks": "drawn-masks"}.get(name)  # None: fast.ops()
    model = build(num_entities, num_relations, preset, visual="no_visual" not in name, kernels=kernels,
                  model_class=ContrastiveOverAllEntities if name == "step_before" else MyGO)
    encoder = model.entity_encoder
    if name.endswith("_before"):
        encoder.skip_padded_slots = False
    if name == "step_all_slots":
        full = type(encoder).forward
        encoder.forward = lambda entities=None, ent_only=False: full(encoder, entities, False)
    if name == "step_autograd_attention":
        encoder.ent_attention = slot0_attention_folded
    if name == "step_gathered_tokens":
        encoder.tokens = project_tokens
    if name == "step_device_decisions":
        encoder.host_slot_mask = lambda entities=None: None
    if name == "step_cat_sequence":
        def without_residual(layer, x, padded, attention=encoder.ent_attention):
            out = attention(layer, x, padded)
            return out[0] if isinstance(out, tuple) else out
        encoder.assemble, encoder.ent_attention = assemble, without_residual
    if name == "step_unfolded":
        from mygo.fast.attention import BatchFirstEncoderLayer
        BatchFirstEncoderLayer.folds_dropout = lambda self, x: False
    return model


def run_scenario(name, args) -> dict:
    torch.set_num_threads(args.threads)
    if name == "peak":
        device = torch.device(args.device)
        size = args.peak_size or (8192 if device.type == "cuda" else 2048)
        rates = {}
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            rates["fp32"] = peak_rate(device, torch.float32, size)
            torch.backends.cuda.matmul.allow_tf32 = True
            rates["tf32"] = peak_rate(device, torch.float32, size)
            torch.backends.cuda.matmul.allow_tf32 = False
            rates["gpu"], rates["cuda"] = torch.cuda.get_device_name(device), torch.version.cuda
        else:
            rates["fp32"] = peak_rate(device, torch.float32, size)
        rates["bf16"] = peak_rate(device, torch.bfloat16, size)
        mib = args.copy_mib or (2048 if device.type == "cuda" else 256)
        return {"scenario": name, "what": SCENARIOS[name], "peak_size": size, "copy_mib": mib,
                "copy_gb_per_s": copy_rate(device, mib) / 1e9,
                "peak_gflops": {k: v / 1e9 for k, v in rates.items() if isinstance(v, float)},
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                **({"gpu": rates["gpu"], "cuda": rates["cuda"],
                    "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20} if "gpu" in rates else {})}
    if args.memory_limit_gb:
        limit = int(args.memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    preset = dict(PRESETS[args.preset])
    preset["m"] = args.max_vis_token or preset["m"]
    preset["n"] = args.max_txt_token or preset["n"]
    preset["model"] = {**preset["model"], "encoder_chunk": args.encoder_chunk}
    N, R, splits, label = load_graph(args)
    device = torch.device(args.device)
    model = scenario_model(name, N, R, preset).to(device)
    result = {"scenario": name, "what": SCENARIOS[name]}
    if reuse_memory_if(not (args.system_allocator or args.memory_budget_gb or name == "step_system_allocator"),
                       device, args.encoder_chunk):
        result["reuse_memory"] = True                        # train.reuse_memory, as training does
    if args.memory_budget_gb and not args.encoder_chunk:
        from mygo.memory import choose_encoder_chunk, step_bytes
        chunk = choose_encoder_chunk(model, args.memory_budget_gb, args.batch_size, 512, preset["mu"])
        model.set_encoder_chunk(chunk)
        estimate = step_bytes(model, args.batch_size, 512, preset["mu"], chunk)
        result.update(memory_budget_gb=args.memory_budget_gb, encoder_chunk=chunk,
                      estimated_peak_mib=sum(estimate.values()) / 2**20)
    steps_per_epoch = math.ceil(len(splits["train"]) / args.batch_size)
    if name.startswith("step") or name in ("epoch", "floor", "profile"):
        config = TrainParams(device=args.device, batch_size=args.batch_size, lr=preset["lr"],
                             mu=0.0 if name == "step_no_contrastive" else preset["mu"])
        use_amp = (device.type == "cuda" and name not in ("step_fp32", "step_tf32")) or name == "step_amp"
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "step_tf32"
        if name == "step_max_autotune":
            model.compile_parts(mode="max-autotune")
        if name == "step_compiled":
            model.compile_parts()
        optimizer = (torch.optim.Adam(model.parameters(), lr=config.lr) if name == "step_per_op_adam"
                     else adam(model, config.lr))
        g = torch.Generator().manual_seed(0)
        graphed = None
        if name == "step_graphed":
            why = graphs.unsupported(model, device)
            if why:
                raise SystemExit(f"step_graphed: {why}")
            graphed = graphs.GraphedStep(model, optimizer, config, device, use_amp)
            args.warmup = max(args.warmup, graphs.WARMUP_STEPS + 1)     # the eager warm-ups and the capture

        def step(b: int, queries) -> None:
            k, r, t, h = queries
            sl = slice(b * config.batch_size, (b + 1) * config.batch_size)
            if graphed is not None:
                graphed(tuple(x[sl].to(device) for x in (k, r, h, t)), g)
            else:
                train_step(model, optimizer, config, (k[sl], r[sl], h[sl], t[sl]), g, device, use_amp=use_amp)
            if device.type == "cuda":
                torch.cuda.synchronize()

        if name == "epoch":      # one warm-up epoch, then `--epochs` timed whole epochs
            times = []
            for _ in range(args.epochs + 1):
                started = time.perf_counter()
                queries = training_queries(splits["train"], "random", g)     # reshuffled, as in training
                for b in range(steps_per_epoch):
                    step(b, queries)
                times.append(time.perf_counter() - started)
            result.update(warmup_seconds=times[0], epoch_seconds_each=times[1:],
                          epoch_seconds=statistics.median(times[1:]), steps_per_epoch=steps_per_epoch,
                          median_step_seconds=statistics.median(times[1:]) / steps_per_epoch)
        elif name == "profile":
            # `--warmup` steps, then one step under the profiler: each operator's self time.
            queries = training_queries(splits["train"], "random", g)
            for b in range(args.warmup):
                step(b % steps_per_epoch, queries)
            activities = [torch.profiler.ProfilerActivity.CPU] + (
                [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
            started = time.perf_counter()
            with torch.profiler.profile(activities=activities) as prof:
                step(args.warmup % steps_per_epoch, queries)
            elapsed = time.perf_counter() - started
            use = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
            averages = prof.key_averages()
            # on CUDA the kernels are events of their own, and each operator's self device time is
            # that of the kernels it launched: operators are listed, the kernels give the total
            kernels = [e for e in averages if str(getattr(e, "device_type", "")).endswith("CUDA")]
            operators = [e for e in averages if e not in kernels] if kernels else list(averages)
            ops = sorted(((e.key, getattr(e, use) / 1e6, e.count) for e in operators), key=lambda row: -row[1])
            total = sum(getattr(e, use) for e in (kernels or operators)) / 1e6
            if kernels:                     # what a CUDA graph of the step launches at once
                result["device_kernels"] = sum(e.count for e in kernels)
            result.update(profiled_step_seconds=elapsed, ops=[list(row) for row in ops if row[1] > 0][:40],
                          matmul_seconds=sum(s for k, s, _ in ops if k.split("::")[-1] in
                                             ("mm", "addmm", "bmm", "baddbmm")),
                          total_self_seconds=total)
        elif name == "floor":
            # `--warmup` steps and one recorded step, then `--steps` rounds of a timed step and its
            # recorded products timed alone, interleaved so that both see the same machine state.
            queries = training_queries(splits["train"], "random", g)
            for b in range(args.warmup):
                step(b % steps_per_epoch, queries)
            with RecordMatmuls() as recorder:
                step(args.warmup % steps_per_epoch, queries)
            times, floors, peaks = [], [], []      # each round also re-measures the peak fp32 rate
            for b in range(args.warmup + 1, args.warmup + args.steps + 1):
                started = time.perf_counter()
                step(b % steps_per_epoch, queries)
                times.append(time.perf_counter() - started)
                floor, flop = time_matmuls(recorder.calls, device)
                floors.append(floor)
                peaks.append(peak_rate(device, torch.float32, args.peak_size or (8192 if device.type == "cuda" else 2048),
                                       repeats=5))
            median, floor = statistics.median(times), statistics.median(floors)
            result.update(step_seconds=times, median_step_seconds=median, steps_per_epoch=steps_per_epoch,
                          epoch_seconds=median * steps_per_epoch, floor_seconds_each=floors, floor_seconds=floor,
                          matmuls=len(recorder.calls), matmul_gflop=flop / 1e9, floor_gflops=flop / floor / 1e9,
                          step_over_floor=statistics.median([t / f for t, f in zip(times, floors)]),
                          round_peak_fp32_gflops=[p / 1e9 for p in peaks])
        else:                    # `--warmup` steps, then `--steps` timed steps
            queries = training_queries(splits["train"], "random", g)
            warmup = 0 if args.no_warmup else args.warmup
            times = [float("nan")] if args.no_warmup else []
            for b in range(args.steps + warmup):
                started = time.perf_counter()
                step(b % steps_per_epoch, queries)
                times.append(time.perf_counter() - started)
            timed = times[max(warmup, 1):]
            result.update(warmup_seconds=times[0], step_seconds=timed, median_step_seconds=statistics.median(timed),
                          steps_per_epoch=steps_per_epoch, epoch_seconds=statistics.median(timed) * steps_per_epoch)
            if graphed is not None:
                result["graph_failed"] = graphed.failed       # None: every timed step was a replay
    elif name in ("eval", "eval_amp", "eval_before"):
        def evaluate():
            if name == "eval_before":
                return ranks_before(model, splits["test"], list(splits.values()), args.eval_batch_size, device)
            return compute_ranks(model, splits["test"], list(splits.values()), args.eval_batch_size, device,
                                 progress=False, amp=name == "eval_amp")
        times = []
        # the first also loads the kernels and sets up the device's libraries; on a GPU, where an
        # evaluation takes about a second, three warm ones give a spread to compare a before with
        for _ in range(4 if device.type == "cuda" else 2):
            started = time.perf_counter()
            ranks = evaluate()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        result.update(eval_seconds=statistics.median(times[1:]), eval_seconds_each=times[1:],
                      eval_cold_seconds=times[0])
        result["test_mrr"] = float((1 / ranks["realistic"]).mean())      # the same in eval and eval_before
        if name == "eval":
            result.update(eval_parts(model, splits, args.eval_batch_size, device))
    elif name == "resume_save":
        import tempfile
        from mygo.io import save_torch
        from mygo.training import ResumeWriter
        model.train()
        optimizer = adam(model, preset["lr"])
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "best_model": {k: v.detach().clone() for k, v in model.state_dict().items()}}

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()
        blocking, snapshot, behind = [], [], []
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "state.pt"
            writer = ResumeWriter()
            writer.write(path, state)              # a run's first write is waited for: not timed
            for _ in range(max(args.steps, 2)):
                sync()
                started = time.perf_counter()
                save_torch(path, state)
                blocking.append(time.perf_counter() - started)
                started = time.perf_counter()
                writer.write(path, state)
                snapshot.append(time.perf_counter() - started)
                writer.wait()
                behind.append(time.perf_counter() - started)
            size = path.stat().st_size
        result.update(save_blocking_seconds=statistics.median(blocking), save_snapshot_seconds=statistics.median(snapshot),
                      save_background_seconds=statistics.median(behind), resume_state_mib=size / 2**20,
                      save_blocking_seconds_each=blocking, save_snapshot_seconds_each=snapshot)
    elif name == "eval_loop":
        model.eval()
        test = splits["test"][:250]
        started = time.perf_counter()
        with torch.no_grad():
            emb = model.entity_embeddings()
            for h, r, t in test.tolist():
                for known, head in ((h, False), (t, True)):
                    model.score(emb, torch.tensor([known]), torch.tensor([r]), torch.tensor([head]))
        elapsed = time.perf_counter() - started
        result["eval_seconds"] = elapsed * len(splits["test"]) / len(test)
        result["timed_queries"] = 2 * len(test)
    elif name == "breakdown":
        model.train()
        B = args.batch_size
        g = torch.Generator().manual_seed(0)
        known, relation, target, head = (t.to(device) for t in training_queries(splits["train"], "random", g))
        parts = {}

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        def timed(key, fn):
            fn()
            sync()
            started = time.perf_counter()
            for _ in range(args.steps):
                out = fn()
            sync()
            parts[key] = (time.perf_counter() - started) / args.steps
            return out
        with torch.no_grad():
            emb = timed("entity_encoder", lambda: model.entity_embeddings())
            sample = torch.randperm(N)[: min(512, N)].to(device)
            timed("contrastive_pass", lambda: model.contrastive_loss(emb, sample, 0.5))
            ctx = timed("triple_encoder", lambda: model.triple_encoder(emb, known[:B], relation[:B], head[:B]))
            timed("tucker", lambda: model.decoder(ctx[0], ctx[1], emb))
        total = sum(parts.values())
        result["forward_seconds"] = parts
        result["forward_share"] = {k: v / total for k, v in parts.items()}
        # TuckER's contraction order outside training (in training, core dropout needs the
        # per-query matrices): the reference's (B, d, d) matrices and bmm, against (x outer r') @ W.
        decoder = model.decoder.eval()
        with torch.no_grad():
            x = decoder.bn0(ctx[0])
            torch.testing.assert_close(decoder.contract(x, ctx[1], True), decoder.contract(x, ctx[1], False),
                                       rtol=1e-3, atol=1e-3)
            contraction = {}
            for key, materialise in (("per-query d x d matrices (before)", True), ("(x outer r') @ W (after)", False)):
                decoder.contract(x, ctx[1], materialise)
                sync()
                started = time.perf_counter()
                for _ in range(args.steps):
                    decoder.contract(x, ctx[1], materialise)
                sync()
                contraction[key] = (time.perf_counter() - started) / args.steps
        result["tucker_contraction_seconds"] = contraction
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        result["gpu"], result["cuda"] = torch.cuda.get_device_name(device), torch.version.cuda
    if device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result["dataset"], result["entities"], result["train_triples"] = label, N, len(splits["train"])
    result["m"], result["n"] = preset["m"], preset["n"]
    return result


def cpu_name() -> str:
    """The CPU's model name, its vector capability as torch sees it and its native bf16 units."""
    from mygo.device import cpu_bf16_units
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_bf16_units() or 'none'})"


def seconds(value: float, decimals: int) -> str:
    """`decimals` places, or three significant digits for times under ten seconds (GPU steps)."""
    return f"{value:.{decimals}f}" if value >= 10 else f"{value:.3g}"


def best_peak(results: list[dict]) -> dict | None:
    """The peak rates of the run: the peak scenario's, its fp32 raised to the best the floor's
    rounds measured (a peak is the best the machine did; one measurement can meet a busy moment)."""
    peak = next((dict(r["peak_gflops"]) for r in results if r["scenario"] == "peak" and "error" not in r), None)
    rounds = [g for r in results if r["scenario"] == "floor" and "error" not in r
              for g in r.get("round_peak_fp32_gflops", [])]
    if peak is not None and rounds:
        peak["fp32"] = max([peak["fp32"], *rounds])
    return peak


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# Benchmark: {meta['dataset']} ({meta['preset']} config)", "",
             f"Command: `{meta['command']}`" + (f"; code: {meta['version']}." if meta.get("version") else ""), "",
             f"Machine: {meta['machine']}" + (f", {meta['cpu']}" if meta.get("cpu") else "") + f"; torch {meta['torch']}; {meta['threads']} threads; device {meta['device']}; "
             f"batch {meta['batch_size']}; {meta['entities']} entities, {meta['train_triples']} train triples.", "",
             "| scenario | what | s / step | s / epoch | s / evaluation | peak RSS MiB |", "|---|---|---|---|---|---|"]
    gpu_column = any("peak_cuda_mib" in r for r in results)
    if gpu_column:
        gpus = sorted({f"{r['gpu']} (CUDA {r['cuda']})" for r in results if "gpu" in r})
        lines[-2:] = [f"GPU: {', '.join(gpus)}.", "",
                      "| scenario | what | s / step | s / epoch | s / evaluation | peak RSS MiB | peak GPU MiB "
                      "(max_memory_allocated) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["scenario"] == "breakdown":
            continue
        if "error" in r:
            reason = r["error"].strip().splitlines()[-1]
            tried = re.search(r"tried to allocate (\d+) bytes", reason)
            if tried:
                reason = f"out of memory (an allocation of {int(tried[1]) / 1e9:.1f} GB failed)"
            lines.append(f"| {r['scenario']} | {r['what']} | failed: {reason} | | | |" + (" |" if gpu_column else ""))
            continue
        step = seconds(r["median_step_seconds"], 2) if "median_step_seconds" in r else ""
        epoch = seconds(r["epoch_seconds"], 0) if "epoch_seconds" in r else ""
        ev = seconds(r["eval_seconds"], 1) if "eval_seconds" in r else ""
        gpu = f" {r['peak_cuda_mib']:.0f} |" if gpu_column else ""
        lines.append(f"| {r['scenario']} | {r['what']} | {step} | {epoch} | {ev} | {r['peak_rss_mib']:.0f} |{gpu}")
    for r in results:
        if r["scenario"] == "breakdown" and "error" not in r:
            lines += ["", "Forward time of one training step, by part (train mode, no grad):", "",
                      "| part | seconds | share |", "|---|---|---|"]
            lines += [f"| {k} | {v:.3f} | {r['forward_share'][k]:.0%} |" for k, v in r["forward_seconds"].items()]
            if "tucker_contraction_seconds" in r:
                lines += ["", f"TuckER's core contraction for a batch of {meta['batch_size']} queries, eval mode:", "",
                          "| contraction | seconds |", "|---|---|"]
                lines += [f"| {k} | {v:.3f} |" for k, v in r["tucker_contraction_seconds"].items()]
    for r in results:
        if r["scenario"] == "resume_save" and "error" not in r:
            lines += ["", f"resume_save: a {r['resume_state_mib']:.0f} MiB resume state; saved while training waits "
                      f"{r['save_blocking_seconds']:.3f} s (the before); with the background writer training waits "
                      f"{r['save_snapshot_seconds']:.3f} s for the snapshot, and the write is done "
                      f"{r['save_background_seconds']:.3f} s after it began (medians)."]
        if r["scenario"] == "step_graphed" and "error" not in r:
            lines += ["", "step_graphed: " + (f"the capture failed ({r['graph_failed']}), so its steps ran eagerly."
                                              if r.get("graph_failed") else
                                              "every timed step was a replay of the captured graph.")]
    evals = {r["scenario"]: r for r in results if r["scenario"] in ("eval", "eval_before") and "error" not in r}
    if len(evals) == 2:
        lines += ["", f"eval and eval_before rank alike (test MRR {evals['eval']['test_mrr']:.6f} and "
                      f"{evals['eval_before']['test_mrr']:.6f}); their first, untimed evaluations took "
                      f"{evals['eval']['eval_cold_seconds']:.2f} s and {evals['eval_before']['eval_cold_seconds']:.2f} s."]
    peak = best_peak(results)
    for r in results:
        if r["scenario"] == "eval" and "error" not in r and "eval_parts_seconds" in r:
            rate = (peak or {}).get("fp32")
            lines += ["", f"Evaluation ({r['eval_queries']} queries, {seconds(r['eval_seconds'], 1)} s), each part "
                      "timed on its own" + (f"; at peak: the part's matrix FLOP at the peak fp32 rate "
                                            f"({rate / 1000:.2f} TFLOP/s)" if rate else "") + ":", "",
                      "| part | seconds | matrix GFLOP | its products timed alone, s | at peak, s | part / at peak |",
                      "|---|---|---|---|---|---|"]
            total_flop = 0.0
            for k, v in r["eval_parts_seconds"].items():
                g = r["eval_parts_gflop"].get(k)
                total_flop += g or 0.0
                alone = r["eval_parts_floor_seconds"].get(k)
                at_peak = g / rate if (g and rate) else None
                lines.append(f"| {k} | {v:.3f} | {f'{g:.0f}' if g else ''} | {f'{alone:.3f}' if alone else ''} | "
                             f"{f'{at_peak:.3f}' if at_peak else ''} | {f'{v / at_peak:.1f}x' if at_peak else ''} |")
            lines += [f"| before: {k} | {v:.3f} |  |  |  |  |" for k, v in r.get("eval_before_seconds", {}).items()]
            if rate:
                at_peak = total_flop / rate
                lines += ["", f"The evaluation's {total_flop:.0f} GFLOP of matrix products would take {at_peak:.2f} s "
                          f"at the peak fp32 rate; the evaluation ({r['eval_seconds']:.2f} s) is "
                          f"**{r['eval_seconds'] / at_peak:.1f}x** that."]
    for r in results:
        if r["scenario"] == "profile" and "error" not in r:
            kernels = f"; {r['device_kernels']} kernels launched" if r.get("device_kernels") else ""
            lines += ["", f"Profile of one step ({seconds(r['profiled_step_seconds'], 2)} s under the profiler; "
                      f"operators' self time {r['total_self_seconds']:.2f} s, of which matrix products "
                      f"{r['matmul_seconds']:.2f} s{kernels}): the operators with the most self time.", "",
                      "| operator | self seconds | share | calls |", "|---|---|---|---|"]
            lines += [f"| {k} | {s:.3f} | {s / r['total_self_seconds']:.1%} | {c} |" for k, s, c in r["ops"][:25]]
    for r in results:
        if "memory_budget_gb" in r and "error" not in r:
            chunk = f"entities encoded {r['encoder_chunk']} at a time" if r["encoder_chunk"] else "one encoder pass"
            lines += ["", f"{r['scenario']}: memory budget {r['memory_budget_gb']:g} GiB -> {chunk}; estimated peak "
                      f"{r['estimated_peak_mib']:.0f} MiB, measured peak RSS {r['peak_rss_mib']:.0f} MiB."]
    if peak:
        size = next(r["peak_size"] for r in results if r["scenario"] == "peak")
        rounds = any(r.get("round_peak_fp32_gflops") for r in results if r["scenario"] == "floor")
        lines += ["", f"Peak matrix rate ({size} x {size} x {size} product on random data, the best of 10"
                  + ("; fp32 also re-measured after each floor round, the best of all" if rounds else "") + "): " +
                  ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak.items()) + "."]
        copy = next((r for r in results if r["scenario"] == "peak" and "copy_gb_per_s" in r), None)
        if copy:
            lines[-1] += (f" Memory: a {copy['copy_mib']} MiB copy moves {copy['copy_gb_per_s']:,.0f} GB/s (read and "
                          "written, the best of 10).")
    for r in results:
        if r["scenario"] == "floor" and "error" not in r and peak:
            rate = peak["bf16"] if meta["device"].startswith("cuda") else peak["fp32"]
            kind = "bf16 (the step runs under bf16 autocast)" if meta["device"].startswith("cuda") else "fp32"
            at_peak = r["matmul_gflop"] / rate
            lines += ["", f"At the peak {kind} rate the step's {r['matmul_gflop']:.0f} GFLOP of matrix products "
                      f"would take {at_peak * 1000:.2f} ms; the step ({r['median_step_seconds'] * 1000:.2f} ms) is "
                      f"**{r['median_step_seconds'] / at_peak:.1f}x** that, and its own products timed alone are "
                      f"{r['floor_seconds'] / at_peak:.1f}x that (what the shapes cost)."]
            graphed = next((g for g in results if g["scenario"] == "step_graphed" and "error" not in g), None)
            if graphed is not None:
                lines += ["", f"The step replayed as a CUDA graph (step_graphed, "
                          f"{graphed['median_step_seconds'] * 1000:.2f} ms) is "
                          f"**{graphed['median_step_seconds'] / at_peak:.1f}x** that peak time."]
    for r in results:
        if r["scenario"] == "floor" and "error" not in r:
            lines += ["", f"Floor: the step's {r['matmuls']} matrix products (forward and backward, "
                      f"{r['matmul_gflop']:.0f} GFLOP), each timed alone on random inputs of the same shapes and "
                      f"strides, take {seconds(r['floor_seconds'], 2)} s ({r['floor_gflops']:.0f} GFLOP/s; median "
                      f"of {len(r['floor_seconds_each'])} rounds, each right after a timed step); the step "
                      f"({seconds(r['median_step_seconds'], 2)} s) is **{r['step_over_floor']:.2f}x** its floor (median "
                      f"of the rounds' ratios)."]
    warmups = [f"{r['scenario']} {r['warmup_seconds']:.1f} s" for r in results
               if "warmup_seconds" in r and r["warmup_seconds"] == r["warmup_seconds"]]     # nan: --no-warmup
    if any(r.get("warmup_seconds") != r.get("warmup_seconds") for r in results):
        lines += ["", "--no-warmup: the first step is the timed one (it includes one-off allocation costs)."]
    if warmups:
        lines += ["", f"First warm-up step (not timed above; {meta.get('warmup', 1)} in all; includes compiling for "
                  "step_compiled): " + ", ".join(warmups) + "."]
    lines += ["", "s / epoch = median s / step (after the warm-up steps) x steps per epoch; for the `epoch` "
              "scenario, the median of whole timed epochs after one warm-up epoch."]
    return "\n".join(lines) + "\n"


def save(out: str | None, saved: dict, text: str, quiet: bool = False) -> None:
    """Print the markdown (unless `quiet`) and, with an output prefix, write `out`.json and
    `out`.md (each whole: written under a temporary name, then renamed; the .md first, so that
    a run stopped once the .json is there has both)."""
    if not quiet:
        print(text)
    if out:
        for path, content in ((Path(out + ".md"), text), (Path(out + ".json"), json.dumps(saved, indent=2) + "\n")):
            with atomic_path(path) as tmp:
                tmp.write_text(content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="benchmark-format dataset directory")
    parser.add_argument("--synthetic", type=int, help="number of entities of a random graph")
    parser.add_argument("--preset", default="db15k", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per step scenario (after a warm-up step)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before the timed ones (step, floor "
                        "and profile scenarios; the first steps also grow the process's heap to its steady size)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of the epoch scenario (after a warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    parser.add_argument("-m", "--max-vis-token", type=int, help="override the preset's m")
    parser.add_argument("-n", "--max-txt-token", type=int, help="override the preset's n")
    parser.add_argument("--memory-limit-gb", type=float, help="address-space limit per scenario process, so "
                        "running out of memory is a clean error instead of the kernel's OOM killer")
    parser.add_argument("--encoder-chunk", type=int, default=0, help="train.model.encoder_chunk: entities per "
                        "checkpointed encoder chunk (bounded memory); 0 = one pass")
    parser.add_argument("--memory-budget-gb", type=float, default=0.0, help="train.memory_budget_gb: choose the "
                        "encoder chunk that fits this budget (mygo.memory); with --encoder-chunk 0 only")
    parser.add_argument("--no-warmup", action="store_true", help="time the first step too (for very large N, "
                        "where one step is all there is time for)")
    parser.add_argument("--scenario-timeout", type=float, default=0.0, help="seconds after which a scenario's "
                        "process is stopped and reported as failed (0: no limit)")
    parser.add_argument("--peak-size", type=int, default=0, help="side of the peak scenario's square product "
                        "(default 8192 on CUDA, 2048 on CPU)")
    parser.add_argument("--copy-mib", type=int, default=0, help="size of the peak scenario's memory copy "
                        "(default 2048 MiB on CUDA, 256 on CPU)")
    parser.add_argument("--out", help="output prefix (writes .json and .md)")
    parser.add_argument("--render", metavar="JSON", help="rewrite the .md beside a results .json from it (no runs)")
    parser.add_argument("--system-allocator", action="store_true", help="train.reuse_memory: false (freed "
                        "memory goes back to the system after each step: the before)")
    parser.add_argument("--reproducible", action="store_true", help="the pipeline's pinned CPU mode (param "
                        "reproducible: AVX2 kernels, MKL CBWR, one thread) in every scenario")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reproducible and os.environ.get("MYGO_REPRODUCIBLE") != "1":
        from mygo import reproducible          # pinned before torch loads: start again with it set
        reproducible.apply(True)
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    if args.reproducible:
        torch.set_num_threads(1)
        args.threads = 1
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(markdown(saved["results"], saved["meta"]))
        return
    if not (args.dataset or args.synthetic):
        parser.error("give --dataset DIR or --synthetic N")
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args)))
        return
    results = []
    forwarded = [a for a in sys.argv[1:]]
    if args.scenarios == "cuda":          # the GPU set: fp32 / TF32 / bf16 / compiled variants
        args.scenarios = CUDA_SCENARIOS
        forwarded = [CUDA_SCENARIOS if a == "cuda" else a for a in forwarded]
    code = version.current()           # the code measured

    def meta() -> dict:
        ok = [r for r in results if "error" not in r and "dataset" in r]
        return {"command": "python bench/harness.py " + " ".join(forwarded), "version": code, "machine":
                f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(), "cpu": cpu_name(),
                "torch": torch.__version__, "threads": args.threads,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(), "reproducible": bool(args.reproducible),
                "warmup": args.warmup, "device": args.device, "batch_size": args.batch_size, "preset": args.preset,
                "dataset": ok[0]["dataset"] if ok else Path(args.dataset or f"synthetic-{args.synthetic}").name,
                "entities": ok[0]["entities"] if ok else (args.synthetic or "?"),
                "train_triples": ok[0]["train_triples"] if ok else (5 * args.synthetic if args.synthetic else "?")}
    for name in args.scenarios.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            env = {**os.environ, "MYGO_KEEP_DENORMALS": "1"} if name == "step_denormals" else None
            proc = subprocess.run([sys.executable, __file__, *forwarded, "--scenario", name], capture_output=True,
                                  text=True, timeout=args.scenario_timeout or None, env=env)
        except subprocess.TimeoutExpired:
            results.append({"scenario": name, "what": SCENARIOS[name], "peak_rss_mib": float("nan"),
                            "error": f"timed out after {args.scenario_timeout:g} s (--scenario-timeout)"})
            print(f"  failed: {results[-1]['error']}", file=sys.stderr)
        else:
            if proc.returncode != 0:
                results.append({"scenario": name, "what": SCENARIOS[name], "error": proc.stderr.strip()[-500:],
                                "peak_rss_mib": float("nan")})
                print(f"  failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"  {json.dumps({k: v for k, v in results[-1].items() if k not in ('what',)})}",
                      file=sys.stderr)
        if args.out:            # the results so far, so that a run stopped from outside keeps them
            described = meta()
            save(args.out, {"meta": described, "results": results}, markdown(results, described), quiet=True)
    described = meta()
    save(args.out, {"meta": described, "results": results}, markdown(results, described))
    ok = [r for r in results if "error" not in r and "dataset" in r]
    if not ok and not any(r["scenario"] == "peak" and "error" not in r for r in results):
        sys.exit(1)         # every scenario failed (one failing is reported in the table)


if __name__ == "__main__":
    main()
