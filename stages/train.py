"""The `train` stage of dvc.yaml: `mygo train` (src/mygo/cli/train.py; `--help` lists its arguments)."""
from mygo.cli import train, stage_main

if __name__ == "__main__":
    stage_main(train)
