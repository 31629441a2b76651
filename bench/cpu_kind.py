"""Whether this CPU kind reproduces the committed bytes: a fresh clone of HEAD, the README's
`make repro` (and `make test`), recorded under bench/results/cpu_kinds/.

    python bench/cpu_kind.py --tests          # a fresh clone: make repro, git status, make test
    python bench/cpu_kind.py                  # the same without make test
    python bench/cpu_kind.py --table          # the table docs/reproducibility.md shows, from the records

One record per CPU kind (vendor, family and model; a later run replaces it): the CPU's model
name and instruction sets, the commit, what `make repro` changed in the clone (`git status
--porcelain`), the models' and metrics' md5, a digest of the committed dvc.lock's outputs, and
`make test`'s summary line. A record shows this version's bytes where its clone left git clean
and its dvc.lock outputs are today's; docs/reproducibility.md's table and the README's list of
CPU kinds are made from the records (tests/test_docs.py checks both).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mygo.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "bench/results/cpu_kinds"
ISA = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
       ("amx_tile", "AMX"))


def cpu_identity(cpuinfo: str | None = None) -> dict:
    """The CPU kind from /proc/cpuinfo: vendor, family, model, model name, instruction sets."""
    text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    first = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    flags = set(first.get("flags", "").split())
    return {"vendor": first.get("vendor_id", "unknown"), "family": int(first.get("cpu family", -1)),
            "model": int(first.get("model", -1)), "model_name": first.get("model name", "unknown"),
            "isa": [name for flag, name in ISA if flag in flags], "cores": os.cpu_count()}


def kind_key(cpu: dict) -> str:
    """The record's file name: vendor, family and model."""
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(cpu["vendor"], re.sub(r"\W+", "", cpu["vendor"]).lower())
    return f"{vendor}_f{cpu['family']}_m{cpu['model']}"


def label(cpu: dict) -> str:
    """How the docs name a CPU kind: "2-core AMD EPYC (family 25, model 1; AVX2, no AVX-512)"."""
    isa = "AVX-512" + (", AMX" if "AMX" in cpu["isa"] else "") if "AVX-512" in cpu["isa"] else "AVX2, no AVX-512"
    return f"{cpu['cores']}-core {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}; {isa})"


def outs_digest(lock: Path) -> str:
    """md5 over every stage's outputs in a dvc.lock (stage, path, md5): the pipeline's bytes."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    rows = sorted(f"{stage}\t{out['path']}\t{out.get('md5')}" for stage, body in stages.items()
                  for out in body.get("outs", []))
    return hashlib.md5("\n".join(rows).encode()).hexdigest()


def md5(path: Path) -> str | None:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


def this_version(record: dict, lock: Path = ROOT / "dvc.lock") -> bool:
    """Whether a record saw today's committed bytes: its clone left git clean, and the dvc.lock it
    reproduced has today's outputs."""
    return (record["repro"]["exit"] == 0 and not record["repro"]["git_status"]
            and record["repro"]["outs_digest"] == outs_digest(lock))


def records(folder: Path = RECORDS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def table(all_records: list[dict], lock: Path = ROOT / "dvc.lock") -> str:
    lines = ["| CPU | instruction sets | fresh clone of | `make repro`, then `git status --porcelain` | `make test` |",
             "|---|---|---|---|---|"]
    for r in all_records:
        repro = r["repro"]
        if this_version(r, lock):
            seen = "empty: **this version's bytes**"
        elif repro["exit"] != 0:
            seen = f"`make repro` failed (exit {repro['exit']})"
        elif repro["git_status"]:
            seen = f"changed {len(repro['git_status'])} files: not the committed bytes"
        else:
            seen = "empty, but that commit's outputs are not today's: not yet seen for this version"
        tests = r.get("tests")
        lines.append(f"| {label(r['cpu'])} | {', '.join(r['cpu']['isa'])} | {r['commit']} | {seen} | "
                     f"{tests['summary'] if tests else 'not run'} |")
    return "\n".join(lines) + "\n"


def reproducing(all_records: list[dict], lock: Path = ROOT / "dvc.lock") -> list[str]:
    """The labels of the CPU kinds seen to reproduce today's bytes (the README lists them)."""
    return [label(r["cpu"]) for r in all_records if this_version(r, lock)]


def run(command: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    """Run a command, its output to `log` and to this terminal; (exit status, seconds)."""
    print(f"$ {' '.join(command)}   (in {cwd}, log {log})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            out.write(line)
            sys.stderr.write(line)
        code = proc.wait()
    return code, time.monotonic() - started


def check(with_tests: bool, folder: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mygo-cpu-kind-"))
    try:
        clone, log = work / "clone", work / "log.txt"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True,
                                check=True).stdout.strip()
        code, seconds = run(["make", "repro"], clone, log)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                                check=True).stdout.splitlines()
        record = {"cpu": cpu_identity(), "commit": commit,
                  "repro": {"exit": code, "seconds": round(seconds, 1), "git_status": status,
                            "outs_digest": outs_digest(clone / "dvc.lock"),
                            "model_md5": md5(clone / "models/model.pt"), "eval_md5": md5(clone / "metrics/eval.json")},
                  "tests": None}
        if with_tests:
            code, seconds = run(["make", "test"], clone, log)
            summary = re.findall(r"=+ (\d+ (?:passed|failed).*?) in [\d.]+s", log.read_text())
            record["tests"] = {"exit": code, "seconds": round(seconds, 1),
                               "summary": (summary[-1] if summary else "no summary line") + f", exit {code}"}
        target = folder / f"{kind_key(record['cpu'])}.json"
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}", file=sys.stderr)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", action="store_true", help="also run `make test` in the clone (about 20 minutes)")
    parser.add_argument("--table", action="store_true", help="print the records' table and exit")
    parser.add_argument("--records", type=Path, default=RECORDS, help=f"the records' folder (default {RECORDS})")
    args = parser.parse_args()
    if args.table:
        print(table(records(args.records)), end="")
        return
    record = check(args.tests, args.records)
    print(table([record]), end="")
    if not this_version(record):
        sys.exit(1)


if __name__ == "__main__":
    main()
