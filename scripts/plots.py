"""`mygo plots` (src/mygo/cli/plots.py) as a script: `python scripts/plots.py --help`."""
from mygo.cli import plots, stage_main

if __name__ == "__main__":
    stage_main(plots)
