"""Which code a benchmark measured: the commit and a digest of the code that ran.

    python bench/version.py                          # "commit 0b6cb97 (code md5 1f3c...)"
    python bench/version.py --write FILE.json        # record it (bench/gpu_check.sh --prepare)
    python bench/version.py --prepared FILE.json     # where there is no git (a GPU machine's copy):
                                                     # the prepared commit, if the code is still its code

The digest covers the code a benchmark runs (the package, bench/, stages/, the CUDA tests), so a
copy of a working tree without its .git still says which commit it is, or that it is not one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("src/mygo", "bench", "stages", "tests/test_cuda.py")
SUFFIXES = (".py", ".c", ".sh")


def code_files(root: Path = ROOT) -> list[Path]:
    files = []
    for name in CODE:
        path = root / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                                                 and "__pycache__" not in p.parts]
    return sorted(files)


def code_md5(root: Path = ROOT) -> str:
    digest = hashlib.md5()
    for path in code_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def git_commit(root: Path = ROOT) -> str | None:
    """HEAD's short hash, with "+changes" when the code differs from it; None without git."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all", "--",
                                 *CODE], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # code only, as the digest counts it: a result written under bench/results is no change of code
    changed = any(line[3:].strip('"').endswith(SUFFIXES) for line in status.splitlines())
    return f"{head}+changes" if changed else head


def describe(root: Path = ROOT, prepared: Path | None = None) -> dict:
    """{"commit": ..., "code_md5": ...}: the commit from git, else from a prepared record whose
    digest is this code's ("<commit>+changes" when it is not), else "unknown"."""
    digest = code_md5(root)
    commit = git_commit(root)
    if commit is None and prepared is not None and prepared.is_file():
        record = json.loads(prepared.read_text())
        commit = record["commit"] if record["code_md5"] == digest else f"{record['commit'].split('+')[0]}+changes"
    return {"commit": commit or "unknown", "code_md5": digest}


def text(version: dict) -> str:
    return f"commit {version['commit']} (code md5 {version['code_md5'][:12]})"


def current() -> str:
    """What a benchmark records as its code: MYGO_BENCH_VERSION where bench/gpu_check.sh set it
    (the prepared commit, on a copy without git), else this checkout described."""
    return os.environ.get("MYGO_BENCH_VERSION") or text(describe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", metavar="JSON", help="write the version to this file")
    parser.add_argument("--prepared", metavar="JSON", help="a version written earlier, for a copy without git")
    args = parser.parse_args()
    version = describe(ROOT, Path(args.prepared) if args.prepared else None)
    if args.write:
        Path(args.write).write_text(json.dumps(version) + "\n")
    print(text(version))


if __name__ == "__main__":
    main()
