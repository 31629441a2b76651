"""The pinned mode's operations under emulated CPU models: what a CPU's identity alone changes.

    python bench/qemu_cpu_models.py --out bench/results/qemu_cpu_models.md \
        --models Icelake-Server-v4 EPYC-Milan-v1

Runs tests/vendor_ops.py (every kind of operation the pinned mode computes with, hashed) under
`qemu-x86_64 -cpu MODEL` (Debian's qemu-user) for each model, and compares the hashes with the
golden bytes of tests/golden/vendor_ops.json; then (--train-epochs N, default 1) runs the demo's
train stage for N epochs (params.yaml otherwise, on `make repro`'s data/processed) natively and
under each model, and compares the checkpoints' bytes and the metrics. In user-mode emulation every CPUID instruction is
answered by the model: the vendor string, family and model, the instruction sets and the cache
sizes. So every library that picks its code from CPUID (MKL's vendor and instruction-set dispatch,
torch's cpuinfo, oneDNN) picks as it would on that CPU, and the instructions are emulated
(QEMU 7.2 emulates up to AVX2 and FMA: no AVX-512, no AMX).

What it shows: whether a CPU's identity (vendor, model, caches) moves the pinned bytes, through
any library's dispatch. What it does not: the rounding of the few x86 instructions whose results
differ between implementations (the approximate reciprocals), and AVX-512 or AMX code paths. It is
not a run on an Intel CPU. Emulation is slow: about 40 minutes a model on a 2-core AMD EPYC;
models run in parallel, one a core.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import version  # noqa: E402
from cpu_kind import cpu_identity, md5  # noqa: E402
from mkl_intel_dispatch import environment  # noqa: E402  (the pinned env unset, as the tests start it)
from mygo.io import atomic_path  # noqa: E402

# prints the CPU as CPUID reports it: vendor, family, model, AVX2, AVX-512F
CPUID_PROBE = r"""
#include <cpuid.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    unsigned a, b, c, d; char vendor[13] = {0};
    __cpuid(0, a, b, c, d); memcpy(vendor, &b, 4); memcpy(vendor + 4, &d, 4); memcpy(vendor + 8, &c, 4);
    __cpuid(1, a, b, c, d);
    unsigned family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    if (family >= 6) model += ((a >> 16) & 0xf) << 4;
    __cpuid_count(7, 0, a, b, c, d);
    printf("%s %u %u %d %d\n", vendor, family, model, (b >> 5) & 1, (b >> 16) & 1);
    return 0;
}
"""


def qemu() -> str:
    path = shutil.which("qemu-x86_64")
    if path is None:
        raise SystemExit("qemu-x86_64 not found: apt-get install qemu-user")
    return path


def build_probe(folder: Path) -> Path:
    (folder / "cpuid.c").write_text(CPUID_PROBE)
    subprocess.run([os.environ.get("CC", "cc"), "-O1", "-o", str(folder / "cpuid"), str(folder / "cpuid.c")], check=True)
    return folder / "cpuid"


def identity(probe: Path, model: str | None) -> str:
    """The CPU as CPUID reports it to the compiled CPUID_PROBE: under QEMU's `model`, or natively (None)."""
    command = [str(probe)] if model is None else [qemu(), "-cpu", model, str(probe)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    vendor, family, cpu_model, avx2, avx512 = out.stdout.split()
    isa = "AVX2" if avx2 == "1" else "no AVX2"
    return f"{vendor}, family {family}, model {cpu_model}; {isa}" + (", AVX-512F" if avx512 == "1" else ", no AVX-512")


def run(command: list[str], model: str | None, log: Path) -> tuple[str, float]:
    """Runs `command` natively or under QEMU's `model` (the pinned env unset, as the tests start it),
    its stderr into `log`: its stdout and the seconds it took."""
    if model is not None:
        command = [qemu(), "-cpu", model, *command]
    started = time.perf_counter()
    out = subprocess.run(command, env={**environment(None), "DVC_NO_ANALYTICS": "1"}, cwd=ROOT,
                         capture_output=True, text=True)
    log.write_text(out.stderr)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} exited {out.returncode}:\n{out.stderr[-2000:]}")
    return out.stdout, time.perf_counter() - started


def measure(model: str | None, log: Path) -> dict:
    """tests/vendor_ops.py's hashes and environment, and the seconds it took."""
    stdout, seconds = run([sys.executable, str(ROOT / "tests" / "vendor_ops.py")], model, log)
    return {**json.loads(stdout), "seconds": seconds}


def train(model: str | None, epochs: int, folder: Path) -> dict:
    """The demo's train stage for `epochs` epochs with validation at the last: the checkpoint's md5,
    the stage's metrics and its log's mode line."""
    folder.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=epochs, eval_every=epochs)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data = ROOT / "data" / "processed"
    _, seconds = run([sys.executable, str(ROOT / "stages" / "train.py"), str(data / "kg"), str(data / "entity_tokens"),
                      str(folder / "model.pt"), "--resume", str(folder / "state.pt"), "--live", str(folder / "live"),
                      "--params", str(folder / "params.yaml")], model, folder / "log.txt")
    metrics = json.loads((folder / "live" / "metrics.json").read_text())
    mode = next((line.split("reproducible: ", 1)[1] for line in (folder / "log.txt").read_text().splitlines()
                 if "reproducible: " in line), "(not logged)")
    return {"model_md5": md5(folder / "model.pt"), "metrics": metrics, "mode": mode, "seconds": seconds}


def label(model: str | None) -> str:
    return "this CPU, natively" if model is None else f"QEMU `{model}`"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the Markdown record to write")
    parser.add_argument("--models", nargs="+", default=["Icelake-Server-v4", "EPYC-Milan-v1"],
                        help="QEMU CPU models (qemu-x86_64 -cpu help lists them)")
    parser.add_argument("--train-epochs", type=int, default=1,
                        help="epochs of the demo's train stage to compare (0: none; needs make repro's data/processed)")
    args = parser.parse_args()
    if args.train_epochs and not (ROOT / "data" / "processed" / "entity_tokens").is_dir():
        raise SystemExit("data/processed/entity_tokens is missing: run make repro first, or pass --train-epochs 0")
    golden = json.loads((ROOT / "tests" / "golden" / "vendor_ops.json").read_text())
    host = cpu_identity()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        probe = build_probe(tmp)
        runs = [None, *args.models]
        seen = {model: identity(probe, model) for model in runs}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = dict(zip(runs, pool.map(lambda m: measure(m, tmp / f"{m or 'host'}.log"), runs)))
            trained = (dict(zip(runs, pool.map(lambda m: train(m, args.train_epochs, tmp / f"train-{m or 'host'}"), runs)))
                       if args.train_epochs else {})
    lines = [f"# The pinned mode's operations under emulated CPU models, on {host['model_name']} "
             f"(family {host['family']}, model {host['model']})", "",
             f"Made by `python bench/qemu_cpu_models.py --out {args.out} --models {' '.join(args.models)} "
             f"--train-epochs {args.train_epochs}` at "
             f"{version.current()}, with {subprocess.run([qemu(), '--version'], capture_output=True, text=True).stdout.splitlines()[0]}. "
             "Each row runs `tests/vendor_ops.py` (every kind of operation the pinned mode computes with) under "
             "`qemu-x86_64 -cpu MODEL`, which answers every CPUID instruction as that model would and emulates the "
             "instructions (up to AVX2 and FMA): the libraries' dispatch sees that CPU. It does not emulate AVX-512 "
             "or AMX, nor the rounding of the approximate-reciprocal instructions of real hardware; it is not a run on "
             "such a CPU.", "",
             f"Golden values: `tests/golden/vendor_ops.json`, made with `{json.dumps(golden['environment'])}`.", "",
             "| CPU | as CPUID reports it | torch's capability | MKL takes it for | cases with the golden bytes | differing | minutes |",
             "|---|---|---|---|---|---|---|"]
    for model in runs:
        measured = results[model]
        differ = [case for case in golden["hashes"] if measured["hashes"].get(case) != golden["hashes"][case]]
        env = measured["environment"]
        lines.append(f"| {label(model)} | {seen[model]} | {env['capability']} | {env['mkl_vendor']} | "
                     f"{len(golden['hashes']) - len(differ)} of {len(golden['hashes'])} | "
                     f"{', '.join(differ) or 'none'} | {measured['seconds'] / 60:.1f} |")
    same = all(results[m]["hashes"] == golden["hashes"] for m in runs)
    lines += ["", "Every model gives the golden bytes in every case: the CPU's identity, as the libraries read it, "
              "does not move the pinned bytes." if same else
              "Some cases differ (above): a library's dispatch, or the emulation, changes them; "
              "`tests/vendor_ops.py` names each case's operation and shape."]
    if trained:
        lines += ["", f"## The demo's train stage for {args.train_epochs} epoch(s)", "",
                  f"`stages/train.py` on `make repro`'s data/processed with params.yaml's values but "
                  f"`train.epochs: {args.train_epochs}` and `train.eval_every: {args.train_epochs}`, pinned as the "
                  f"stage pins itself (its log: `` {trained[None]['mode']} ``).", "",
                  "| CPU | checkpoint md5 | valid MRR | the same checkpoint and metrics as natively | minutes |",
                  "|---|---|---|---|---|"]
        native = (trained[None]["model_md5"], trained[None]["metrics"])
        alike = {model: (t["model_md5"], t["metrics"]) == native for model, t in trained.items()}
        for model, t in trained.items():
            lines.append(f"| {label(model)} | `{t['model_md5']}` | {t['metrics']['valid']['mrr']:.4f} | "
                         f"{'yes' if alike[model] else '**no**'} | {t['seconds'] / 60:.1f} |")
        lines += ["", "Every model trains the same checkpoint bytes and metrics as this CPU." if all(alike.values()) else
                  "Some models train other bytes (above)."]
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
