"""bf16 autocast against float32 on the demo's curves, over seeds, in one process (for a GPU window).

    python bench/gpu_amp.py gpu_inputs/demo OUT/amp_curves.json --seeds 2024 1 2

Trains the demo recipe (FOLDER's params.yaml on its kg/ and entity_tokens/, as `bench/gpu_check.sh
--prepare` copies them from `dvc repro`'s outputs) once per seed with `train.amp: false` and once
with `train.amp: true`, seeds interleaved, and evaluates each best model on test in float32. Writes
one JSON: per run its valid curve, test metrics, whether bf16 ran (it needs CUDA or a CPU with bf16
units) and its seconds. `python bench/gpu_report.py` turns it into amp.md: the curves and test MRR
side by side with Welch's t over the seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import torch

from mygo import fast
from mygo.config import run_main
from mygo.evaluation import compute_ranks, metrics_from_ranks
from mygo.folders import EntityTokensFolder, KGFolder
from mygo.io import write_json
from mygo.models import build_model
from mygo.params import load_params
from mygo.training import Trainer, fingerprint
import version

log = logging.getLogger("mygo.gpu_amp")


def train_one(folder: Path, config, amp: bool, seed: int, device: str) -> dict:
    config = dataclasses.replace(config, amp=amp, seed=seed, device=device)
    kg, tokens_dir = KGFolder(folder / "kg"), EntityTokensFolder(folder / "entity_tokens")
    num_entities = len(kg.entities())
    model = build_model(dataclasses.asdict(config.model), num_entities, len(kg.relations()),
                        tokens_dir.read(num_entities), seed=seed, ops=fast.ops())
    splits = kg.splits()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(model, config, splits["train"], splits["valid"], Path(scratch) / "state.pt",
                          fingerprint(dataclasses.asdict(config)), Path(scratch), progress=False)
        summary = trainer.run()
    seconds = time.perf_counter() - started
    model.eval()
    ranks = compute_ranks(model, splits["test"], list(splits.values()), config.eval_batch_size, trainer.device,
                          progress=False)
    test, _ = metrics_from_ranks(ranks)
    log.info("amp %s seed %d (bf16 %s): best valid MRR %.4f at epoch %d, test MRR %.4f, %.1f s", amp, seed,
             trainer.use_amp, summary["valid"]["mrr"], summary["best_epoch"], test["mrr"], seconds)
    return {"amp": amp, "bf16": trainer.use_amp, "seed": seed, "seconds": seconds, "best_epoch": summary["best_epoch"],
            "valid": [{"epoch": v["epoch"], "mrr": v["mrr"]} for v in trainer.state.valid],
            "test": {k: test[k] for k in ("mrr", "hits@1", "hits@3", "hits@10")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="kg/, entity_tokens/ and params.yaml of the demo")
    parser.add_argument("out", help="the JSON to write")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2024, 1, 2])
    parser.add_argument("--epochs", type=int, help="override train.epochs (a short check)")
    parser.add_argument("--device", default="auto", help="train.device (default: CUDA when present)")
    args = parser.parse_args()
    folder = Path(args.folder)
    config = load_params(folder / "params.yaml").train
    if args.epochs:
        config = dataclasses.replace(config, epochs=args.epochs)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu")
    record = {"version": version.current(),
              "command": f"python bench/gpu_amp.py {args.folder} OUT --seeds {' '.join(map(str, args.seeds))}"
                         + (f" --epochs {args.epochs}" if args.epochs else ""),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "torch": torch.__version__, "epochs": config.epochs, "eval_every": config.eval_every, "runs": []}
    for seed in args.seeds:                 # written after each pair, so that a stopped run keeps them
        for amp in (False, True):
            record["runs"].append(train_one(folder, config, amp, seed, args.device))
        write_json(Path(args.out), record)


if __name__ == "__main__":
    run_main(main)
