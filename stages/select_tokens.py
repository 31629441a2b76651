"""The `select_tokens` stage of dvc.yaml: `mygo select-tokens` (src/mygo/cli/select_tokens.py; `--help` lists its arguments)."""
from mygo.cli import select_tokens, stage_main

if __name__ == "__main__":
    stage_main(select_tokens)
