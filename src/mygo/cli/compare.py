"""compare: experiments side by side, and which differences stand above the seed noise.

    mygo compare                                    # the params that differ, headline metrics over seeds
    mygo compare --baseline main                    # each difference against main's group, with a verdict
    mygo compare --baseline main --per-relation     # test MRR per relation, the largest changes first
    mygo compare --baseline main --per-relation --relations has_color,made_of
    mygo compare --format markdown > runs.md        # for reports: also --format csv / json
    mygo compare --json show.json                   # a saved `dvc exp show --json` instead of running it
    mygo compare -- -A                              # arguments after -- go to `dvc exp show`

The default table is for a terminal: param names cut to their last part, three decimals, a group
of many runs named by their common prefix ("m16-*"; the legend below lists them); Markdown, CSV
and JSON give every name and four decimals.

Runs that differ only in train.seed form one group (mean ± std over its seeds). The workspace is
a row whenever its results differ from its commit's; a run still training shows "(training)"
without test metrics. The verdict is Welch's t-test over seeds (two-sided, p < 0.05: "above the
noise", else "within the noise"); a side with one seed gets "one seed only (cannot tell)",
whatever the difference. Per-relation metrics come from each run's metrics/per_relation.json
(`git show` for commits and experiments).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--baseline", metavar="NAME",
                        help="a run (experiment, branch, short hash or `workspace`), or the prefix that names one "
                             "seed group's runs (structure-only for structure-only-s1, -s2, ...), whose group the "
                             "others are compared against, with verdicts (default: none, the plain table)")
    parser.add_argument("--per-relation", action="store_true",
                        help="with --baseline: test MRR per relation instead of the headline metrics")
    parser.add_argument("--relations", metavar="A,B",
                        help="with --per-relation: only these relations (comma-separated; default: all)")
    parser.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table",
                        help="table: aligned for a terminal (120 columns for a typical sweep); markdown, csv, json: "
                             "for reports, every name and digit (default: table)")
    parser.add_argument("--csv", action="store_true", help="the same as --format csv")
    parser.add_argument("--percent", action="store_true", help="metrics in percent, as papers report them "
                                                               "(best epoch as is; default: fractions)")
    parser.add_argument("--json", metavar="FILE",
                        help="a saved `dvc exp show --json` (default: run `dvc exp show --json` here)")
    parser.add_argument("show_args", nargs="*", help="extra arguments for `dvc exp show` (after --)")


def _load(args) -> list:
    if args.json:
        try:
            return json.loads(Path(args.json).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.json}: line {err.lineno}: not JSON ({err.msg})") from None
        except OSError as err:
            raise ValueError(f"{args.json}: {err.strerror}") from None
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    result = subprocess.run([dvc, "exp", "show", "--json", *args.show_args], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise ValueError(f"`dvc exp show --json` failed: {last}")
    return json.loads(result.stdout)


def run(args) -> None:
    import textwrap

    from mygo.compare import (against_baseline, as_csv, as_json, legend, markdown, per_relation, runs_from_exp_show,
                              table, text)
    if (args.per_relation or args.relations) and not args.baseline:
        raise ValueError("--per-relation and --relations compare against a baseline: add --baseline NAME")
    if args.relations and not args.per_relation:
        raise ValueError("--relations restricts --per-relation: add --per-relation")
    show = _load(args)
    try:
        runs = runs_from_exp_show(show)
    except ValueError as err:
        raise ValueError(f"{args.json or '`dvc exp show --json`'}: {err}") from None
    if not runs:
        raise ValueError("no experiments to compare (run `dvc exp run -n NAME ...` first)")
    fmt = "csv" if args.csv else args.format
    style = {"percent": args.percent, "compact": fmt == "table"}
    if args.per_relation:
        relations = [r.strip() for r in args.relations.split(",") if r.strip()] if args.relations else None
        header, rows = per_relation(runs, args.baseline, relations, **style)
    elif args.baseline:
        header, rows = against_baseline(runs, args.baseline, **style)
    else:
        header, rows = table(runs, **style)
    if fmt == "csv":
        sys.stdout.write(as_csv(header, rows))
    elif fmt == "json":
        sys.stdout.write(as_json(header, rows))
    else:                                    # a table for people: which row is which below it
        note = legend(runs)
        if fmt == "table":
            sys.stdout.write(text(header, rows))
            note = textwrap.fill(note, 120, break_on_hyphens=False) + "\n" if note else ""
        else:
            sys.stdout.write(markdown(header, rows))
        if note:
            sys.stdout.write("\n" + note)
