"""The `prepare` stage of dvc.yaml: `mygo prepare` (src/mygo/cli/prepare.py; `--help` lists its arguments)."""
from mygo.cli import prepare, stage_main

if __name__ == "__main__":
    stage_main(prepare)
