"""check_params: validate the whole params file before any other stage runs.

Every stage in dvc.yaml depends on this stage's output, so DVC runs it first whenever a param
changes, and a bad value (`dvc exp run -S max_vis_token=-3`) stops the run here, before DVC
removes any stage's outputs. Its output is a constant marker: a valid change re-runs only the
stages whose params changed.
"""
import argparse
import logging

from mygo.config import run_main
from mygo.io import atomic_path
from mygo.params import load_params

MARKER = "params.yaml validated by stages/check_params.py\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("marker", help="file to write when the params are valid (its content never changes)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    load_params(args.params)
    with atomic_path(args.marker) as tmp:
        tmp.write_text(MARKER)
    logging.getLogger("mygo.check_params").info("%s: every param is valid", args.params)


if __name__ == "__main__":
    run_main(main)
