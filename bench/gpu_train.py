"""A training run in time-boxed pieces (for a GPU window), without DVC: the train stage's library
calls on a prepared graph and token folder, stopped after `--minutes` and resumed by the next
call from the same `--state` file; with `--test`, the best checkpoint so far is evaluated on test.

    python bench/gpu_train.py gpu_inputs/kg gpu_inputs/entity_tokens gpu_inputs/params.yaml OUT \\
        --minutes 2 --state OUT/state.pt [--test]

Writes under OUT: loss.csv and valid.csv (the curves, as the train stage writes them), and
run.json (the pieces so far: epochs, seconds per epoch, device; with --test the test metrics).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from mygo.config import run_main
from mygo.device import pick_device
from mygo.evaluation import compute_ranks, metrics_from_ranks
from mygo.folders import EntityTokensFolder, KGFolder
from mygo.io import write_json
from mygo.params import load_params
from mygo import fast
from mygo.models import build_model
from mygo.training import Trainer, fingerprint
import version

log = logging.getLogger("mygo.gpu_train")


def timed(trainer: Trainer, method: str) -> list[float]:
    """Time each call of `trainer.<method>` (waiting for the device), into the list returned."""
    times, original = [], getattr(trainer, method)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        out = original(*args, **kwargs)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        times.append(time.perf_counter() - started)
        return out
    setattr(trainer, method, wrapper)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kg_dir")
    parser.add_argument("tokens_dir")
    parser.add_argument("params", help="a complete params file (the recipe's)")
    parser.add_argument("out", help="folder for loss.csv, valid.csv and run.json")
    parser.add_argument("--state", required=True, help="resume state: continued when present")
    parser.add_argument("--minutes", type=float, required=True, help="stop at the first epoch end past this")
    parser.add_argument("--test", action="store_true", help="evaluate the best model so far on test")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="train.* overrides, e.g. eval_every=10 (recorded in run.json)")
    args = parser.parse_args()
    params = load_params(args.params)
    config = params.train
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        kind = type(getattr(config, key))
        if kind is bool and value.lower() not in ("true", "false"):
            raise SystemExit(f"--set {item}: expected true or false")
        overrides[key] = value.lower() == "true" if kind is bool else kind(value)
    config = dataclasses.replace(config, **overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kg, tokens_dir = KGFolder(args.kg_dir), EntityTokensFolder(args.tokens_dir)
    num_entities, num_relations = len(kg.entities()), len(kg.relations())
    tokens = tokens_dir.read(num_entities)
    model = build_model(dataclasses.asdict(config.model), num_entities, num_relations, tokens, seed=config.seed,
                        ops=fast.ops())
    splits = kg.splits()
    run_id = fingerprint(dataclasses.asdict(config), dataclasses.asdict(model.config), kg.split_file("train"),
                         kg.split_file("valid"), *tokens_dir.files())
    device = pick_device(config.device)
    record_path = out / "run.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"pieces": []}
    started = time.perf_counter()
    trainer = Trainer(model, config, splits["train"], splits["valid"], args.state, run_id, out, progress=False)
    trainer.restore()
    validations, saves = timed(trainer, "validate"), timed(trainer, "save_resume")
    summary = trainer.run(args.minutes * 60)
    seconds = time.perf_counter() - started
    done_before = record["pieces"][-1]["epochs_after"] if record["pieces"] else 0
    epochs = trainer.epoch_seconds         # this piece's epochs, training alone (validation apart)
    record["pieces"].append({"epochs_before": done_before, "epochs_after": summary["epochs"], "seconds": seconds,
                             "seconds_per_epoch": seconds / max(1, summary["epochs"] - done_before),
                             "cuda_graph": config.cuda_graph,
                             "graph_failed": trainer.graphed.failed if trainer.graphed is not None else None,
                             "epoch_seconds": epochs,
                             # the first epoch of a process loads kernels (and captures the step)
                             "median_epoch_seconds": statistics.median(epochs[1:] or epochs) if epochs else None,
                             "validation_seconds": validations,
                             "resume_save_seconds": saves})      # the snapshot; the write goes on behind
    record.update(version=version.current(), device=str(device), gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                  torch=torch.__version__, cuda=torch.version.cuda, train_config=dataclasses.asdict(config),
                  overrides=overrides, model_config=dataclasses.asdict(model.config), summary=summary)
    if args.test:
        model.eval()
        eval_started = time.perf_counter()
        ranks = compute_ranks(model, splits["test"], list(splits.values()), config.eval_batch_size, device,
                              progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        record["test_eval_seconds"] = time.perf_counter() - eval_started
        record["test"], _ = metrics_from_ranks(ranks)
        log.info("test (best epoch %d): MRR %.4f Hits@1 %.4f Hits@3 %.4f Hits@10 %.4f", summary["best_epoch"],
                 record["test"]["mrr"], record["test"]["hits@1"], record["test"]["hits@3"],
                 record["test"]["hits@10"])
    write_json(record_path, record)
    log.info("piece: epochs %d -> %d in %.1f s", done_before, summary["epochs"], seconds)


if __name__ == "__main__":
    run_main(main)
