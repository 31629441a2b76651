"""`mygo compare` (src/mygo/cli/compare.py) as a script: `python scripts/compare.py --help`."""
from mygo.cli import compare, stage_main

if __name__ == "__main__":
    stage_main(compare)
