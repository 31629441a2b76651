"""The `download_images` stage of dvc.yaml: `mygo download-images` (src/mygo/cli/download_images.py; `--help` lists its arguments)."""
from mygo.cli import download_images, stage_main

if __name__ == "__main__":
    stage_main(download_images)
