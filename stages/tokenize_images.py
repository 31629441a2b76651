"""The `tokenize_images` stage of dvc.yaml: `mygo tokenize-images` (src/mygo/cli/tokenize_images.py; `--help` lists its arguments)."""
from mygo.cli import tokenize_images, stage_main

if __name__ == "__main__":
    stage_main(tokenize_images)
