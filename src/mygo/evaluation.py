"""Filtered link-prediction ranking (SPEC "Evaluation"), batched over queries.

Ranks are tie-aware (as in PyKEEN): optimistic = 1 + #greater, pessimistic = #greater_or_equal
(the target included), realistic = their mean. A constant scorer gets the middle rank, not 1.
Filtering sets the known other answers aside before counting; the target is never filtered.
"""
from __future__ import annotations

import logging
from collections import defaultdict

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
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_score = scores[rows, targets].unsqueeze(1)                          # (B, 1)
    keep = ~known
    keep[rows, targets] = True
    greater = ((scores > target_score) & keep).sum(1)
    greater_equal = ((scores >= target_score) & keep).sum(1)
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
    """For each (entity, relation, direction), the set of true answers in the given triples."""

    def __init__(self, triples: list[np.ndarray] | np.ndarray):
        if isinstance(triples, np.ndarray):
            triples = [triples]
        self.answers: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for split in triples:
            for h, r, t in split.tolist():
                self.answers[(h, r, 0)].append(t)      # (h, r, ?) -> t
                self.answers[(t, r, 1)].append(h)      # (?, r, t) -> h

    def mask(self, known: np.ndarray, relation: np.ndarray, predict_head: np.ndarray,
             num_entities: int) -> torch.Tensor:
        """(B, N) bool: True where an entity is a true answer of the query."""
        rows, cols = [], []
        for i, key in enumerate(zip(known.tolist(), relation.tolist(), predict_head.astype(int).tolist())):
            answers = self.answers.get(key, ())
            rows.extend([i] * len(answers))
            cols.extend(answers)
        out = torch.zeros(len(known), num_entities, dtype=torch.bool)
        out[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = True
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
    entity_emb = model.entity_embeddings()
    num_entities = entity_emb.shape[0]
    out = {k: [] for k in KINDS}
    starts = range(0, len(q["known"]), batch_size)
    for start in progress_bar(starts, desc="evaluate", unit="batch", enabled=progress, inner=True):
        sl = slice(start, start + batch_size)
        known = torch.as_tensor(q["known"][sl], device=device)
        relation = torch.as_tensor(q["relation"][sl], device=device)
        predict_head = torch.as_tensor(q["predict_head"][sl], device=device)
        target = torch.as_tensor(q["target"][sl], device=device)
        scores = model.score(entity_emb, known, relation, predict_head).float()
        mask = filters.mask(q["known"][sl], q["relation"][sl], q["predict_head"][sl], num_entities).to(device)
        for kind, values in rank(scores, target, mask).items():
            out[kind].append(values.cpu())
    result = {k: torch.cat(v).numpy() for k, v in out.items()}
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
