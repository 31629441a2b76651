"""Modality ablations on the demo: which modality answers which test triples.

    python bench/demo_ablation.py [--out bench/results/demo_ablation.md]

Needs the pipeline outputs (`dvc repro`). Trains the demo config (params.yaml `train`) with
each modality switch, plus an untrained model, and reports test MRR (realistic, filtered) on
all triples, on `made_of` (answer only in the text) and on `has_color` (answer only in images).
"""
import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from mygo import tables
from mygo.params import load_params
from mygo.evaluation import compute_ranks
from mygo.graph import read_split
from mygo.training import build_model, load_entity_tokens, train

VARIANTS = {
    "untrained": None,
    "structure only": {"use_visual": False, "use_text": False},
    "structure + text": {"use_visual": False},
    "structure + visual": {"use_text": False},
    "all modalities": {},
}


def mrr(ranks, select):
    return float((1.0 / ranks["realistic"][select]).mean()) if select.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kg", default="data/processed/kg")
    parser.add_argument("--tokens", default="data/processed/entity_tokens")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="bench/results/demo_ablation.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = load_params(args.params)
    model_params, config = dataclasses.asdict(params.model), params["train"]
    kg = Path(args.kg)
    relations = tables.read_relations(kg / "relations.parquet")["name"].to_pylist()
    N = len(tables.read_entities(kg / "entities.parquet"))
    tokens = load_entity_tokens(args.tokens, N)
    splits = {s: read_split(kg, s) for s in ("train", "valid", "test")}
    rows = []
    for name, switches in VARIANTS.items():
        started = time.perf_counter()
        model = build_model({**model_params, **(switches or {})}, N, len(relations), tokens, seed=config.seed)
        if switches is not None:
            train(model, config, splits["train"], splits["valid"], progress=False)
        ranks = compute_ranks(model, splits["test"], list(splits.values()), progress=False)
        rel = ranks["relation"]
        tail = ~ranks["predict_head"]
        row = {"variant": name, "test MRR": mrr(ranks, np.ones_like(tail))}
        for relation in ("made_of", "has_color"):
            r = relations.index(relation)
            row[f"{relation} MRR"] = mrr(ranks, rel == r)
            row[f"{relation} tail MRR"] = mrr(ranks, (rel == r) & tail)
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
              for r in rows]
    text = (f"Command: `python bench/demo_ablation.py` (torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, CPU)\n\n" + "\n".join(lines) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
