"""The GPU training run's figures from its committed files: a summary table beside the paper's
and the valid-MRR curve as an image (offline, vl-convert).

    python bench/gpu_report.py bench/results/db15k_h200_run

Reads run.json, valid.csv and loss.csv (written by bench/gpu_train.py, through bench/gpu_check.sh)
and writes summary.md and valid_mrr.png into the same folder.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

PAPER = {"DB15K": {"mrr": 37.72, "hits@1": 30.08, "hits@3": 41.26, "hits@10": 52.21}}   # SPEC / data README


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: not found (the run has not validated yet: nothing to report)")
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def summary(run: dict, valid: list[dict], dataset: str) -> str:
    test, config = run["test"], run["train_config"]
    epochs = run["summary"]["epochs"]
    pieces = run["pieces"]
    seconds = sum(p["seconds"] for p in pieces)
    spans = ", ".join(f"epochs {p['epochs_before']}-{p['epochs_after']} in {p['seconds']:.0f} s" for p in pieces)
    lines = [f"# {dataset} on {run['gpu']}: the recipe's settings, {epochs} of {config['epochs']} epochs", "",
             f"torch {run['torch']}, CUDA {run['cuda']}; bf16 autocast (`train.amp`), batch {config['batch_size']}; "
             f"{len(pieces)} time-boxed pieces, each resuming from the last one's state "
             f"({spans}; "
             f"{seconds / epochs:.2f} s per epoch including validation and start-up). Validation every "
             f"{config['eval_every']} epochs (the recipe: 50), best epoch {run['summary']['best_epoch']}; test "
             f"evaluated once, on the best checkpoint, in {run['test_eval_seconds']:.2f} s.", "",
             "| | epochs | MRR | Hits@1 | Hits@3 | Hits@10 |", "|---|---|---|---|---|---|"]
    if dataset in PAPER:
        p = PAPER[dataset]
        lines.append(f"| paper (BEiT-v2 images, full descriptions) | 1500 | {p['mrr']:.2f} | {p['hits@1']:.2f} | "
                     f"{p['hits@3']:.2f} | {p['hits@10']:.2f} |")
    lines.append(f"| this run (no images, entity names as text) | {epochs} | {100 * test['mrr']:.2f} | "
                 f"{100 * test['hits@1']:.2f} | {100 * test['hits@3']:.2f} | {100 * test['hits@10']:.2f} |")
    lines += ["", "Valid MRR (model selection; valid triples also in train dropped):", "",
              "| epoch | " + " | ".join(str(int(r["epoch"])) for r in valid) + " |",
              "|---|" + "---|" * len(valid),
              "| MRR | " + " | ".join(f"{r['mrr']:.3f}" for r in valid) + " |"]
    return "\n".join(lines) + "\n"


def curve_png(valid: list[dict], loss: list[dict], title: str) -> bytes:
    import vl_convert
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title,
            "hconcat": [
                {"width": 320, "height": 220, "data": {"values": valid}, "mark": {"type": "line", "point": True},
                 "encoding": {"x": {"field": "epoch", "type": "quantitative"},
                              "y": {"field": "mrr", "type": "quantitative", "title": "valid MRR"}}},
                {"width": 320, "height": 220, "data": {"values": loss}, "mark": "line",
                 "encoding": {"x": {"field": "epoch", "type": "quantitative"},
                              "y": {"field": "loss", "type": "quantitative", "title": "training loss",
                                    "scale": {"zero": False}}}}]}
    return vl_convert.vegalite_to_png(spec, scale=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--dataset", default="DB15K")
    args = parser.parse_args()
    folder = Path(args.run_dir)
    run = json.loads((folder / "run.json").read_text())
    valid, loss = read_csv(folder / "valid.csv"), read_csv(folder / "loss.csv")
    text = summary(run, valid, args.dataset)
    (folder / "summary.md").write_text(text)
    (folder / "valid_mrr.png").write_bytes(curve_png(valid, loss, f"{args.dataset} on {run['gpu']}"))
    print(text)


if __name__ == "__main__":
    from mygo.config import run_main
    run_main(main)
