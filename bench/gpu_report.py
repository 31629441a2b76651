"""The figures of a GPU folder made by bench/gpu_check.sh, from its committed files (offline).

    python bench/gpu_report.py bench/results/db15k_h100_abc1234

From run.json, valid.csv and loss.csv (bench/gpu_train.py's graphed run): summary.md, the run beside
the paper, and valid_mrr.png, its curves (vl-convert). From harness.json and eager_run.json:
verdicts.md, each change's after against its before in that same run (faster, slower or within
the spread of the timed repeats: after's upper quartile below before's lower one, or the
reverse), the targets against what was measured, and how far the step is from its matrix FLOP at
the card's peak and from its memory traffic (bench/gpu_path.py's count, --traffic) at the
card's measured copy rate. From amp_curves.json (`bench/gpu_check.sh --amp`): amp.md, bf16 against float32
on the demo's curves and test metrics over seeds.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
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


TARGETS = {"epoch": 0.4, "eval": 1.0}     # seconds: DB15K recipe settings, one H100 or H200

# (change, before, after): harness scenarios compared by their timed steps (or evaluations)
CHANGES = [
    ("the step replayed as one CUDA graph (`train.cuda_graph`)", "step", "step_graphed"),
    ("the encoded slots and the contrastive rows decided on the host, against read back from the device",
     "step_device_decisions", "step"),
    ("compiled (`train.compile`) against eager", "step", "step_compiled"),
    ("bf16 autocast (`train.amp`) against float32", "step_fp32", "step"),
    ("the `fast` kernels against `drawn-masks` (counter dropout masks, the folded attention's own backward, "
     "tables projected before gathering)", "step_drawn_masks", "step"),
    ("the [ENT] attention with the query folded in, against every slot's keys and values (both with drawn masks)",
     "step_kv_attention", "step_drawn_masks"),
    ("the last layer for [ENT] only, against every slot", "step_all_slots", "step"),
    ("the [ENT] attention's own backward (slot 0's gradients added in place), against autograd's",
     "step_autograd_attention", "step"),
    ("the token tables projected before gathering, against the gathered tokens projected",
     "step_gathered_tokens", "step"),
    ("known answers looked up on the device, ranks kept there, against on the host per batch", "eval_before", "eval"),
]


def quartiles(samples: list[float]) -> tuple[float, float]:
    """The lower and upper quartiles."""
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q3


def verdict(before: list[float], after: list[float]) -> str:
    """faster / slower when the quartiles do not overlap, else within the spread; with fewer than
    three timings a side, no verdict beyond the ratio."""
    if min(len(before), len(after)) < 3:
        return "too few timings to judge"
    b1, b3 = quartiles(before)
    a1, a3 = quartiles(after)
    return "**faster**" if a3 < b1 else "**slower**" if a1 > b3 else "within the spread"


def samples(result: dict) -> list[float]:
    """A harness result's timed repeats: steps, or warm evaluations."""
    for key in ("step_seconds", "eval_seconds_each"):
        if key in result:
            return list(result[key])
    return [result["eval_seconds"]] if "eval_seconds" in result else []


def run_epochs(run: dict) -> list[float]:
    """A real run's training seconds per epoch (validation apart), without each piece's first epoch
    (it loads kernels and captures the graph)."""
    return [s for piece in run["pieces"] for s in piece.get("epoch_seconds", [])[1:]]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def row(change: str, before: list[float], after: list[float], unit=ms) -> str:
    """A table row; an empty side failed (the reason is listed under the table)."""
    if not before or not after:
        return f"| {change} | {unit(statistics.median(before)) if before else 'failed'} | " \
               f"{unit(statistics.median(after)) if after else 'failed'} | | |"
    b, a = statistics.median(before), statistics.median(after)
    return f"| {change} | {unit(b)} | {unit(a)} | {a / b:.2f} | {verdict(before, after)} |"


def verdicts(harness: dict, eager: dict | None, run: dict | None, traffic: dict | None = None) -> str:
    """verdicts.md; `traffic`: bench/gpu_path.py's record of the step's bytes, for the memory floor."""
    results = {r["scenario"]: r for r in harness["results"]}
    ok = {k: r for k, r in results.items() if "error" not in r}
    meta = harness["meta"]
    gpus = sorted({r["gpu"] for r in ok.values() if "gpu" in r}) or ["no GPU"]
    lines = [f"# {meta['dataset']} on {', '.join(gpus)}: each change against its before, and the targets", "",
             f"Code: {meta.get('version', 'not recorded')}; torch {meta['torch']}; batch {meta['batch_size']}. "
             "Befores and afters come from the same `bench/gpu_check.sh` run: the harness's scenarios (medians of "
             "the timed steps or warm evaluations), then the real runs. A change is faster or slower when the "
             "after's timings and the before's do not overlap between their quartiles; otherwise it is within the "
             "spread.", "",
             "| change | before | after | after / before | verdict |", "|---|---|---|---|---|"]
    for change, before, after in CHANGES:
        if before in results and after in results:          # both were run
            lines.append(row(change, samples(ok.get(before, {})), samples(ok.get(after, {}))))
    save = ok.get("resume_save")
    if save:
        lines.append(row("the resume state saved in the background (training waits for the snapshot), against "
                         "written while training waits",
                         save.get("save_blocking_seconds_each", [save["save_blocking_seconds"]]),
                         save.get("save_snapshot_seconds_each", [save["save_snapshot_seconds"]])))
    if eager and run:
        lines.append(row("a real run's epoch (training alone), graphed against eager", run_epochs(eager),
                         run_epochs(run), unit=lambda s: f"{s:.3f} s"))
    failed = [f"{k} ({r['error'].strip().splitlines()[-1][:120]})" for k, r in results.items() if "error" in r]
    if failed:
        lines += ["", "Failed in this run: " + "; ".join(failed) + "."]
    graphed = ok.get("step_graphed", {})
    if graphed.get("graph_failed"):
        lines += ["", f"step_graphed's capture failed ({graphed['graph_failed']}): its steps ran eagerly."]

    lines += ["", "## The targets", "", "| target | measured | met |", "|---|---|---|"]
    runs = {name: r for name, r in (("graphed", run), ("eager", eager)) if r and run_epochs(r)}
    for name, r in runs.items():
        epoch = statistics.median(run_epochs(r))
        spent = sum(p["seconds"] for p in r["pieces"])
        epochs = r["pieces"][-1]["epochs_after"] - r["pieces"][0]["epochs_before"]
        lines.append(f"| training <= {TARGETS['epoch']} s per epoch, real run ({name}; median epoch, training alone) | "
                     f"{epoch:.3f} s | {'yes' if epoch <= TARGETS['epoch'] else 'no'} |")
        lines.append(f"| the same run, every second counted (validation, saves, start-up: {spent:.0f} s for "
                     f"{epochs} epochs) | {spent / epochs:.3f} s | {'yes' if spent / epochs <= TARGETS['epoch'] else 'no'} |")
    if "eval" in ok:
        e = ok["eval"]["eval_seconds"]
        lines.append(f"| full filtered test evaluation <= {TARGETS['eval']:g} s (harness, warm, median) | {e:.3f} s | "
                     f"{'yes' if e <= TARGETS['eval'] else 'no'} |")
    if run and "test_eval_seconds" in run:
        e = run["test_eval_seconds"]
        lines.append(f"| full filtered test evaluation <= {TARGETS['eval']:g} s (the real run's, its first in the "
                     f"process) | {e:.3f} s | {'yes' if e <= TARGETS['eval'] else 'no'} |")

    peak, floor, step = ok.get("peak"), ok.get("floor"), ok.get("step")
    if peak and floor and step:
        kind = "bf16" if meta["device"].startswith("cuda") else "fp32"      # what the step computes in
        at_peak = floor["matmul_gflop"] / peak["peak_gflops"][kind]
        per_step = TARGETS["epoch"] / step["steps_per_epoch"]
        lines += ["", "## Against the card's peak", "",
                  f"A step's matrix products are {floor['matmul_gflop']:.0f} GFLOP: {ms(at_peak)} at the measured {kind} "
                  f"peak ({peak['peak_gflops'][kind]:,.0f} GFLOP/s); timed alone on their own shapes they take "
                  f"{ms(floor['floor_seconds'])} ({floor['floor_seconds'] / at_peak:.1f}x). The step takes "
                  f"{ms(step['median_step_seconds'])} ({step['median_step_seconds'] / at_peak:.1f}x)"
                  + (f", replayed as one graph {ms(graphed['median_step_seconds'])} "
                     f"({graphed['median_step_seconds'] / at_peak:.1f}x)" if "median_step_seconds" in graphed else "")
                  + f". The epoch target needs a step of {ms(per_step)} at most ({step['steps_per_epoch']} steps an "
                  "epoch)."]
        best = min(step["median_step_seconds"], graphed.get("median_step_seconds", float("inf")))
        rest = best - floor["floor_seconds"]
        lines += ["", f"Of the fastest step ({ms(best)}), its matrix products alone account for "
                      f"{ms(floor['floor_seconds'])} and everything else (elementwise kernels, norms, dropout, gathers, "
                      f"the optimizer, launches) for {ms(max(rest, 0.0))}."]
        shares = ok.get("breakdown", {}).get("forward_share")
        if shares:
            top = sorted(shares.items(), key=lambda kv: -kv[1])[:2]
            lines[-1] += " The forward's largest parts: " + ", ".join(f"{k} {v:.0%}" for k, v in top) + "."
    counted = next((r for r in (traffic or {}).get("results", []) if r["scenario"] == "step"), None)
    fp32 = ok.get("step_fp32")
    if peak and "copy_gb_per_s" in peak and counted and fp32 and traffic["meta"]["dataset"] == meta["dataset"]:
        moved = counted["read_bytes"] + counted["written_bytes"]
        floor_s = moved / (peak["copy_gb_per_s"] * 1e9)
        lines += ["", f"Memory: a float32 step's loss and backward read and write {moved / 1e9:.2f} GB "
                      f"(bench/gpu_path.py, {traffic['meta']['code']}; each operation's inputs read once and outputs written "
                      f"once): {ms(floor_s)} at the measured copy rate "
                      f"({peak['copy_gb_per_s']:,.0f} GB/s). The float32 step (`step_fp32`, the optimizer included) "
                      f"takes {ms(fp32['median_step_seconds'])} ({fp32['median_step_seconds'] / floor_s:.1f}x that); "
                      "under bf16 autocast most of those bytes are halved."]
    return "\n".join(lines) + "\n"


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def amp_report(record: dict) -> str:
    """bf16 against float32 on the demo (bench/gpu_amp.py's record): test metrics with Welch's t
    over the seeds, as `mygo compare` judges, and the valid curves against the seed noise."""
    from mygo.compare import said, welch
    runs = {amp: [r for r in record["runs"] if r["amp"] is amp] for amp in (False, True)}
    seeds = [r["seed"] for r in runs[False]]
    ran_bf16 = all(r["bf16"] for r in runs[True])
    lines = [f"# bf16 autocast against float32 on the demo's curves, {record['gpu'] or 'on a CPU'}", "",
             f"Command: `{record['command']}`; code: {record['version']}; torch {record['torch']}; the demo recipe, "
             f"{record['epochs']} epochs, seeds {', '.join(map(str, seeds))}; each best model evaluated on test in "
             "float32. Welch's t over the seeds (p < 0.05: above the noise).", ""]
    if not ran_bf16:
        lines += ["bf16 did not run (it needs CUDA or a CPU with bf16 units): both columns are float32.", ""]
    lines += ["| | float32 | bf16 autocast | bf16 - float32 | p (Welch) | verdict |", "|---|---|---|---|---|---|"]

    def compare(name: str, get) -> None:
        a, b = [get(r) for r in runs[False]], [get(r) for r in runs[True]]
        diff, p = welch(a, b)
        lines.append(f"| {name} | {mean_sd(a)} | {mean_sd(b)} | {diff:+.3f} | "
                     f"{'' if p is None else '<0.001' if p < 0.001 else f'{p:.3f}'} | {said(p)} |")
    for key in ("mrr", "hits@1", "hits@10"):
        compare(f"test {'MRR' if key == 'mrr' else key.replace('hits', 'Hits')}", lambda r, k=key: r["test"][k])
    compare("best valid MRR", lambda r: max(v["mrr"] for v in r["valid"]))
    lines.append(f"| seconds per run | {statistics.mean(r['seconds'] for r in runs[False]):.1f} | "
                 f"{statistics.mean(r['seconds'] for r in runs[True]):.1f} | | | |")
    epochs = [v["epoch"] for v in runs[False][0]["valid"]]

    def at(amp: bool, i: int) -> list[float]:
        return [r["valid"][i]["mrr"] for r in runs[amp]]
    lines += ["", "Valid MRR at each validation, mean over the seeds; noise: twice the larger of the two standard "
                  "deviations:", "", "| epoch | " + " | ".join(map(str, epochs)) + " |", "|---|" + "---|" * len(epochs)]
    lines.append("| float32 | " + " | ".join(f"{statistics.mean(at(False, i)):.3f}" for i in range(len(epochs))) + " |")
    lines.append("| bf16 | " + " | ".join(f"{statistics.mean(at(True, i)):.3f}" for i in range(len(epochs))) + " |")
    outside = []
    if len(seeds) > 1:
        noise = [2 * max(statistics.stdev(at(False, i)), statistics.stdev(at(True, i))) for i in range(len(epochs))]
        lines.append("| noise | " + " | ".join(f"{n:.3f}" for n in noise) + " |")
        outside = [epochs[i] for i in range(len(epochs))
                   if abs(statistics.mean(at(True, i)) - statistics.mean(at(False, i))) > noise[i]]
        lines += ["", ("bf16's valid curve stays within the seed noise of float32's at every validation."
                       if not outside else "bf16's valid curve is outside the seed noise of float32's at epoch"
                       f"{'s' if len(outside) > 1 else ''} {', '.join(map(str, outside))}.")]
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
    parser.add_argument("folder", help="a folder of bench/gpu_check.sh's files")
    parser.add_argument("--dataset", default="DB15K")
    parser.add_argument("--traffic", default=str(Path(__file__).parent / "results/db15k_gpu_path.json"),
                        help="bench/gpu_path.py's record of the step's bytes (default: the committed DB15K one; "
                        "'' for none)")
    args = parser.parse_args()
    folder = Path(args.folder)

    def read(name: str) -> dict | None:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else None
    run, harness, amp = read("run.json"), read("harness.json"), read("amp_curves.json")
    if run is None and harness is None and amp is None:
        raise ValueError(f"{folder}: no run.json, harness.json or amp_curves.json (not a folder of "
                         "bench/gpu_check.sh's files)")
    if run is not None and "test" not in run:
        print(f"{folder / 'run.json'}: the run has no test metrics (its last piece did not finish): no summary.md")
    elif run is not None:
        valid, loss = read_csv(folder / "valid.csv"), read_csv(folder / "loss.csv")
        text = summary(run, valid, args.dataset)
        (folder / "summary.md").write_text(text)
        (folder / "valid_mrr.png").write_bytes(curve_png(valid, loss, f"{args.dataset} on {run['gpu']}"))
        print(text)
    if harness is not None:
        traffic = json.loads(Path(args.traffic).read_text()) if args.traffic else None
        text = verdicts(harness, read("eager_run.json"), run, traffic)
        (folder / "verdicts.md").write_text(text)
        print(text)
    if amp is not None:
        text = amp_report(amp)
        (folder / "amp.md").write_text(text)
        print(text)


if __name__ == "__main__":
    from mygo.config import run_main
    run_main(main)
