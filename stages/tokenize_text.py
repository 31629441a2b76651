"""The `tokenize_text` stage of dvc.yaml: `mygo tokenize-text` (src/mygo/cli/tokenize_text.py; `--help` lists its arguments)."""
from mygo.cli import tokenize_text, stage_main

if __name__ == "__main__":
    stage_main(tokenize_text)
