"""Ablations on the demo: which modality answers which test triples, what m changes, and the
two initialisation schemes.

    python bench/demo_ablation.py [--out bench/results/demo_ablation.md] [--seeds 2024,1]

Needs the pipeline outputs (`dvc repro`). Trains the demo config (params.yaml `train`) with
each modality switch, plus an untrained model, and reports test MRR (realistic, filtered) on
all triples, on `made_of` (answer only in the text) and on `has_color` (answer only in images).
Then, over several seeds (mean +- standard deviation): max_vis_token m = 4 / 8 / 16 (tokens
re-selected from the pipeline's image and text tokens, as `dvc exp run -S max_vis_token=...`
would), and `train.model.init` reference against ours.
"""
import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from mygo import fast
from mygo.evaluation import compute_ranks
from mygo.folders import EntityTokensFolder, ImageTokensFolder, KGFolder, TextTokensFolder
from mygo.models import build_model
from mygo.params import load_params
from mygo.selection import select_entity_tokens
from mygo.training import train

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
    parser.add_argument("--seeds", default="2024,1", help="seeds of the m sweep and the init comparison")
    parser.add_argument("--image-tokens", default="data/processed/image_tokens")
    parser.add_argument("--text-tokens", default="data/processed/text_tokens")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = load_params(args.params)
    model_params, config = dataclasses.asdict(params.train.model), params.train
    kg = KGFolder(args.kg)
    relations = kg.relation_names()
    N = len(kg.entities())
    tokens = EntityTokensFolder(args.tokens).read(N)
    splits = kg.splits()
    rows = []
    for name, switches in VARIANTS.items():
        model = build_model({**model_params, **(switches or {})}, N, len(relations), tokens, seed=config.seed,
                            ops=fast.ops())
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
        rows.append(row)
        print(json.dumps(row), flush=True)
    text = (f"Command: `python bench/demo_ablation.py` (torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, CPU)\n\n" + table(rows))

    # m sweep and init comparison, several seeds
    seeds = [int(x) for x in args.seeds.split(",")]
    sweep = []
    for label, m, overrides in [("m = 4", 4, {}), ("m = 8", 8, {}), ("m = 16", 16, {}),
                                ("m = 8, init ours", 8, {"init": "ours"})]:
        m_tokens = tokens_with_m(args, kg, params, m)
        runs = []
        for seed in seeds:
            model = build_model({**model_params, **overrides}, N, len(relations), m_tokens, seed=seed, ops=fast.ops())
            train(model, dataclasses.replace(config, seed=seed), splits["train"], splits["valid"], progress=False)
            ranks = compute_ranks(model, splits["test"], list(splits.values()), progress=False)
            runs.append({"test MRR": mrr(ranks, np.ones(len(ranks["relation"]), dtype=bool)),
                         "has_color MRR": mrr(ranks, ranks["relation"] == relations.index("has_color"))})
            print(json.dumps({"variant": label, "seed": seed, **runs[-1]}), flush=True)
        row = {"variant": label}
        for key in runs[0]:
            values = np.array([r[key] for r in runs])
            row[key] = f"{values.mean():.3f} +- {values.std():.3f}"
        sweep.append(row)
    text += (f"\nm sweep and initialisation, mean +- standard deviation over seeds {seeds} "
             f"(test set, realistic filtered ranks):\n\n" + table(sweep))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
              for r in rows]
    return "\n".join(lines) + "\n"


def tokens_with_m(args, kg: KGFolder, params, m: int):
    """The demo's entity tokens re-selected with max_vis_token = m (what select_tokens writes)."""
    import tempfile
    selection = select_entity_tokens(kg.entity_names(), params.select_tokens, m, params.max_txt_token,
                                     text=TextTokensFolder(args.text_tokens), images=ImageTokensFolder(args.image_tokens))
    with tempfile.TemporaryDirectory() as tmp:
        folder = EntityTokensFolder(Path(tmp) / "tokens")
        folder.write(selection.table, selection.visual_table, selection.text_table, selection.summary)
        return folder.read(len(selection.table))


if __name__ == "__main__":
    main()
