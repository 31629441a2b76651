"""How much memory a training step needs, and the encoder chunk that keeps it within a budget
(`train.memory_budget_gb`).

A step holds the model with its gradients and Adam moments, the frozen token tables, the (N, d)
entity embeddings with their gradient, the (B, N) scores, TuckER's per-query (d, d) matrices, the
contrastive pass, and the entity encoder's activations. Only the last grows with the entities
encoded at once, so it is what chunking bounds (`MyGO.encode`). Its size per entity is measured,
not modelled: autograd's saved tensors for a real encoder pass on a few entities of this model.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

import torch

from mygo import distributed

log = logging.getLogger(__name__)

GIB = 2**30
# Calibrated on DB15K-config steps (docs/benchmarks.md, "Scaling"); the sum of the parts is
# conservative: it adds peaks that do not coincide (TuckER's matrices are freed before the encoder
# chunks are recomputed), and measured peak RSS came out 4-62% below it.
CPU_RUNTIME_BYTES = 512 * 2**20   # the process itself on CPU (interpreter, torch, the graph's arrays)
ACTIVATION_FACTOR = 1.25          # saved activations plus the gradients backward builds beside them


def _libc(name: str):
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):          # not glibc: nothing to call
        return None


_MALLOC_TRIM = _libc("malloc_trim") if sys.platform.startswith("linux") else None
_MALLOPT = _libc("mallopt") if sys.platform.startswith("linux") else None
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4       # glibc's mallopt parameters


def reuse_freed_memory() -> bool:
    """Keep freed memory in the process for the next allocation of its size (glibc; False
    elsewhere, where nothing changes).

    glibc serves every allocation over 32 MiB with a fresh mmap and unmaps it when freed, so each
    training step's large tensors (the encoder's (N, L, 4d) FFN activations, TuckER's (B, d, d)
    matrices) come back as new pages the kernel must fault in and zero, step after step. With
    mmap off and the heap never trimmed, the second step on reuses the first step's pages: a
    DB15K step on CPU 10.9 s -> 6.6 s, peak RSS 5.9 -> 9.1 GiB (docs/benchmarks.md). The price is
    that memory: use it when one encoder pass fits (`train.reuse_memory`; the memory-budgeted,
    chunked encoder trims the heap instead)."""
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(M_MMAP_MAX, 0)) and bool(_MALLOPT(M_TRIM_THRESHOLD, -1))   # -1: never trim


def reuse_memory_if(wanted: bool, device: torch.device, encoder_chunk: int) -> bool:
    """`reuse_freed_memory()` where it pays: asked for (`train.reuse_memory`), on CPU, with one
    encoder pass for all entities (a chunked encoder trims the heap instead). Whether it is on."""
    return wanted and device.type == "cpu" and not encoder_chunk and reuse_freed_memory()


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Chunked encoding frees and reallocates one chunk's activations per chunk. Tensors under glibc's
    mmap threshold (up to 32 MiB) live on the heap, where freed blocks of varying sizes fragment
    it and the process keeps growing far past what the live tensors need (docs/benchmarks.md,
    "Scaling", has the measured peaks). Trimming before each chunk keeps the peak at what the
    live tensors need."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def saved_bytes_per_entity(model, sample: int = 64) -> float:
    """Bytes autograd keeps for backward per entity of one entity-encoder pass (train mode),
    measured on the first `sample` entities; parameters and buffers are not counted."""
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in owned:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    entities = torch.arange(min(sample, model.config.num_entities), device=model.entity_encoder.structure.device)
    was_training = model.training
    model.train()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.entity_encoder(entities)
    model.train(was_training)
    return sum(storages.values()) / len(entities)


def step_bytes(model, batch_size: int, contrastive_size: int, mu: float, chunk: int,
               per_entity: float | None = None) -> dict[str, float]:
    """Estimated peak bytes of one training step, by part, when this rank encodes its share of
    the entities `chunk` at a time (0: all at once)."""
    config = model.config
    per_entity = saved_bytes_per_entity(model) if per_entity is None else per_entity
    N, d = config.num_entities, config.dim
    start, end = distributed.shard(N)
    local = end - start
    B = -(-batch_size // distributed.world_size())
    floats = 4
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    parts = {
        "parameters, gradients, Adam": 4.0 * parameters,
        "token tables and ids": float(sum(b.numel() * b.element_size() for b in model.buffers())),
        "entity embeddings": 3.0 * N * d * floats,
        "scores": 4.0 * B * N * floats,       # scores, log-softmax, and both their gradients
        # per-query (d, d) matrices kept for backward with a bool mask, and their gradient
        "TuckER matrices": (2.0 * floats + 1) * B * d * d,
        "contrastive pass": ACTIVATION_FACTOR * per_entity * min(contrastive_size, N) if mu > 0 else 0.0,
        "entity encoder": ACTIVATION_FACTOR * per_entity * (min(chunk, local) if chunk else local),
    }
    if model.entity_encoder.structure.device.type == "cpu":
        parts["runtime"] = float(CPU_RUNTIME_BYTES)
    return parts


def choose_encoder_chunk(model, budget_gb: float, batch_size: int, contrastive_size: int, mu: float) -> int:
    """The largest encoder chunk whose estimated step fits `budget_gb` (0 when one pass fits).
    A ValueError when even a chunk of one entity would not fit."""
    per_entity = saved_bytes_per_entity(model)
    parts = step_bytes(model, batch_size, contrastive_size, mu, chunk=0, per_entity=per_entity)
    fixed = sum(value for key, value in parts.items() if key != "entity encoder")
    budget = budget_gb * GIB
    if fixed + parts["entity encoder"] <= budget:
        return 0
    chunk = int((budget - fixed) // (ACTIVATION_FACTOR * per_entity))
    if chunk < 1:
        largest = max((k for k in parts if k != "entity encoder"), key=parts.get)
        raise ValueError(f"train.memory_budget_gb = {budget_gb}: a step needs about {fixed / GIB:.2f} GiB before "
                         f"any entity is encoded (largest part: {largest}, {parts[largest] / GIB:.2f} GiB); "
                         f"raise the budget, or lower train.batch_size")
    return chunk


__all__ = ["release_free_memory", "reuse_freed_memory", "reuse_memory_if", "saved_bytes_per_entity", "step_bytes", "choose_encoder_chunk"]
