"""What each modality and m contribute on the demo, over several seeds (mean ± standard deviation).

    dvc repro && python bench/demo_ablation.py      # writes bench/results/demo_ablation.md (~15 min, 2 cores)

Trains the demo recipe (params.yaml `train`, byte-reproducible mode) with each modality switch and
m = max_vis_token 4 / 8 / 16 (tokens re-selected from the pipeline's image and text tokens, as
`dvc exp run -S max_vis_token=...` would), once per seed, two runs at a time (one thread each),
and reports filtered test MRR (realistic ranks) on all test triples and on each relation that
one modality answers: `located_in` (the graph), `made_of` (the text), `has_color` (the images).
The findings at the end are computed from the table, not written by hand; the README's demo
tables are this file's (tests/test_docs.py checks they are equal).
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

RELATIONS = ("located_in", "made_of", "has_color")
TAILS = ("made_of", "has_color")       # (object, relation, ?): the material, the colour
MODALITIES = {                       # label: model switches (m = the params' max_vis_token)
    "structure only": {"use_visual": False, "use_text": False},
    "structure + text": {"use_visual": False},
    "structure + visual": {"use_text": False},
    "all modalities": {},
}
M_SWEEP = (4, 8, 16)


@dataclasses.dataclass(frozen=True)
class Job:
    label: str
    m: int
    switches: tuple
    seed: int
    trained: bool = True
    train: tuple = ()                # (key, value) overrides of train params (e.g. ("mu", 0.01), ("amp", True))
    curve: bool = False              # also the test metrics at every validation (bench/demo_curves.py)
    split: str = "test"              # the split the row reports: "valid" where a choice is made on it


def _worker_init() -> None:
    from mygo import reproducible
    reproducible.apply(True)
    reproducible.flush_denormals()          # as the stages do


def run_job(job: Job, args: argparse.Namespace) -> dict:
    """Train (unless the job is the untrained baseline) and evaluate one variant and seed."""
    import logging
    import tempfile

    from mygo import fast
    from mygo.evaluation import compute_ranks
    from mygo.folders import EntityTokensFolder, ImageTokensFolder, KGFolder, TextTokensFolder
    from mygo.models import build_model
    from mygo.params import load_params
    from mygo.selection import select_entity_tokens
    from mygo.training import train

    logging.basicConfig(level=logging.WARNING)
    params = load_params(args.params)
    kg = KGFolder(Path(args.data) / "kg")
    relations, names = kg.relation_names(), kg.entity_names()
    selection = select_entity_tokens(names, params.select_tokens, job.m, params.max_txt_token,
                                     text=TextTokensFolder(Path(args.data) / "text_tokens"),
                                     images=ImageTokensFolder(Path(args.data) / "image_tokens"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = EntityTokensFolder(Path(tmp) / "tokens")
        folder.write(selection.table, selection.visual_table, selection.text_table, selection.summary)
        tokens = folder.read(len(names))
    config = dataclasses.replace(params.train, seed=job.seed, **dict(job.train))
    model = build_model({**dataclasses.asdict(config.model), **dict(job.switches)}, len(names), len(relations),
                        tokens, seed=job.seed, ops=fast.ops())
    splits = kg.splits()

    def test_row(tails=TAILS, split="test") -> dict:
        """Filtered MRR (realistic ranks) on all triples of `split`, per relation, and in the tail
        direction for the relations in `tails`."""
        ranks = compute_ranks(model, splits[split], list(splits.values()), progress=False)
        reciprocal = 1.0 / ranks["realistic"]
        row = {f"{split} MRR": float(reciprocal.mean())}
        for relation in RELATIONS:
            of_relation = ranks["relation"] == relations.index(relation)
            row[f"{relation} MRR"] = float(reciprocal[of_relation].mean())
            if relation in tails:
                row[f"{relation} tail MRR"] = float(reciprocal[of_relation & ~ranks["predict_head"]].mean())
        return row

    class Curve:
        """A `train(live=...)` log that evaluates the test set at every validation."""
        def __init__(self):
            self.rows = []

        def update(self, state) -> None:
            if len(state.valid) > len(self.rows):
                training = model.training
                self.rows.append({"epoch": state.valid[-1]["epoch"], "valid MRR": state.valid[-1]["mrr"],
                                  **test_row(RELATIONS)})
                model.train(training)

        def finish(self, summary) -> None:
            self.best_epoch = summary["best_epoch"]

    started = time.perf_counter()
    curve = Curve() if job.curve else None
    if job.trained:
        train(model, config, splits["train"], splits["valid"], progress=False, live=curve)
    row = test_row(split=job.split)
    print(f"{job.label} (m = {job.m}, seed {job.seed}): "
          + ", ".join(f"{k} {v:.3f}" for k, v in row.items()) + f" [{time.perf_counter() - started:.0f} s]",
          file=sys.stderr, flush=True)
    if curve is not None:
        row.update(curve=curve.rows, best_epoch=curve.best_epoch)
    return row


def _run(item):
    job, args = item
    return job, run_job(job, args)


def summarise(runs: list[dict]) -> dict:
    """{metric: (mean, std)} over seeds (std: sample standard deviation; 0 for one run)."""
    return {key: (statistics.mean(r[key] for r in runs),
                  statistics.stdev(r[key] for r in runs) if len(runs) > 1 else 0.0) for key in runs[0]}


def table(rows: dict[str, dict]) -> str:
    keys = list(next(iter(rows.values())))
    lines = ["| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for label, stats in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in (stats[k] for k in keys)) + " |")
    return "\n".join(lines) + "\n"


def lift(rows: dict, better: str, base: str, metric: str, seeds: int) -> tuple[float, float | None, str]:
    """Mean difference, Welch's p-value over the seeds and the verdict of `mygo compare --baseline`
    (mygo.compare: Welch's two-sided t-test, p < 0.05 above the noise; one seed: cannot tell)."""
    from mygo.compare import said, welch_summary
    (m1, s1), (m0, s0) = rows[better][metric], rows[base][metric]
    diff, p = welch_summary(m0, s0, seeds, m1, s1, seeds)
    return diff, p, said(p)


def finding(what: str, rows: dict, better: str, base: str, metric: str, seeds: int,
            compared: str = "") -> tuple[str, float, float | None, str]:
    """A findings line, `better` against `base` on `metric` (`compared`: how the line names the
    two, "better against base" by default), with the difference, p-value and verdict of `lift`."""
    diff, p, verdict = lift(rows, better, base, metric, seeds)
    shown = "" if p is None else ("p < 0.001: " if p < 0.001 else f"p = {p:.3f}: ")
    return (f"- {what}: {metric} {diff:+.3f} ({compared or f'{better} against {base}'}); Welch's t over {seeds} "
            f"seeds a side: {shown}{verdict}", diff, p, verdict)


def findings(modalities: dict, sweep: dict, seeds: int) -> str:
    def line(what: str, better: str, base: str, metric: str, table: dict) -> str:
        return finding(what, table, better, base, metric, seeds)[0]

    lines = []
    for better, base, relation, what in (("structure + text", "structure only", "made_of", "the text"),
                                         ("structure + visual", "structure only", "has_color", "the images")):
        for metric in (f"{relation} MRR", f"{relation} tail MRR"):
            lines.append(line(what, better, base, metric, modalities))
    best_subset = max((k for k in MODALITIES if k != "all modalities"), key=lambda k: modalities[k]["test MRR"][0])
    lines.append(line("all modalities", "all modalities", best_subset, "test MRR", modalities))
    for metric in ("test MRR", "has_color MRR", "has_color tail MRR"):
        values = [sweep[f"m = {k}"][metric][0] for k in M_SWEEP]
        lines.append(f"- m = {' / '.join(map(str, M_SWEEP))}: {metric} {' / '.join(f'{v:.3f}' for v in values)}")
    for a, b in zip(M_SWEEP, M_SWEEP[1:]):
        lines.append(line("m", f"m = {b}", f"m = {a}", "has_color MRR", sweep))
    return "\n".join(lines) + "\n"


def parse_args(description: str, out: str, extra=None) -> argparse.Namespace:
    """The demo scripts' common arguments (data, params, output file, seeds, workers); `extra`
    adds a script's own to the parser."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/processed", help="the pipeline's outputs (kg, image and text tokens)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=out)
    parser.add_argument("--seeds", default="2024,1,2", help="comma-separated training seeds")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--cache", default="", metavar="DIR",
                        help="keep each run's result in DIR and reuse it when nothing it depends on changed")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    return args


def job_keys(jobs: list[Job], args: argparse.Namespace, initializer) -> dict[Job, str]:
    """What each run's result depends on, hashed: the settings it trains with (the params with the
    job's overrides: the same settings reached from two params files are one key), its CPU mode,
    the pipeline outputs it reads and the library's code (those files hashed once for all jobs).
    The pinned mode makes a run's result a function of these, so a run with the same key need not
    train again."""
    import hashlib
    import json

    from mygo.params import load_params
    params = load_params(args.params)
    data, code = Path(args.data), Path(__file__).resolve().parents[1] / "src/mygo"
    inputs = hashlib.sha256()
    for path in [*sorted(p for d in ("kg", "image_tokens", "text_tokens") for p in (data / d).rglob("*") if p.is_file()),
                 *sorted(code.rglob("*.py")), *sorted(code.rglob("*.c"))]:
        inputs.update(path.name.encode() + path.read_bytes())
    mode = f"{initializer.__module__}.{initializer.__qualname__}"

    def key(job: Job) -> str:
        config = dataclasses.asdict(dataclasses.replace(params.train, seed=job.seed, **dict(job.train)))
        config["model"].update(dict(job.switches))
        settings = {"train": config, "m": job.m, "max_txt_token": params.max_txt_token,
                    "select_tokens": dataclasses.asdict(params.select_tokens), "trained": job.trained,
                    "split": job.split, "curve": job.curve, "mode": mode, "inputs": inputs.hexdigest()}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return {job: key(job) for job in jobs}


def run_jobs(jobs: list[Job], args: argparse.Namespace, initializer=None) -> tuple[dict[str, list[dict]], float]:
    """Every job in `args.workers` spawned processes (`initializer` pins each one's CPU mode);
    the result rows by job label, and the minutes it took. With `args.cache`, a job whose key
    (`job_keys`) has a stored row is not run again, and each new row is stored as it finishes."""
    import json
    started = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    initializer = initializer or _worker_init
    keys = job_keys(jobs, args, initializer) if cache else {}
    stored = {job: json.loads((cache / f"{keys[job]}.json").read_text()) for job in jobs
              if cache and (cache / f"{keys[job]}.json").is_file()}
    todo = [job for job in jobs if job not in stored]
    if stored:
        print(f"{len(stored)} of {len(jobs)} runs from {cache}", file=sys.stderr, flush=True)
    results = dict(stored)
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=initializer) as pool:
        for job, row in pool.imap_unordered(_run, [(job, args) for job in todo], chunksize=1):
            results[job] = row
            if cache:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / f"{keys[job]}.json.tmp").write_text(json.dumps(row))
                (cache / f"{keys[job]}.json.tmp").replace(cache / f"{keys[job]}.json")
    by_label: dict[str, list[dict]] = {}
    for job in jobs:                                       # the jobs' order: seeds in the order given
        by_label.setdefault(job.label, []).append(results[job])
    return by_label, (time.perf_counter() - started) / 60


def write(out: str, text: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)


def main() -> None:
    args = parse_args(__doc__, "bench/results/demo_ablation.md")
    from mygo.params import load_params
    params = load_params(args.params)
    seeds = args.seed_list
    m = params.max_vis_token
    jobs = [Job("untrained", m, (), seed, trained=False) for seed in seeds]
    jobs += [Job(label, m, tuple(switches.items()), seed) for label, switches in MODALITIES.items() for seed in seeds]
    jobs += [Job(f"m = {k}", k, (), seed) for k in M_SWEEP if k != m for seed in seeds]
    by_label, minutes = run_jobs(jobs, args)
    modalities = {label: summarise(by_label[label]) for label in ["untrained", *MODALITIES]}
    sweep = {f"m = {k}": summarise(by_label["all modalities" if k == m else f"m = {k}"]) for k in M_SWEEP}
    text = (f"Command: `python bench/demo_ablation.py --seeds {args.seeds}` (the demo recipe, "
            f"{params.train.epochs} epochs, reproducible CPU mode; {len(jobs)} runs in "
            f"{minutes:.1f} min on {args.workers} workers)\n\n"
            f"Modalities (m = {m}), test set, filtered, realistic ranks, mean ± standard deviation over seeds "
            f"{seeds}:\n\n" + table(modalities)
            + "\nm = max_vis_token, all modalities, same seeds:\n\n" + table(sweep)
            + "\nFindings (computed from the tables above, with `mygo compare`'s test):\n\n"
            + findings(modalities, sweep, len(seeds)))
    write(args.out, text)


if __name__ == "__main__":
    main()
