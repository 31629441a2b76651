"""Build the demo knowledge graph (named format) into a folder; deterministic for a seed.

    python scripts/make_demo.py [data/raw/demo] [--seed 7]
"""
import argparse
import logging

from mygo.config import setup_logging
from mygo.demo import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", default="data/raw/demo")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    setup_logging()
    build(args.out_dir, args.seed)
    logging.getLogger("mygo.demo").info("wrote the demo dataset to %s", args.out_dir)


if __name__ == "__main__":
    main()
