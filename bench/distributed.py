"""Per-rank memory and time of a data-parallel training step (torchrun, gloo on CPU).

    python bench/distributed.py --synthetic 64000 --preset db15k --nprocs 1,2 --encoder-chunk 4096 \\
        --out bench/results/distributed_64000

For each process count the same step (synthetic graph, model, batch and seed as bench/harness.py)
runs under `torchrun --standalone`, with the machine's threads split between the ranks; every rank
reports its peak RSS and the step's seconds. Each rank encodes its share of the entities and
scores its share of the batch (mygo.distributed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import PRESETS, build, load_graph, save  # noqa: E402
from mygo import distributed  # noqa: E402
from mygo.training import TrainParams, adam, train_step, training_queries  # noqa: E402


def rank_main(args) -> None:
    """One rank: a warm-up step unless --no-warmup, then one timed step; rank 0 writes every
    rank's figures to --result."""
    distributed.init_from_env("cpu")
    torch.set_num_threads(max(1, args.threads // distributed.world_size()))
    preset = dict(PRESETS[args.preset])
    preset["model"] = {**preset["model"], "encoder_chunk": args.encoder_chunk}
    N, R, splits, label = load_graph(args)
    model = build(N, R, preset, distributed_step=distributed.active()).train()
    config = TrainParams(device="cpu", batch_size=args.batch_size, lr=preset["lr"], mu=preset["mu"])
    optimizer = adam(model, config.lr)
    g = torch.Generator().manual_seed(0)
    known, relation, target, head = training_queries(splits["train"], "random", g)
    times = []
    for b in range(1 if args.no_warmup else 2):
        sl = slice(b * args.batch_size, (b + 1) * args.batch_size)
        started = time.perf_counter()
        loss = train_step(model, optimizer, config, (known[sl], relation[sl], head[sl], target[sl]), g,
                          torch.device("cpu"))["loss"]
        times.append(time.perf_counter() - started)
    mine = {"rank": distributed.rank(), "step_seconds": times[-1], "loss": loss, "entities_encoded":
            -(-N // distributed.world_size()), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    everyone = [mine]
    if distributed.active():
        everyone = [None] * distributed.world_size()
        torch.distributed.all_gather_object(everyone, mine)
    if distributed.rank() == 0:
        Path(args.result).write_text(json.dumps({"ranks": everyone, "dataset": label, "entities": N,
                                                 "threads_per_rank": torch.get_num_threads()}))
    if distributed.active():
        torch.distributed.destroy_process_group()


def markdown(runs: list[dict], meta: dict) -> str:
    lines = [f"# Distributed step: {meta['dataset']} ({meta['preset']} config)", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}; torch {meta['torch']}; batch {meta['batch_size']}; encoder chunk "
             f"{meta['encoder_chunk'] or 'none (one pass)'}; gloo.", "",
             "| processes | threads per rank | entities encoded per rank | s / step | peak RSS per rank (MiB) |",
             "|---|---|---|---|---|"]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['nprocs']} | | | failed: {run['error']} | |")
            continue
        ranks = run["ranks"]
        seconds = max(r["step_seconds"] for r in ranks)
        rss = ", ".join(f"{r['peak_rss_mib']:.0f}" for r in ranks)
        lines.append(f"| {run['nprocs']} | {run['threads_per_rank']} | {ranks[0]['entities_encoded']} | "
                     f"{seconds:.1f} | {rss} |")
    lines += ["", "s / step: the slowest rank's timed step" + (" (the first step: --no-warmup)." if meta["no_warmup"]
                                                               else ", after one warm-up step.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, required=True, help="number of entities of a random graph")
    parser.add_argument("--preset", default="db15k", choices=sorted(PRESETS))
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--encoder-chunk", type=int, default=0)
    parser.add_argument("--nprocs", default="1,2", help="comma-separated process counts")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads shared by the ranks")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--out", help="output prefix (writes .json and .md)")
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dataset, args.max_vis_token, args.max_txt_token = None, None, None
    if args.result:
        rank_main(args)
        return
    forwarded = sys.argv[1:]
    runs = []
    for nprocs in [int(n) for n in args.nprocs.split(",")]:
        print(f"running {nprocs} process(es) ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc-per-node={nprocs}", __file__, *forwarded, "--result", str(result)],
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not result.exists():
                runs.append({"nprocs": nprocs, "error": proc.stderr.strip()[-300:]})
                print(f"  failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            runs.append({"nprocs": nprocs, **json.loads(result.read_text())})
        print(f"  {json.dumps(runs[-1])}", file=sys.stderr)
    ok = [r for r in runs if "error" not in r]
    meta = {"command": "python bench/distributed.py " + " ".join(forwarded), "machine": f"{platform.machine()} "
            f"{os.cpu_count()} cpus", "torch": torch.__version__, "batch_size": args.batch_size, "preset": args.preset,
            "encoder_chunk": args.encoder_chunk, "no_warmup": args.no_warmup,
            "dataset": ok[0]["dataset"] if ok else "?"}
    save(args.out, {"meta": meta, "runs": runs}, markdown(runs, meta))


if __name__ == "__main__":
    main()
