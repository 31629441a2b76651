"""The `check_params` stage of dvc.yaml: `mygo validate-params` (src/mygo/cli/check_params.py; `--help` lists its arguments)."""
from mygo.cli import check_params, stage_main

if __name__ == "__main__":
    stage_main(check_params)
