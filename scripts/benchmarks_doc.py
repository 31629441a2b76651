"""docs/benchmarks.md, rendered from the committed result files under bench/results/.

    python scripts/benchmarks_doc.py --write     # after a benchmark wrote a result file
    python scripts/benchmarks_doc.py --check     # exit 1 when the page is not this rendering

Each section is a short introduction, which quotes no figure of its own, then the result files it
is about, each under a heading naming it, as they stand: a figure on the page is a figure of the
file above it, made by the command that file names (tests/test_docs.py checks the page is this
rendering).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs/benchmarks.md"

HEADER = """\
# Benchmarks

Every figure on this page is a committed result file under `bench/results/`, shown as it stands
under a heading that names it: the command that made it, the machine (CPU kind, cores, torch,
device) and the numbers. `python scripts/benchmarks_doc.py --write` renders the page from those
files, and a test checks that it is that rendering. `bench/run_all.sh` re-runs every CPU
benchmark (about two hours on 2 cores); `bench/gpu_check.sh` runs the GPU ones on a GPU machine.
The speed of the demo's own training, pinned and fast, is in docs/reproducibility.md, and its
results in docs/demo.md.
"""

# (title, introduction, result files)
SECTIONS = [
    ("CPU speed against the hardware", """\
One harness run on the DB15K training step (DB15K config, batch 2048, every token slot filled)
measures, in the same process: the machine's peak matrix rate, the step, the step's own matrix
products timed alone (the `floor` scenario: what this CPU's BLAS needs for the step's dense work),
the befores of each CPU change (each a scenario named `step_...`, built with the slower variant,
same mathematics), the step under bf16 autocast, and the full filtered evaluation part by part
against its floor. The befores ran after the step, so they include the run's drift; changes worth
less than that drift are also timed part by part, before and after, by `bench/kernels.py`. The
same two commands ran on an Intel Xeon (AVX-512, AMX) and on an AMD EPYC (Zen 5, AVX512-BF16). What
each change does is in docs/model.md ("Dropout on CPU", "The entity sequence's inputs").""",
     ["db15k_cpu_floor.md", "db15k_cpu_kernels.md", "db15k_cpu_floor_epyc.md", "db15k_cpu_kernels_epyc.md"]),
    ("The step alone, pinned and fast", """\
The training step alone, in the pinned CPU mode (`reproducible: true`: AVX2 kernels, MKL's
COMPATIBLE path, one thread) and in the fast mode (each CPU's fastest kernels and all its cores),
on the CPU kinds named in each file; docs/reproducibility.md says what the pin guarantees.""",
     ["db15k_cpu_step_pinned_zen3.md", "db15k_cpu_step_fast_zen3.md", "db15k_cpu_step_pinned_zen4.md",
      "db15k_cpu_step_fast_zen4.md", "db15k_cpu_step_pinned.md", "db15k_cpu_step_fast.md",
      "db15k_cpu_step_fast_epyc.md"]),
    ("DB15K and MKG-W, step by step", """\
The harness's other DB15K scenarios: the step without the contrastive loss, without images (the
padded visual slots skipped) and their reference-code befores, compiled, the batched evaluation
against one query at a time, and where a step's forward time goes; the same on MKG-W's config; a
rerun of the befores in reverse order, which shows how much of a small difference is the order
of the run. Seconds per epoch are the median step times the steps per epoch, an upper bound (the
last, shorter batch counts as a full one); timing whole epochs on a small graph checks it. Last,
the evaluation with the known answers looked up on the device against its before, looked up on
the host per batch (`db15k_cpu_eval_zen3.md`): on a CPU both are the same memory, and scoring is
nearly all of the time; and an epoch end's resume state, saved while training waits against a
snapshot written in the background (`db15k_cpu_resume_save_zen3.md`).""",
     ["db15k_cpu.md", "db15k_cpu_step.md", "db15k_cpu_befores_reversed.md", "mkgw_cpu.md",
      "cpu_options_synthetic300.md", "epoch_check_1000.md", "db15k_cpu_eval_zen3.md",
      "db15k_cpu_resume_save_zen3.md"]),
    ("Scaling", """\
Synthetic graphs with 5 train triples per entity, DB15K config, batch 2048, one training step
under a 20 GiB address-space limit (running out of memory is a clean error in the table), with one
encoder pass, in chunks (`train.model.encoder_chunk`, activation checkpointing) and with a memory
budget (`train.memory_budget_gb`, which picks the chunk; docs/model.md, "Bounded-memory entity
encoding"); then more tokens per entity. Time grows about linearly with the entities and with m + n;
where one pass fits, chunks cost one more encoder forward per step.""",
     ["scaling_entities_1000.md", "scaling_entities_4000.md", "scaling_entities_16000.md",
      "scaling_entities_16000_chunk4096.md", "scaling_entities_64000.md", "scaling_entities_64000_chunk4096.md",
      "scaling_entities_64000_budget5.md", "scaling_entities_256000.md", "scaling_entities_256000_chunk4096.md",
      "scaling_tokens_m4_n2.md", "scaling_tokens_m8_n4.md", "scaling_tokens_m16_n8.md",
      "scaling_tokens_m32_n16.md"]),
    ("Across processes", """\
`torchrun` with gloo (`python bench/distributed.py`): each rank encodes its share of the entities
and scores its share of the batch, the two cores split between the ranks. With one encoder pass
the encoder's activations, most of a step's memory, are per rank; with chunks what divides is the
share of the batch (its B x N scores and TuckER's per-query matrices). For a graph of a million
entities: GPUs with `torchrun`, `encoder_chunk` or `memory_budget_gb`, a small m + n, and a
smaller `batch_size` and `evaluate.batch_size` where the B x N scores do not fit.""",
     ["distributed_16000.md", "distributed_64000_chunk4096.md"]),
    ("Stages before training", """\
Text tokenization of DB15K's entity names, image downloads from a local server that adds a delay
to every request, and the image tokenizers' encoders with random weights on the CPU (PyTorch's
native convolution: oneDNN's choice of algorithm by batch size can flip a near-tied code, and ids
must not depend on the batch size).""",
     ["tokenize_text_db15k.md", "download.md", "image_tokenizers.md"]),
    ("On a GPU", """\
Measured on one NVIDIA H200 by `bench/gpu_check.sh` at commit 032b5d6, which runs on such a machine
as it is (no install, no DVC, offline; its inputs come from `bench/gpu_check.sh --prepare` on a CPU
machine); its logs are committed beside the figures (`bench/results/db15k_h200_run/`). The changes
made on the CPU since then act on any device (the [ENT]-only last layer, its attention through the
query, the token tables projected before gathering, the ranking without (B, N) masks, the loop
that waits for the device only at an epoch's end, the known answers looked up on the device) and
the step replayed as one CUDA graph (`train.cuda_graph`, off until timed) have not been timed on a
GPU: the current `gpu_check.sh` times each after beside its before in the same run
(`step_graphed` against `step`, `step` against `step_device_decisions` (the eager step's
decisions read back from the device), `eval` against `eval_before`, a real run eagerly and graphed),
records the commit it measured, and `python bench/gpu_report.py FOLDER` judges each after against
its before, and the run against the targets, in the folder's `verdicts.md`; `gpu_check.sh --amp`
trains the demo in bf16 and in float32 over three seeds, for the report's `amp.md` (bf16 is
`train.amp`'s default on a GPU, so its curves are checked against float32's seed noise). The
DB15K run is the recipe's settings for part of its epochs, in two time-boxed
pieces (the second resumed from the first's state); docs/paper.md sets it beside the paper.

What a step asks of a GPU is counted without one: `bench/gpu_path.py` runs it on torch's `meta`
device, down the code paths a CUDA device takes, and counts its operations (about the kernels it
launches) and the bytes they read and write once (their compulsory memory traffic), for the
step and for each model-side before (`bench/results/db15k_gpu_path.md`, float32). TuckER's core
dropout, over each query's d x d matrix, moves the most. The [ENT] attention's own backward (slot
0's gradients added in place) now runs on a GPU as well as on the CPU: the step moves 10.7 % fewer
bytes than with autograd's backward (`step_autograd_attention`), which `gpu_check.sh` times
beside it in the same run. `gpu_report.py` sets the float32 step against this count at the card's
copy rate, which the harness's `peak` scenario measures beside its matrix rates.""",
     ["db15k_gpu_path.md", "db15k_h200.md", "db15k_h200_breakdown.md", "db15k_h200_compiled.md",
      "db15k_h200_run/summary.md"]),
]


def included(name: str) -> str:
    """A result file as the page shows it: its headings two levels down, under one naming it."""
    text = (ROOT / "bench/results" / name).read_text().strip()
    text = re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 3, 6) + " ", text, flags=re.M)
    return f"### `bench/results/{name}`\n\n{text}\n"


def render() -> str:
    parts = [HEADER]
    for title, intro, files in SECTIONS:
        parts.append(f"## {title}\n\n{intro}\n")
        parts.extend(included(name) for name in files)
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    group.add_argument("--check", action="store_true", help="exit 1 when docs/benchmarks.md is not the rendering")
    args = parser.parse_args()
    text = render()
    if args.write:
        tmp = PAGE.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(PAGE)
        print(f"wrote {PAGE.relative_to(ROOT)}")
    elif PAGE.read_text() != text:
        print(f"{PAGE.relative_to(ROOT)} is not the rendering of bench/results/: run "
              "`python scripts/benchmarks_doc.py --write`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
