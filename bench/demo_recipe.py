"""The demo recipe's departures from the paper's values, each kept only where validation shows it.

    dvc repro && python bench/demo_recipe.py      # writes bench/results/demo_recipe.md (~35 min, 2 cores)

The demo recipe (params.yaml) departs from the paper's DB15K recipe (conf/recipe/db15k.yaml) in
the contrastive weight mu and in the dropouts. This trains the demo recipe with all modalities
(pinned CPU mode, one thread per run, two runs at a time), then each departure reverted to the
paper's value alone, then all of them reverted, once per seed, and reports the metrics of
bench/demo_ablation.py on the **validation** set. Test metrics are reported for the chosen
recipe only (bench/demo_ablation.py).

The rule, applied by this script and written into the result file, is backward elimination on
valid MRR (the metric training selects on) with the test of `mygo compare --baseline` and of the
demo's findings (Welch's t over the seeds, two-sided, p < 0.05): a departure is above the noise
when the recipe's valid MRR is above that of the variant reverting it with p < 0.05. When every
departure is, the recipe stands. Otherwise the departure with the largest p among those that are
not is reverted to the paper's value, params.yaml is changed so, and this script runs again:
one departure a round, since the others' effects may depend on it. tests/test_docs.py checks that
params.yaml is the recipe of bench/results/demo_recipe.md and that it stands there.

The model's size, the batch, the epochs and the learning-rate schedule are set by the demo's size
and a budget of minutes on two cores, not judged here; training selects its epoch on valid MRR.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_ablation import Job, finding, parse_args, run_jobs, summarise, table, write  # noqa: E402

from mygo.compare import ABOVE  # noqa: E402

PAPER = Path(__file__).resolve().parents[1] / "conf/recipe/db15k.yaml"
# Each departure: a name and the params it covers (train.<key> or train.model.<key>).
DEPARTURES = {
    "mu": ("mu",),
    "emb_dropout": ("model.emb_dropout",),
    "other dropouts": ("model.vis_dropout", "model.txt_dropout", "model.input_dropout",
                       "model.core_dropout", "model.hidden_dropout"),
}
RECIPE = "the recipe"
ALL_REVERTED = "the paper's values, all of them"
METRIC = "valid MRR"


def _get(config, key: str):
    for part in key.split("."):
        config = getattr(config, part) if not isinstance(config, dict) else config[part]
    return config


def paper_values(path: Path = PAPER) -> dict[str, float]:
    """The paper's value of every param a departure covers, from the paper's recipe file."""
    import yaml
    train = yaml.safe_load(Path(path).read_text())["train"]
    return {key: _get(train, key) for keys in DEPARTURES.values() for key in keys}


def variants(train, paper: dict[str, float]) -> dict[str, tuple[dict, dict]]:
    """label: (model switches, train overrides) over the recipe's `train` params; a departure
    whose params already hold the paper's values has no variant."""
    def revert(keys) -> tuple[dict, dict]:
        model = {k.removeprefix("model."): paper[k] for k in keys if k.startswith("model.")}
        return model, {k: paper[k] for k in keys if not k.startswith("model.")}

    def shown(keys, values) -> str:
        return ", ".join(f"{k.removeprefix('model.')} {values(k):g}" for k in keys)

    departed = {name: keys for name, keys in DEPARTURES.items()
                if any(_get(train, k) != paper[k] for k in keys)}
    out = {f"{RECIPE} ({'; '.join(shown(keys, lambda k: _get(train, k)) for keys in DEPARTURES.values())})":
           ({}, {})}
    for name, keys in departed.items():
        out[f"the paper's {name} ({shown(keys, paper.get)})"] = revert(keys)
    if len(departed) > 1:
        out[ALL_REVERTED] = revert([k for keys in departed.values() for k in keys])
    return out


def departure(label: str) -> str:
    """The departure a variant of `variants` reverts, by its label ("the paper's mu (mu 0.01)": mu)."""
    return label.removeprefix("the paper's ").split(" (")[0]


def decisions(rows: dict[str, dict], seeds: int) -> str:
    """One line per departure (the recipe against the variant that reverts it, on valid MRR, as
    the demo's findings are written), then the round's verdict (module docstring)."""
    recipe = next(label for label in rows if label.startswith(RECIPE))
    lines, weakest = [], (-1.0, "")
    for label in rows:
        if label in (recipe, ALL_REVERTED):
            continue
        name = departure(label)
        line, diff, p, verdict = finding(name, rows, recipe, label, METRIC, seeds,
                                         compared="the recipe against the paper's value")
        lines.append(line)
        if not (diff > 0 and verdict == ABOVE):
            weakest = max(weakest, (1.0 if p is None or diff <= 0 else p, name))
    if weakest[1]:
        lines.append(f"- verdict: **revert {weakest[1]}** to the paper's value (the largest p of the departures not "
                     "above the noise), then run this again")
    else:
        lines.append("- verdict: every departure is above the noise: **the recipe stands**")
    return "\n".join(lines) + "\n"


def read_table(text: str) -> dict[str, dict]:
    """The rows of a result file's table (`table`'s output) as {label: {metric: (mean, std)}}."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    keys = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[1:]:
        label, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        rows[label] = {key: tuple(float(x) for x in cell.split(" ± ")) for key, cell in zip(keys, cells)}
    return rows


DECISIONS = "\nDecisions (the rule: bench/demo_recipe.py's docstring; computed from the table as shown):\n\n"


def decide(path: str) -> None:
    """(Re)write the decisions of a result file from its own table, with the rule as it stands."""
    text = Path(path).read_text().split(DECISIONS.strip("\n"))[0].rstrip("\n") + "\n"
    seeds = len(re.search(r"over seeds \[([^\]]*)\]", text).group(1).split(","))
    write(path, text + DECISIONS + decisions(read_table(text), seeds))


def main() -> None:
    args = parse_args(__doc__, "bench/results/demo_recipe.md", extra=lambda parser: parser.add_argument(
        "--decide", metavar="FILE", help="only (re)write FILE's decisions from its table, training nothing"))
    if args.decide:
        return decide(args.decide)
    from mygo.params import load_params
    params = load_params(args.params)
    chosen = variants(params.train, paper_values())
    jobs = [Job(label, params.max_vis_token, tuple(switches.items()), seed, train=tuple(train.items()),
                split="valid")
            for label, (switches, train) in chosen.items() for seed in args.seed_list]
    by_label, minutes = run_jobs(jobs, args)
    shown = table({label: summarise(by_label[label]) for label in chosen})
    write(args.out, f"Command: `python bench/demo_recipe.py --seeds {args.seeds}` (the demo recipe, all modalities, "
          f"{params.train.epochs} epochs, reproducible CPU mode; {len(jobs)} runs in {minutes:.1f} min on "
          f"{args.workers} workers)\n\nValidation set, filtered, realistic ranks, mean ± standard deviation over seeds "
          f"{args.seed_list}:\n\n" + shown + DECISIONS + decisions(read_table(shown), len(args.seed_list)))


if __name__ == "__main__":
    main()
