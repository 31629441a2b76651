"""The `evaluate` stage of dvc.yaml: `mygo evaluate` (src/mygo/cli/evaluate.py; `--help` lists its arguments)."""
from mygo.cli import evaluate, stage_main

if __name__ == "__main__":
    stage_main(evaluate)
