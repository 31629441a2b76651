"""compare: experiments side by side: the params that differ and the headline metrics (valid and
test MRR, Hits@1/3/10, best epoch), runs that differ only in train.seed as mean ± std.

    mygo compare                     # from `dvc exp show --json`, Markdown
    mygo compare --percent           # metrics in %, as papers report them
    mygo compare --csv > runs.csv
    mygo compare --json show.json    # a saved `dvc exp show --json`
    mygo compare -- -A               # arguments after -- go to `dvc exp show`
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--json", help="a saved `dvc exp show --json` (default: run it here)")
    parser.add_argument("--csv", action="store_true", help="CSV instead of Markdown")
    parser.add_argument("--percent", action="store_true", help="metrics in percent (best epoch as is)")
    parser.add_argument("show_args", nargs="*", help="extra arguments for `dvc exp show` (after --)")


def run(args) -> None:
    from mygo.compare import as_csv, markdown, runs_from_exp_show, table
    if args.json:
        try:
            show = json.loads(Path(args.json).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.json}: line {err.lineno}: not JSON ({err.msg})") from None
    else:
        dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
        result = subprocess.run([dvc, "exp", "show", "--json", *args.show_args], capture_output=True, text=True)
        if result.returncode != 0:
            raise ValueError(f"`dvc exp show --json` failed: {result.stderr.strip().splitlines()[-1:]}")
        show = json.loads(result.stdout)
    runs = runs_from_exp_show(show)
    if not runs:
        raise ValueError("no experiments to compare (run `dvc exp run -n NAME ...` first)")
    header, rows = table(runs, percent=args.percent)
    sys.stdout.write(as_csv(header, rows) if args.csv else markdown(header, rows))
