"""validate-params: check a whole params file (every section, every key) and say what is wrong.

As the pipeline's first stage (`stages/check_params.py MARKER`) it also writes a constant marker
that every other stage depends on, so DVC runs the check whenever a param changes and a bad value
(`dvc exp run -S max_vis_token=-3`) stops the run here, before DVC removes any stage's outputs;
a valid change re-runs only the stages whose params changed.
"""
from __future__ import annotations

import logging
from pathlib import Path

MARKER = "params.yaml validated by stages/check_params.py\n"


def add_arguments(parser) -> None:
    parser.add_argument("marker", nargs="?", help="file to write when the params are valid (its content never changes)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--raw-dir", default="data/raw", help="where the datasets are (checked when it exists)")


def check_dataset(dataset: str, raw_dir: Path, params_path: str) -> None:
    """`dataset` names a folder of `raw_dir`; else the error lists the folders there."""
    if not raw_dir.is_dir() or (raw_dir / dataset).is_dir():
        return
    present = sorted(p.name for p in raw_dir.iterdir() if p.is_dir() or p.name.endswith(".dvc"))
    present = sorted({name.removesuffix(".dvc") for name in present})
    raise ValueError(f"{params_path}: dataset = {dataset!r}: there is no folder {raw_dir / dataset}; datasets "
                     f"present in {raw_dir}: {', '.join(present) or 'none'} (bring one in as docs/paper.md "
                     f"shows)")


def way_back(params_path: str) -> str:
    """How to get back to good params when `params_path` differs from git's last commit (a value
    refused by this check stays in the file `dvc exp run -S` wrote); '' otherwise."""
    import subprocess
    path = Path(params_path).resolve()
    try:
        differs = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path.name], cwd=path.parent,
                                 capture_output=True, timeout=30).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return ""
    if not differs:
        return ""
    return (f"; {params_path} now differs from the last commit: `git checkout {params_path}` restores the "
            "committed params (or run again with a good value, `dvc exp run -S KEY=VALUE`)")


def run(args) -> None:
    import dataclasses

    from mygo.io import atomic_path
    from mygo.params import Section, load_params, log_ignored
    try:
        params = load_params(args.params)
        check_dataset(params.dataset, Path(args.raw_dir), args.params)
    except ValueError as error:
        raise ValueError(f"{error}{way_back(args.params)}") from None
    if args.marker:
        with atomic_path(args.marker) as tmp:
            tmp.write_text(MARKER)
    log = logging.getLogger("mygo.check_params")
    log.info("%s: every param is valid", args.params)
    for field in dataclasses.fields(params):        # every stage's unused params, before any stage runs
        section = getattr(params, field.name)
        if isinstance(section, Section):
            log_ignored(section, log)
