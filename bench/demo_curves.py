"""How the demo learns: test metrics per relation at every validation, with the recipe's
contrastive weight and with the paper's.

    dvc repro && python bench/demo_curves.py      # writes bench/results/demo_curves.md (~7 min, 2 cores)

Trains the recipe with all modalities in the pinned CPU mode, one thread per run, two at a time,
once with the recipe's params and once with the paper's contrastive weight (DB15K's mu 0.01), for
each seed, and evaluates the test set (filtered, realistic ranks) at every validation. A
diagnosis, not a model selection: training still selects its weights on valid MRR; the curves
show what the selected epoch misses. The README's account of the demo's contrastive weight is
read from this file.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_ablation import MODALITIES, Job, parse_args, run_jobs, write  # noqa: E402

COLUMNS = ("valid MRR", "test MRR", "located_in tail MRR", "made_of tail MRR", "has_color tail MRR")
VARIANT = "all modalities"


def main() -> None:
    args = parse_args(__doc__, "bench/results/demo_curves.md")
    from mygo.params import load_params
    params = load_params(args.params)
    settings = {f"mu {params.train.mu:g} (the recipe)": (), "mu 0.01 (the paper's)": (("mu", 0.01),)}
    jobs = [Job(label, params.max_vis_token, tuple(MODALITIES[VARIANT].items()), seed, train=train, curve=True)
            for label, train in settings.items() for seed in args.seed_list]
    by_label, minutes = run_jobs(jobs, args)
    text = [f"Command: `python bench/demo_curves.py --seeds {args.seeds}` ({VARIANT}, the demo recipe otherwise, "
            f"{params.train.epochs} epochs, reproducible CPU mode; {len(jobs)} runs in {minutes:.1f} min on "
            f"{args.workers} workers)\n",
            "Test set, filtered, realistic ranks, at every validation; `located_in` tail MRR is what the graph "
            "answers, `made_of` tail MRR what only the descriptions answer, `has_color` tail MRR what only the "
            "images answer. `*`: the epoch training selects "
            "(best valid MRR).\n"]
    for label in settings:
        for seed, run in zip(args.seed_list, by_label[label]):
            text.append(f"\n{label}, seed {seed}:\n\n| epoch | " + " | ".join(COLUMNS) + " |\n|---|"
                        + "---|" * len(COLUMNS))
            for row in run["curve"]:
                mark = "*" if row["epoch"] == run["best_epoch"] else ""
                values = [row[column] for column in COLUMNS]
                text.append(f"| {row['epoch']}{mark} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    write(args.out, "\n".join(text) + "\n")


if __name__ == "__main__":
    main()
