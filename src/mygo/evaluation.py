"""Filtered link-prediction ranking (SPEC "Evaluation"), batched over queries.

Ranks are tie-aware (as in PyKEEN): optimistic = 1 + #greater, pessimistic = #greater_or_equal
(the target included), realistic = their mean. A constant scorer gets the middle rank, not 1.
Filtering sets the known other answers aside before counting; the target is never filtered.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from mygo.progress import bar as progress_bar


log = logging.getLogger(__name__)

HITS = (1, 3, 10)


KINDS = ("optimistic", "pessimistic", "realistic")


def rank(scores: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> dict[str, torch.Tensor]:
    """Filtered ranks of `targets` among `scores`.

    scores (B, N) float; targets (B,) long; known (B, N) bool, True for other true answers to
    filter out (the target's own entry is ignored). Returns float tensors (B,) under
    'optimistic', 'pessimistic' and 'realistic'.
    """
    rows, cols = known.nonzero(as_tuple=True)
    return rank_filtered(scores, targets, rows, cols)


def rank_filtered(scores: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor,
                  cols: torch.Tensor) -> dict[str, torch.Tensor]:
    """`rank` with the known answers as (row, entity) pairs, rows and cols (K,) long, instead of
    a (B, N) mask: every entity scored above (at or above) the target is counted, then the known
    answers other than the target that were are taken off: the same integer counts, in two passes
    over the scores."""
    B = scores.shape[0]
    target_score = scores[torch.arange(B, device=scores.device), targets].unsqueeze(1)    # (B, 1)
    greater = (scores > target_score).sum(1, dtype=torch.int32)        # int32: half the time of int64 here
    greater_equal = (scores >= target_score).sum(1, dtype=torch.int32)
    other = cols != targets[rows]                           # the target is never filtered
    known_score, bar = scores[rows, cols], target_score[rows, 0]
    # each row's known answers scored above (at or above) its target, counted with integer adds:
    # no (B, N) mask, and nothing waits for the device (on a GPU, a boolean index would)
    greater -= torch.zeros_like(greater).index_add_(0, rows, ((known_score > bar) & other).int())
    greater_equal -= torch.zeros_like(greater).index_add_(0, rows, ((known_score >= bar) & other).int())
    optimistic = (1 + greater).double()
    pessimistic = greater_equal.double()
    return {"optimistic": optimistic, "pessimistic": pessimistic,
            "realistic": (optimistic + pessimistic) / 2}


def summarize_ranks(ranks: torch.Tensor) -> dict[str, float]:
    """MRR, MR and Hits@k (fractions in [0, 1]) of a 1-D rank tensor."""
    ranks = ranks.double()
    if ranks.numel() == 0:
        return {"mrr": 0.0, "mr": 0.0, **{f"hits@{k}": 0.0 for k in HITS}, "count": 0}
    out = {"mrr": float((1 / ranks).mean()), "mr": float(ranks.mean())}
    out.update({f"hits@{k}": float((ranks <= k).double().mean()) for k in HITS})
    out["count"] = int(ranks.numel())
    return out


class KnownAnswers:
    """For each (entity, relation, direction), the true answers in the given triples, as a sorted
    index: every query's answers are found at once with a binary search (no per-query Python),
    on the device that ranks (the index is copied there once and kept)."""

    def __init__(self, triples: list[np.ndarray] | np.ndarray):
        if isinstance(triples, np.ndarray):
            triples = [triples]
        triples = np.concatenate([np.asarray(t, dtype=np.int64).reshape(-1, 3) for t in triples]
                                 or [np.zeros((0, 3), np.int64)])
        h, r, t = triples.T
        keys = np.concatenate([self._key(h, r, np.zeros_like(h)), self._key(t, r, np.ones_like(t))])
        answers = np.concatenate([t, h])                     # (h, r, ?) -> t and (?, r, t) -> h
        order = np.lexsort((answers, keys))                  # by key, then answer
        keys, answers = keys[order], answers[order]
        first = np.ones(len(keys), dtype=bool)               # each (key, answer) pair once
        first[1:] = (keys[1:] != keys[:-1]) | (answers[1:] != answers[:-1])
        keys, self.answers = keys[first], answers[first]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
        self.keys = keys[starts]                                                # (Q,) sorted
        self.offsets = np.append(starts, len(keys))                             # answers of key i: [o_i, o_i+1)
        self._copies: dict[str, tuple[torch.Tensor, ...]] = {}

    @staticmethod
    def _key(entity, relation, predict_head):
        """One int64 per query (numpy arrays or tensors alike)."""
        if isinstance(entity, torch.Tensor):
            return (entity.long() << 32) | (relation.long() << 1) | predict_head.long()
        return (entity.astype(np.int64) << 32) | (relation.astype(np.int64) << 1) | predict_head.astype(np.int64)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The index as tensors on `device`, copied once."""
        key = str(device)
        if key not in self._copies:
            self._copies[key] = tuple(torch.from_numpy(a).to(device) for a in (self.keys, self.offsets, self.answers))
        return self._copies[key]

    def pairs(self, known, relation, predict_head,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The true answers of a batch of queries (arrays or tensors) as (row, entity) pairs, two
        (K,) long tensors on `device`, rows in ascending order; computed there."""
        device = torch.device(device)
        keys, offsets, answers = self._on(device)
        query = self._key(*(torch.as_tensor(a).to(device) for a in (known, relation, predict_head)))
        B = len(query)
        if not len(keys):
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty.clone()
        at = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
        starts = offsets[at]
        counts = torch.where(keys[at] == query, offsets[at + 1] - starts, 0)
        rows = torch.repeat_interleave(torch.arange(B, device=device), counts)
        first = torch.cumsum(counts, 0) - counts             # each row's first position in the output
        K = len(rows)                                        # known from rows: no second wait for the device
        cols = answers[torch.repeat_interleave(starts - first, counts, output_size=K) + torch.arange(K, device=device)]
        return rows, cols

    def mask(self, known, relation, predict_head, num_entities: int) -> torch.Tensor:
        """(B, N) bool: True where an entity is a true answer of the query."""
        rows, cols = self.pairs(known, relation, predict_head)
        out = torch.zeros(len(known), num_entities, dtype=torch.bool)
        out[rows, cols] = True
        return out


def queries_both_directions(triples: np.ndarray) -> dict[str, np.ndarray]:
    """Every triple as a tail query (h, r, ?) and a head query (?, r, t)."""
    T = len(triples)
    return {
        "known": np.concatenate([triples[:, 0], triples[:, 2]]),
        "relation": np.concatenate([triples[:, 1], triples[:, 1]]),
        "target": np.concatenate([triples[:, 2], triples[:, 0]]),
        "predict_head": np.concatenate([np.zeros(T, bool), np.ones(T, bool)]),
    }


@torch.no_grad()
def compute_ranks(model, triples: np.ndarray, filters: KnownAnswers | list[np.ndarray], batch_size: int = 1024,
                  device: torch.device | str = "cpu", progress: bool = True, amp: bool = False) -> dict[str, np.ndarray]:
    """Filtered ranks for both directions of every triple; entity embeddings computed once.

    `filters`: the known answers to set aside, or the triples to build them from. `amp`: the
    encoders under bf16 autocast (mygo.device.use_bf16 decides where); scores stay float32.
    """
    model.eval()
    device = torch.device(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        return _ranks(model, triples, filters, batch_size, device, progress)


def _ranks(model, triples, filters, batch_size, device, progress) -> dict[str, np.ndarray]:
    if not isinstance(filters, KnownAnswers):
        filters = KnownAnswers(filters)
    q = queries_both_directions(triples)
    known, relation, predict_head, target = (torch.from_numpy(q[k]).to(device)    # one copy, not one a batch
                                             for k in ("known", "relation", "predict_head", "target"))
    entity_emb = model.entity_embeddings()
    out = {k: [] for k in KINDS}
    starts = range(0, len(q["known"]), batch_size)
    for start in progress_bar(starts, desc="evaluate", unit="batch", enabled=progress, inner=True):
        sl = slice(start, start + batch_size)
        scores = model.score(entity_emb, known[sl], relation[sl], predict_head[sl]).float()
        rows, cols = filters.pairs(known[sl], relation[sl], predict_head[sl], device)
        for kind, values in rank_filtered(scores, target[sl], rows, cols).items():
            out[kind].append(values)                        # kept on the device until the end
    result = {k: torch.cat(v).cpu().numpy() for k, v in out.items()}
    result.update({k: q[k] for k in ("relation", "predict_head")})
    return result


def metrics_from_ranks(ranks: dict[str, np.ndarray], relation_names: list[str] | None = None) -> tuple[dict, list[dict]]:
    """eval.json content (realistic at top level) and the per-relation table."""
    realistic = torch.as_tensor(ranks["realistic"])
    head = torch.as_tensor(ranks["predict_head"])
    metrics = summarize_ranks(realistic)
    for kind in ("optimistic", "pessimistic"):
        metrics[kind] = summarize_ranks(torch.as_tensor(ranks[kind]))
    metrics["head"] = summarize_ranks(realistic[head])
    metrics["tail"] = summarize_ranks(realistic[~head])
    per_relation = []
    relation = ranks["relation"]
    for r in np.unique(relation).tolist():
        row = {"relation": int(r), "name": relation_names[r] if relation_names else str(r)}
        row.update(summarize_ranks(realistic[torch.as_tensor(relation == r)]))
        per_relation.append(row)
    return metrics, per_relation
