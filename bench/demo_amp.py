"""bf16 autocast against float32 on the demo, over several seeds (mean ± standard deviation).

    dvc repro && python bench/demo_amp.py      # writes bench/results/demo_amp.md (~6 min, 2 cores)

Trains the demo recipe in the fast CPU mode (`reproducible: false`, one thread per run, two runs
at a time) with `train.amp: false` (float32) and `train.amp: true` (bf16 autocast where the CPU
computes bf16 natively, mygo.device.use_bf16), and evaluates both in float32. On a CPU without
native bf16 both rows are float32, and the file says so.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_ablation import Job, parse_args, run_jobs, summarise, table, write  # noqa: E402


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"   # two runs share two cores
    from mygo import reproducible
    reproducible.apply(False)
    reproducible.flush_denormals()


def main() -> None:
    args = parse_args(__doc__, "bench/results/demo_amp.md")
    import torch
    from harness import cpu_name
    from mygo.device import cpu_bf16_units
    from mygo.params import load_params
    params = load_params(args.params)
    seeds = args.seed_list
    labels = {False: "float32 (train.amp: false)", True: "bf16 autocast (train.amp: true)"}
    jobs = [Job(labels[amp], params.max_vis_token, (), seed, train=(("amp", amp),)) for amp in (False, True) for seed in seeds]
    by_label, minutes = run_jobs(jobs, args, initializer=_worker_init)
    rows = {label: summarise(runs) for label, runs in by_label.items()}
    (m32, s32), (m16, s16) = (rows[labels[amp]]["test MRR"] for amp in (False, True))
    units = cpu_bf16_units()
    verdict = (f"bf16 - float32 test MRR: {m16 - m32:+.3f}; twice the larger standard deviation: "
               f"{2 * max(s32, s16):.3f}: {'within' if abs(m16 - m32) <= 2 * max(s32, s16) else 'OUTSIDE'} the seed noise")
    write(args.out, f"Command: `python bench/demo_amp.py --seeds {args.seeds}` (the demo recipe, {params.train.epochs} "
          f"epochs, fast CPU mode, torch {torch.__version__}; {os.cpu_count()}-core {cpu_name()}"
          f"{'' if units else ': no native bf16, so both rows are float32'}; {len(jobs)} runs in {minutes:.1f} min on {args.workers} "
          f"workers)\n\nTest set, filtered, realistic ranks, evaluated in float32, mean ± standard deviation over "
          f"seeds {seeds}:\n\n" + table(rows) + "\n" + verdict + "\n")


if __name__ == "__main__":
    main()
