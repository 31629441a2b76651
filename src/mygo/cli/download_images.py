"""download_images: entities' image URLs -> validated RGB PNGs + a manifest of every URL.

The image directory persists between runs (a `persist` output in dvc.yaml): files already
downloaded and valid are never fetched again, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import logging

log = logging.getLogger("mygo.download_images")


def add_arguments(parser) -> None:
    parser.add_argument("kg_dir", help="prepare's KG folder")
    parser.add_argument("images_dir", help="persistent store of downloaded images")
    parser.add_argument("manifest", help="Parquet manifest to write, one row per URL")
    parser.add_argument("--base-dir", default=".", help="directory that relative image paths start from")
    parser.add_argument("--summary", help="summary JSON to write (a DVC metric)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")


def run(args) -> None:
    from mygo.download import download_images
    from mygo.folders import ImageManifest, KGFolder
    from mygo.io import write_json
    from mygo.params import load_section
    config = load_section(args.params, "download_images", log)
    urls = KGFolder(args.kg_dir).entities()["image_urls"].to_pylist()
    manifest, summary = download_images(urls, args.images_dir, args.base_dir, config)
    ImageManifest(args.manifest).write(manifest)
    if args.summary:
        write_json(args.summary, summary)
    if not summary["urls"]:
        log.warning("no entity has an image URL: the visual modality will be empty")
    else:
        log.info("images: %d ok, %d failed of %d URLs (%s) -> %s", summary["ok"], summary["failed"],
                 summary["urls"], json.dumps(summary["by_status"]), args.images_dir)
    if summary["failure_rate"] > config.max_failure_rate:
        raise ValueError(f"{summary['failed']} of {summary['urls']} image downloads failed "
                         f"({summary['failure_rate']:.1%}), more than download_images.max_failure_rate="
                         f"{config.max_failure_rate:.1%}; see {args.manifest}")
