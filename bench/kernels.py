"""The fast CPU kernels against their befores, each timed alone at DB15K shapes, in one process
(a training step's variation between runs hides changes of a few percent; these are the parts).

    python bench/kernels.py --out bench/results/db15k_cpu_kernels

Parts: a dropout's forward and backward on the visual tokens' (12842, 8, 256), drawn masks kept
for backward against counter masks; TuckER's core dropout mask on (2048, 256, 256), drawn and applied (keep_mask, float mask,
multiply) against counter masks (one in-place pass); the gradient of that contraction's matrices
(mask x_i, then g_j) against one masked outer-product pass; Adam's update of the DB15K model's
parameters, torch's per-operation update against the fused one; the all-entity pass's [ENT]
attention (12,842 entities, 14 slots, d 256) forward and backward through autograd against its own
backward; the entity sequence with its 12 token slots gathered from projected table rows, dropped
out and biased, as separate passes through autograd against one pass (mygo.fast.tokens). Each: the median of --repeat timings after two warm-up calls, with freed memory reused
as training does (train.reuse_memory), so that fresh pages are not what is timed.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mygo import reproducible  # noqa: E402
from mygo.fast import counter  # noqa: E402
from mygo.fast.attention import slot0_attention_fused  # noqa: E402
from mygo.fast.dropout import CounterDropout, _as_float, dropout, keep_mask  # noqa: E402
from mygo.fast.tokens import assemble_in_place  # noqa: E402
from mygo.io import atomic_path  # noqa: E402
from mygo.memory import reuse_freed_memory  # noqa: E402
from mygo.model import Tokens, assemble, slot0_attention_folded  # noqa: E402
from harness import PRESETS, build  # noqa: E402  (bench/harness.py)


def timed(fn, repeat: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def core_parts(repeat: int) -> list[tuple[str, str, float, float]]:
    B, d, p = 2048, 256, 0.4
    g = torch.Generator().manual_seed(0)
    matrices = torch.randn(B, d, d, generator=g)
    x, grad = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    mask = counter.Counter.draw(p)

    def drawn_mask():
        matrices.mul_(_as_float(keep_mask((B, d, d), p), matrices.dtype))

    keep = _as_float(keep_mask((B, d, d), p), torch.float32)
    return [
        ("core dropout mask, (2048, 256, 256)", "draw 16-bit numbers, compare, float mask, multiply",
         timed(drawn_mask, repeat), timed(lambda: counter.mask_(matrices, mask), repeat)),
        ("core contraction's matrix gradient, (2048, 256, 256)", "mask x_i, then g_j (two passes)",
         timed(lambda: torch.mul(keep, x.unsqueeze(2)).mul_(grad.unsqueeze(1)), repeat),
         timed(lambda: counter.outer(x, grad, mask), repeat)),
    ]


def dropout_part(repeat: int) -> tuple[str, str, float, float]:
    x = torch.randn(12842, 8, 256, requires_grad=True)
    grad = torch.randn(12842, 8, 256)

    def run(masks):
        def once():
            x.grad = None
            dropout(x, 0.3, masks=masks).backward(grad)
        return once

    return ("dropout p = 0.3, forward and backward, (12842, 8, 256)", "drawn mask kept for backward",
            timed(run("drawn"), repeat), timed(run("counter"), repeat))


def adam_part(repeat: int) -> tuple[str, str, float, float]:
    model = build(12842, 280, PRESETS["db15k"])                            # DB15K's entities and relations
    g = torch.Generator().manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    per_op = torch.optim.Adam(params, lr=1e-3)
    fused = torch.optim.Adam(params, lr=1e-3, fused=True)
    count = sum(p.numel() for p in params)
    return (f"Adam update, the DB15K model's {count / 1e6:.1f} M trained parameters", "per-operation update",
            timed(per_op.step, repeat), timed(fused.step, repeat))


def attention_part(repeat: int) -> tuple[str, str, float, float]:
    E, L, d = 12842, 14, 256
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d, 2, 1024, dropout=0.01, batch_first=True).train()
    padded = torch.rand(E, L) < 0.2
    padded[:, 0] = False
    x = torch.randn(E, L, d, requires_grad=True)
    grad = torch.randn(E, d)

    def run(attention):
        def once():
            layer.zero_grad()
            x.grad = None
            out = attention(layer, x, padded)
            out, residual = out if isinstance(out, tuple) else (out, x[:, :1])   # as mygo.model.first_slot
            (out + residual.squeeze(1)).backward(grad)
        return once

    return ("[ENT] attention, forward and backward, (12842, 14, 256)", "autograd through the folded attention",
            timed(run(slot0_attention_folded), repeat), timed(run(slot0_attention_fused), repeat))


def sequence_part(repeat: int) -> tuple[str, str, float, float]:
    """The entity sequence from DB15K-sized pieces: [ENT], structure, 8 visual tokens from 8,193
    projected codebook rows and 4 text tokens from 30,523 rows, counter-mask dropout 0.3 and 0.1,
    plus the slot bias; forward and backward."""
    E, d = 12842, 256
    g = torch.Generator().manual_seed(0)
    token, structure = torch.randn(1, 1, d, requires_grad=True), torch.randn(E, 1, d, requires_grad=True)
    visual, text = torch.randn(8193, d, requires_grad=True), torch.randn(30523, d, requires_grad=True)
    visual_ids, text_ids = torch.randint(1, 8193, (E, 8), generator=g), torch.randint(1, 30523, (E, 4), generator=g)
    slot_bias = torch.randn(1, 14, d, requires_grad=True)
    drops = [CounterDropout(0.3).train(), CounterDropout(0.1).train()]
    grad = torch.randn(E, 14, d, generator=g)

    def run(build):
        def once():
            for leaf in (token, structure, visual, text, slot_bias):
                leaf.grad = None
            build([token.expand(E, 1, d), structure, Tokens(visual, visual_ids, drops[0]),
                   Tokens(text, text_ids, drops[1])], slot_bias).backward(grad)
        return once

    return ("entity sequence: 12 gathered token slots with dropout, and the slot bias, forward and backward, "
            "(12842, 14, 256)", "gathered, dropped out, concatenated, bias added (mygo.model.assemble)",
            timed(run(assemble), repeat), timed(run(assemble_in_place), repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output path without extension (.md and .json are written)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    reproducible.flush_denormals()
    reuse_freed_memory()                                # as training does on CPU: no page faults in the timings
    if counter.library() is None:
        sys.exit("the counter kernels did not build (see the warning above): nothing to measure")
    rows = core_parts(args.repeat) + [dropout_part(args.repeat), adam_part(args.repeat), attention_part(args.repeat),
                                      sequence_part(args.repeat)]
    command = "python bench/kernels.py " + " ".join(sys.argv[1:])
    lines = ["# The fast CPU kernels against their befores, each part timed alone", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
             f"the median of {args.repeat} timings after two warm-up calls, freed memory reused.", "",
             "| part | before | before, s | fast kernels, s | speed-up |", "|---|---|---|---|---|"]
    lines += [f"| {part} | {before} | {a:.3f} | {b:.3f} | {a / b:.1f}x |" for part, before, a, b in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps([dict(part=p, before=w, before_seconds=a, fast_seconds=b) for p, w, a, b in rows],
                                  indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
