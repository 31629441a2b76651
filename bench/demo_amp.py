"""bf16 autocast against float32 on the demo, over several seeds (mean ± standard deviation).

    dvc repro && python bench/demo_amp.py      # writes bench/results/demo_amp.md (~6 min, 2 cores)

Trains the demo recipe in the fast CPU mode (`reproducible: false`, one thread per run, two runs
at a time) with `train.amp: false` (float32) and `train.amp: true` (bf16 autocast where the CPU
computes bf16 natively, mygo.device.use_bf16), and evaluates both in float32. On a CPU without
native bf16 both rows are float32, and the file says so.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_ablation import Job, _run, summarise, table  # noqa: E402


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"   # two runs share two cores
    from mygo import reproducible
    reproducible.apply(False)
    reproducible.flush_denormals()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/processed", help="the pipeline's outputs (kg, image and text tokens)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="bench/results/demo_amp.md")
    parser.add_argument("--seeds", default="2024,1,2", help="comma-separated training seeds")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")
    args = parser.parse_args()
    import torch
    from mygo.device import cpu_bf16_units
    from mygo.params import load_params
    params = load_params(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    labels = {False: "float32 (train.amp: false)", True: "bf16 autocast (train.amp: true)"}
    jobs = [Job(labels[amp], params.max_vis_token, (), seed, amp=amp) for amp in (False, True) for seed in seeds]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_worker_init) as pool:
        results = pool.map(_run, [(job, args) for job in jobs], chunksize=1)
    by_label: dict[str, list[dict]] = {}
    for job, row in results:
        by_label.setdefault(job.label, []).append(row)
    rows = {label: summarise(runs) for label, runs in by_label.items()}
    (m32, s32), (m16, s16) = (rows[labels[amp]]["test MRR"] for amp in (False, True))
    units = cpu_bf16_units()
    verdict = (f"bf16 - float32 test MRR: {m16 - m32:+.3f}; twice the larger standard deviation: "
               f"{2 * max(s32, s16):.3f}: {'within' if abs(m16 - m32) <= 2 * max(s32, s16) else 'OUTSIDE'} the seed noise")
    text = (f"Command: `python bench/demo_amp.py --seeds {args.seeds}` (the demo recipe, {params.train.epochs} "
            f"epochs, fast CPU mode, torch {torch.__version__}; native bf16 on this CPU: {units or 'none, so both rows are float32'}; "
            f"{len(jobs)} runs in {(time.perf_counter() - started) / 60:.1f} min on {args.workers} workers)\n\n"
            f"Test set, filtered, realistic ranks, evaluated in float32, mean ± standard deviation over seeds "
            f"{seeds}:\n\n" + table(rows) + "\n" + verdict + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
