"""A training step's operations and memory traffic on the GPU code path, counted on a CPU machine.

    python bench/gpu_path.py --dataset ../shared/data/DB15K --preset db15k \
        --scenarios step,step_autograd_attention --out bench/results/db15k_gpu_path

The model runs on torch's `meta` device: every operation is dispatched, with its shapes, and none
computes. Code that branches on the device takes the branch a CUDA device takes (the model's CPU
kernels are CPU-only), and dropout is `torch.native_dropout`, the one kernel F.dropout runs on CUDA.
Each scenario is harness.py's model (its before, for the befores) in float32, one step's loss
(`MyGO.losses`, contrastive term on) and its backward; not the gradient clipping and the Adam
update after them (the meta device has no multi-tensor kernels to count them by: on CUDA they
are a few multi-tensor launches over every parameter, the same in every scenario). For every operation
that is not a view, it counts one operation, the bytes it reads (its tensor inputs, a broadcast
input once) and the bytes it writes (its outputs): each operation's compulsory traffic, and about
the kernels a GPU launches (a few operations launch two). Differences from a CUDA run:
scaled_dot_product_attention is counted as the math backend's operations and intermediates (the
triple encoder's; CUDA runs one fused kernel),
bf16 autocast is off (it halves most activations' bytes on a GPU), and the slots to encode and the
contrastive views' valid rows are decided from host copies, as the eager CUDA step decides them.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (puts src/ on the path)
import version  # noqa: E402
from mygo.model import contrastive_sample  # noqa: E402
from mygo.training import training_queries  # noqa: E402

VIEWS = {"view", "_unsafe_view", "expand", "t", "transpose", "permute", "unsqueeze", "squeeze", "select",
         "slice", "alias", "detach", "as_strided", "unbind", "split", "split_with_sizes", "_reshape_alias",
         "lift_fresh", "unfold", "diagonal", "view_as_real", "view_as_complex", "_local_scalar_dense"}
# operations that read only their input's shape and dtype
SHAPE_ONLY = {"empty", "empty_like", "new_empty", "new_empty_strided", "empty_strided", "zeros_like", "ones_like",
              "full_like", "new_zeros", "new_ones", "new_full", "zeros", "ones", "full", "arange", "scalar_tensor",
              "promote_types"}
# what allocates without writing
NO_WRITE = {"empty", "empty_like", "new_empty", "new_empty_strided", "empty_strided", "promote_types"}
SCENARIOS = ("step", "step_autograd_attention", "step_all_slots", "step_gathered_tokens", "step_drawn_masks",
             "step_kv_attention", "step_cat_sequence")


def distinct_bytes(t: torch.Tensor) -> int:
    """The bytes of a tensor's distinct elements: a broadcast (stride 0) dimension counts once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size()


def tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    return []


PHASES = ("forward: all-entity pass", "forward: the rest", "backward: all-entity pass", "backward: the rest")


class Traffic(TorchDispatchMode):
    """Every non-view operation: (phase, name, bytes read, bytes written, its tensor inputs' shapes).
    The phase: forward or backward, and whether the operation belongs to the all-entity pass (in
    backward: run for an autograd node that the pass's forward made, `pass_nodes`)."""

    def __init__(self):
        super().__init__()
        self.forward = "forward: the rest"
        self.backward = False
        self.pass_nodes = range(0)              # the all-entity pass's autograd sequence numbers
        self.rows: list[tuple[str, str, int, int, list]] = []

    def phase(self) -> str:
        if not self.backward:
            return self.forward
        node = torch._C._current_autograd_node()
        inside = node is not None and node._sequence_nr() in self.pass_nodes
        return "backward: all-entity pass" if inside else "backward: the rest"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        outputs = tensors(out)                  # no tensor, or one on the host: no kernel
        if name not in VIEWS and outputs and all(t.device.type == "meta" for t in outputs):
            inputs = tensors(list(args) + [v for k, v in kwargs.items() if k != "out"])     # out= is written
            read = 0 if name in SHAPE_ONLY else sum(distinct_bytes(t) for t in inputs)
            written = 0 if name in NO_WRITE else sum(distinct_bytes(t) for t in outputs)
            shapes = [list(t.shape) for t in tensors(list(args))]
            self.rows.append((self.phase(), name, read, written, shapes))
        return out


def sequence_number() -> int:
    """The autograd sequence number the next node gets, less one (a CPU node, not counted)."""
    return (torch.zeros((), requires_grad=True) * 1).grad_fn._sequence_nr()


def cuda_dropout(x, p=0.5, training=True, inplace=False):
    """F.dropout as CUDA runs it: one native_dropout kernel."""
    if not training or p == 0.0:
        return x
    out = torch.native_dropout(x, p, True)[0]
    return x.copy_(out) if inplace else out


def count(name: str, num_entities: int, num_relations: int, train, preset: dict, batch_size: int) -> dict:
    model = harness.scenario_model(name, num_entities, num_relations, preset)
    encoder = model.entity_encoder
    visual, text = encoder.visual_mask.clone(), encoder.text_mask.clone()       # the host copies
    encoder.host_slot_mask = lambda entities=None: encoder._slot_mask(visual, text, entities)
    model = model.to("meta").train()
    g = torch.Generator().manual_seed(0)
    known, relation, target, head = training_queries(train, "random", g)          # a training step's first batch
    batch = [t[:batch_size].to("meta") for t in (known, relation, head, target)]
    sample = contrastive_sample(num_entities, 512, g)
    traffic = Traffic()
    entity_embeddings = model.entity_embeddings

    def the_pass():                             # its operations, and its autograd nodes' numbers
        first = sequence_number() + 1
        traffic.forward = "forward: all-entity pass"
        out = entity_embeddings()
        traffic.forward = "forward: the rest"
        traffic.pass_nodes = range(first, sequence_number())
        return out

    model.entity_embeddings = the_pass
    original, F.dropout = F.dropout, cuda_dropout
    try:
        with traffic:
            loss = model.losses(*batch, mu=preset["mu"], tau=0.5, sample=sample).total
            traffic.backward = True
            loss.backward()
    finally:
        F.dropout = original
    phases = {}
    for phase in PHASES:
        mine = [r for r in traffic.rows if r[0] == phase]
        phases[phase] = {"operations": len(mine), "read_bytes": sum(r[2] for r in mine),
                         "written_bytes": sum(r[3] for r in mine)}
    by_op = collections.defaultdict(lambda: [0, 0, 0])
    for _, op, read, written, _ in traffic.rows:
        by_op[op][0] += 1
        by_op[op][1] += read
        by_op[op][2] += written
    top = sorted(by_op.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))[:8]
    return {"scenario": name, "what": harness.SCENARIOS[name], "phases": phases,
            "operations": len(traffic.rows), "read_bytes": sum(r[2] for r in traffic.rows),
            "written_bytes": sum(r[3] for r in traffic.rows),
            "top": [{"op": op, "count": c, "read_bytes": r, "written_bytes": w} for op, (c, r, w) in top],
            "largest": [{"phase": phase, "op": op, "inputs": shapes, "read_bytes": r, "written_bytes": w}
                        for phase, op, r, w, shapes in sorted(traffic.rows, key=lambda row: -(row[2] + row[3]))[:12]]}


def gb(n: int) -> str:
    return f"{n / 1e9:.3f}"


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# A step's operations and memory traffic on the GPU code path: {meta['dataset']} ({meta['preset']} config)",
             "", f"Command: `{meta['command']}`", "",
             f"Counted on the `meta` device by bench/gpu_path.py (float32, batch {meta['batch_size']}, "
             f"{meta['num_entities']} entities, every visual and text slot filled; torch {meta['torch']}; "
             f"code {meta['code']}). Operations: those that are not views (about the kernels a GPU "
             "launches); GB read and written: their tensor inputs read once and outputs written once (each "
             "operation's compulsory traffic). A step's loss and backward, without the gradient clipping and Adam update.", "",
             "| scenario | what | operations | GB read | GB written | " + " | ".join(f"{p}: ops / GB" for p in PHASES) + " |",
             "|---|---|---|---|---|" + "---|" * len(PHASES)]
    for r in results:
        cells = [f"{p['operations']} / {gb(p['read_bytes'] + p['written_bytes'])}" for p in r["phases"].values()]
        lines.append(f"| {r['scenario']} | {r['what']} | {r['operations']} | {gb(r['read_bytes'])} | "
                     f"{gb(r['written_bytes'])} | " + " | ".join(cells) + " |")
    base = next((r for r in results if r["scenario"] == "step"), None)
    if base:
        total = base["read_bytes"] + base["written_bytes"]
        lines += ["", "The step against each before (GB read and written, operations):", ""]
        for r in results:
            if r is base:
                continue
            other, ops = r["read_bytes"] + r["written_bytes"], r["operations"] - base["operations"]
            lines.append(f"- {r['scenario']}: {gb(other)} GB in {r['operations']} operations; the step moves "
                         f"{gb(abs(other - total))} GB {'less' if other >= total else 'more'} "
                         f"({100 * abs(other - total) / other:.1f} %) in {abs(ops)} "
                         f"{'fewer' if ops >= 0 else 'more'} operations.")
        lines += ["", "The step's operations moving the most bytes:", "", "| operation | count | GB read | GB written |",
                  "|---|---|---|---|"]
        lines += [f"| {t['op']} | {t['count']} | {gb(t['read_bytes'])} | {gb(t['written_bytes'])} |" for t in base["top"]]
        lines += ["", "The step's single operations moving the most bytes:", "",
                  "| phase | operation | inputs | GB read | GB written |", "|---|---|---|---|---|"]
        lines += [f"| {t['phase']} | {t['op']} | {', '.join('x'.join(map(str, s)) or 'scalar' for s in t['inputs'])} | "
                  f"{gb(t['read_bytes'])} | {gb(t['written_bytes'])} |" for t in base["largest"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a raw dataset directory (e.g. ../shared/data/DB15K)")
    source.add_argument("--synthetic", type=int, help="a random graph of this many entities")
    parser.add_argument("--preset", choices=sorted(harness.PRESETS), default="db15k")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--out", help="write OUT.json and OUT.md (else print the table)")
    args = parser.parse_args()
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(unknown)}; expected some of {', '.join(SCENARIOS)}")
    args.synthetic = args.synthetic or 0
    N, R, splits, label = harness.load_graph(args)
    preset = dict(harness.PRESETS[args.preset])
    results = []
    for name in names:
        started = time.perf_counter()
        results.append(count(name, N, R, splits["train"], preset, args.batch_size))
        print(f"{name}: {results[-1]['operations']} operations, "
              f"{gb(results[-1]['read_bytes'] + results[-1]['written_bytes'])} GB ({time.perf_counter() - started:.1f} s)",
              file=sys.stderr)
    meta = {"dataset": label, "preset": args.preset, "batch_size": args.batch_size, "num_entities": N,
            "torch": torch.__version__, "code": version.current(),
            "command": "python bench/gpu_path.py " + " ".join(sys.argv[1:])}
    harness.save(args.out, {"meta": meta, "results": results}, markdown(results, meta), quiet=bool(args.out))
    if args.out:
        print(f"wrote {args.out}.md and {args.out}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
