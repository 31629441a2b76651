"""Top-k link prediction for users: (head, relation, ?) or (?, relation, tail) by name."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mygo.evaluation import KnownAnswers


@dataclass(frozen=True)
class Query:
    head: str | None          # None: predict the head
    relation: str
    tail: str | None          # None: predict the tail


def parse_query_line(line: str, path: str | Path = "<query>", number: int = 1) -> Query:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 3 or (parts[0] == "?") == (parts[2] == "?"):
        raise ValueError(f"{path}: line {number}: expected 'head<TAB>relation<TAB>?' or "
                         f"'?<TAB>relation<TAB>tail', got {line.rstrip()!r}")
    head, relation, tail = (p.strip() for p in parts)
    return Query(None if head == "?" else head, relation, None if tail == "?" else tail)


def read_queries(path: str | Path) -> list[Query]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: query file not found")
    text = path.read_text(encoding="utf-8-sig")
    return [parse_query_line(line, path, i) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def lookup(index: dict[str, int], name: str, kind: str) -> int:
    """The id of `name`; an unknown name is a ValueError listing the closest known names."""
    if name in index:
        return index[name]
    close = difflib.get_close_matches(name, list(index), n=5, cutoff=0.5)
    hint = f"; closest: {', '.join(map(repr, close))}" if close else f"; {len(index)} known, none close"
    raise ValueError(f"unknown {kind} {name!r}{hint}")


@torch.no_grad()
def predict(model, queries: list[Query], entity_names: list[str], relation_names: list[str], k: int = 10,
            known: KnownAnswers | None = None, device: str | torch.device = "cpu") -> list[list[tuple[str, float]]]:
    """For each query, the top-k (entity name, score); entities in `known` answers are skipped."""
    if k < 1:
        raise ValueError(f"k = {k}: must be >= 1")
    entity_index = {n: i for i, n in enumerate(entity_names)}
    relation_index = {n: i for i, n in enumerate(relation_names)}
    given, relation, predict_head = [], [], []
    for q in queries:
        name = q.tail if q.head is None else q.head
        given.append(lookup(entity_index, name, "entity"))
        relation.append(lookup(relation_index, q.relation, "relation"))
        predict_head.append(q.head is None)
    model.eval()
    entity_emb = model.entity_embeddings()
    g, r, h = (np.asarray(x) for x in (given, relation, predict_head))
    scores = model.score(entity_emb, torch.as_tensor(g, device=device), torch.as_tensor(r, device=device),
                         torch.as_tensor(h, device=device)).float().cpu()
    if known is not None:
        scores = scores.masked_fill(known.mask(g, r, h, len(entity_names)), float("-inf"))
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    return [[(entity_names[i], float(s)) for i, s in zip(idx.tolist(), val.tolist()) if s != float("-inf")]
            for idx, val in zip(top.indices, top.values)]
