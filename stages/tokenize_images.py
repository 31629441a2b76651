"""tokenize_images: downloaded images -> per-image codebook ids + the frozen codebook table."""
import argparse
import logging
from pathlib import Path

import pyarrow as pa

from mygo import tables
from mygo.config import run_main
from mygo.params import load_params
from mygo.io import atomic_dir, save_torch
from mygo.device import pick_device
from mygo.vision import build_tokenizer, tokenize_images

log = logging.getLogger("mygo.tokenize_images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest", help="download_images manifest")
    parser.add_argument("images_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    config = load_params(args.params).tokenize_images
    manifest = tables.read_image_manifest(args.manifest).to_pylist()
    rows = [r for r in manifest if r["status"] == "ok"]
    paths = [Path(args.images_dir) / r["path"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{args.manifest}: {len(missing)} images listed as ok are not in {args.images_dir}, "
                         f"e.g. {missing[0]}")
    tokenizer, size = build_tokenizer(config)
    ids = tokenize_images(tokenizer, paths, size, config.batch_size, pick_device(config.device))
    with atomic_dir(args.out_dir) as tmp:
        tables.write_image_tokens(tmp / "image_tokens.parquet", pa.table({
            "entity": pa.array([r["entity"] for r in rows], pa.int32()),
            "image": [r["path"] for r in rows],
            "tokens": pa.array(ids, type=pa.list_(pa.int32())),
        }))
        save_torch(tmp / "codebook.pt", {"weight": tokenizer.codebook().cpu(), "tokenizer": config.image_tokenizer,
                                         "checkpoint": config.image_checkpoint})
    log.info("tokenized %d images of %d entities into %d ids each (%s, %d px) -> %s", len(rows),
             len({r["entity"] for r in rows}), len(ids[0]) if ids else 0, config.image_tokenizer, size, args.out_dir)


if __name__ == "__main__":
    run_main(main)
