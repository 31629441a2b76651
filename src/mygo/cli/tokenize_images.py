"""tokenize_images: downloaded images -> per-image codebook ids + the frozen codebook table."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mygo.tokenize_images")
USES_TORCH = True


def add_arguments(parser) -> None:
    parser.add_argument("manifest", help="download_images manifest")
    parser.add_argument("images_dir", help="download_images' image store")
    parser.add_argument("out_dir", help="the image-token folder to write")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    from mygo.device import pick_device
    from mygo.folders import ImageManifest, ImageTokensFolder
    from mygo.params import load_section
    from mygo.vision import build_tokenizer, tokenize_images
    config = load_section(args.params, "tokenize_images", log)
    manifest = ImageManifest(args.manifest).read().to_pylist()
    rows = [r for r in manifest if r["status"] == "ok"]
    paths = [Path(args.images_dir) / r["path"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{args.manifest}: {len(missing)} images listed as ok are not in {args.images_dir}, "
                         f"e.g. {missing[0]}")
    tokenizer, size = build_tokenizer(config, quiet=not rows)
    ids = tokenize_images(tokenizer, paths, size, config.batch_size, pick_device(config.device))
    ImageTokensFolder(args.out_dir).write([r["entity"] for r in rows], [r["path"] for r in rows], ids,
                                          tokenizer.codebook().cpu(), config.provenance())
    log.info("tokenized %d images of %d entities into %d ids each (%s, %d px) -> %s", len(rows),
             len({r["entity"] for r in rows}), len(ids[0]) if ids else 0, config.image_tokenizer, size, args.out_dir)
