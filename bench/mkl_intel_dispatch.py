"""The pinned mode on MKL's Intel branch, run on a CPU that MKL takes for another vendor's.

    python bench/mkl_intel_dispatch.py --out bench/results/mkl_intel_dispatch_zen3.md
    python bench/mkl_intel_dispatch.py --out FILE.md --no-repro     # without the fresh clone's dvc repro

MKL chooses its code by the CPU's vendor as well as its instruction sets. Preloading
tests/mkl_intel_dispatch.c answers MKL's vendor check "Intel", so on an AMD CPU MKL dispatches
as on an Intel CPU of the same instruction sets. This runs, with that answer (part 1 also without):

1. a float32 product and two vector-maths functions on MKL's default branch and on its
   COMPATIBLE one (the pinned mode's);
2. tests/vendor_ops.py, every operation the pinned mode computes with, against the golden bytes
   (its environment counts the times MKL asked the preloaded vendor check);
3. `dvc repro` in a fresh clone of HEAD (pinned, as `make repro` runs it; the record names the
   stages it ran and those it skipped as unchanged), then `git status --porcelain`: empty when
   every output is the committed bytes.

What it does not emulate: another CPU's instruction sets (an Intel CPU's AVX-512 or AMX), which
MKL also branches on. It is evidence about MKL's vendor dispatch, not a run on an Intel CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import version  # noqa: E402
from cpu_kind import cpu_identity, md5  # noqa: E402
from mygo import reproducible  # noqa: E402  (the pinned environment's names; imports no torch)
from mygo.io import atomic_path  # noqa: E402

PROBE = """
import hashlib, torch
g = torch.Generator().manual_seed(0)
a, b = torch.randn(300, 200, generator=g), torch.randn(200, 100, generator=g)
x = torch.rand(1000, generator=g) * 10
md5 = lambda t: hashlib.md5(t.numpy().tobytes()).hexdigest()[:16]
print(md5(a @ b), md5(torch.sqrt(x)), md5(torch.exp(x)))
"""


def build(folder: Path) -> Path:
    library = folder / "libmkl_intel_dispatch.so"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(library),
                    str(ROOT / "tests" / "mkl_intel_dispatch.c")], check=True)
    return library


def environment(intel: Path | None, **extra: str) -> dict:
    drop = {*reproducible.PINNED_ENV, "MYGO_REPRODUCIBLE", "LD_PRELOAD"}     # as tests/test_vendor_ops.py's
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    if intel is not None:
        env["LD_PRELOAD"] = str(intel)
    return {**env, **extra}


def run(command: list[str], env: dict, log: Path | None = None, cwd: Path = ROOT) -> str:
    out = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if log is not None:
        log.write_text(out.stdout + out.stderr)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} exited {out.returncode}:\n{out.stderr[-2000:]}")
    return out.stdout


def locked(path: str) -> str:
    """The md5 that dvc.lock records for an output `path`."""
    for stage in yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise SystemExit(f"dvc.lock records no output {path}")


def cpu() -> str:
    c = cpu_identity()
    return f"{c['model_name']} (family {c['family']}, model {c['model']}, {c['cores']} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the Markdown record to write")
    parser.add_argument("--no-repro", action="store_true", help="skip the fresh clone's dvc repro")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        intel = build(tmp)
        lines = [f"# The pinned mode on MKL's Intel branch, on {cpu()}", "",
                 f"Made by `python bench/mkl_intel_dispatch.py --out {args.out}{' --no-repro' if args.no_repro else ''}` "
                 f"at {version.current()}. MKL's vendor check answered \"Intel\" by preloading "
                 "`tests/mkl_intel_dispatch.c` (LD_PRELOAD); this CPU's instruction sets are unchanged, so this is "
                 "MKL's Intel branch on this CPU, not a run on an Intel CPU.", "",
                 "## 1. MKL's branches with either answer: md5 of a (300, 200) x (200, 100) float32 product, of "
                 "`torch.sqrt` and of `torch.exp`", "",
                 "| MKL_CBWR | MKL's vendor check | product | sqrt | exp |", "|---|---|---|---|---|"]
        probes = {}
        for branch in ("AUTO", "COMPATIBLE,STRICT"):
            for vendor, library in (("this CPU's", None), ("Intel (preloaded)", intel)):
                probes[branch, vendor] = run([sys.executable, "-c", PROBE],
                                             environment(library, MKL_CBWR=branch)).split()
                lines.append(f"| {branch} | {vendor} | " + " | ".join(f"`{h}`" for h in probes[branch, vendor]) + " |")
        heard = probes["AUTO", "this CPU's"] != probes["AUTO", "Intel (preloaded)"]
        same_pinned = probes["COMPATIBLE,STRICT", "this CPU's"] == probes["COMPATIBLE,STRICT", "Intel (preloaded)"]
        lines += ["", f"MKL's default branch {'changes' if heard else 'does not change'} with the answer"
                  f"{'' if heard else ' (an Intel CPU already, or an MKL that does not ask): the rest shows nothing new'}; "
                  f"its COMPATIBLE branch gives {'the same' if same_pinned else 'other'} bytes with either answer.", ""]

        golden = json.loads((ROOT / "tests" / "golden" / "vendor_ops.json").read_text())
        measured = json.loads(run([sys.executable, str(ROOT / "tests" / "vendor_ops.py")], environment(intel)))
        differ = [case for case in golden["hashes"] if measured["hashes"].get(case) != golden["hashes"][case]]
        lines += ["## 2. The pinned mode's operations (`tests/vendor_ops.py`) against the golden bytes", "",
                  f"Environment on the Intel branch: `{json.dumps(measured['environment'])}`; golden values made with "
                  f"`{json.dumps(golden['environment'])}`.", "",
                  f"{len(golden['hashes']) - len(differ)} of {len(golden['hashes'])} cases give the golden bytes"
                  + (f"; differing: {', '.join(differ)}" if differ else "") + ".", ""]

        if not args.no_repro:
            clone = tmp / "clone"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            bin_dir = Path(sys.executable).parent
            env = {**environment(intel), "PYTHONPATH": str(clone / "src"), "DVC_NO_ANALYTICS": "1",
                   "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
            commit = run(["git", "rev-parse", "--short", "HEAD"], env, cwd=clone).strip()
            repro_started = time.perf_counter()
            run([str(bin_dir / "dvc"), "repro"], env, tmp / "repro.log", cwd=clone)
            seconds = time.perf_counter() - repro_started
            status = run(["git", "status", "--porcelain"], env, cwd=clone).splitlines()
            log = (tmp / "repro.log").read_text().splitlines()
            mode = next((line.split(" ", 3)[-1] for line in log if "mygo.reproducible" in line), "(none)")
            ran = [line.split("'")[1] for line in log if line.startswith("Running stage '")]
            kept = [line.split("'")[1] for line in log if line.startswith("Stage '") and "didn't change" in line]
            model = md5(clone / "models" / "model.pt")
            lines += [f"## 3. `dvc repro` in a fresh clone of {commit}, on the Intel branch", "",
                      f"It ran {len(ran)} stages ({', '.join(ran)}) in {seconds:.0f} s"
                      + (f", and skipped {', '.join(kept)}: their inputs were the committed ones" if kept else "")
                      + f"; the stages' mode, as they logged it: `` {mode} ``. "
                      f"`models/model.pt`: `{model}` here, `{locked('models/model.pt')}` in the committed dvc.lock.", "",
                      "`git status --porcelain` afterwards: " + ("empty: every output is the committed bytes."
                                                               if not status else
                                                               "; ".join(f"`{line.strip()}`" for line in status)), ""]
    lines.append(f"Whole run: {time.perf_counter() - started:.0f} s.")
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
