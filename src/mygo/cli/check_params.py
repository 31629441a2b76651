"""validate-params: check a whole params file (every section, every key) and say what is wrong.

As the pipeline's first stage (`stages/check_params.py MARKER`) it also writes a constant marker
that every other stage depends on, so DVC runs the check whenever a param changes and a bad value
(`dvc exp run -S max_vis_token=-3`) stops the run here, before DVC removes any stage's outputs;
a valid change re-runs only the stages whose params changed.
"""
from __future__ import annotations

import logging

MARKER = "params.yaml validated by stages/check_params.py\n"


def add_arguments(parser) -> None:
    parser.add_argument("marker", nargs="?", help="file to write when the params are valid (its content never changes)")
    parser.add_argument("--params", default="params.yaml")


def run(args) -> None:
    from mygo.io import atomic_path
    from mygo.params import load_params
    load_params(args.params)
    if args.marker:
        with atomic_path(args.marker) as tmp:
            tmp.write_text(MARKER)
    logging.getLogger("mygo.check_params").info("%s: every param is valid", args.params)
