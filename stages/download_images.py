"""download_images: entities' image URLs -> validated RGB PNGs + a manifest of every URL.

The image directory persists between runs (a `persist` output in dvc.yaml): files already
downloaded and valid are never fetched again, so an interrupted run resumes where it stopped.
"""
import argparse
import collections
import json
import logging
from pathlib import Path

import pyarrow as pa

from mygo import tables
from mygo.config import run_main
from mygo.params import load_params
from mygo.download import download_all, select_jobs, stored_name
from mygo.io import write_json

log = logging.getLogger("mygo.download_images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kg_dir")
    parser.add_argument("images_dir", help="persistent store of downloaded images")
    parser.add_argument("manifest", help="Parquet manifest to write, one row per URL")
    parser.add_argument("--base-dir", default=".", help="directory that relative image paths start from")
    parser.add_argument("--summary", help="summary JSON to write (a DVC metric)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    config = load_params(args.params).download_images
    entities = tables.read_entities(Path(args.kg_dir) / "entities.parquet")
    jobs = select_jobs(entities["image_urls"].to_pylist(), config.max_images_per_entity)
    images_dir = Path(args.images_dir)
    # Files of URLs no longer listed are removed, so the store holds exactly this dataset's images.
    wanted = {stored_name(url) for _, url in jobs}
    if images_dir.exists():
        for path in [*images_dir.glob("*.png"), *images_dir.glob("*.json")]:
            if path.with_suffix(".png").name not in wanted:
                path.unlink()
    results = download_all(jobs, images_dir, args.base_dir, config)
    table = pa.table({
        "entity": [r.entity for r in results], "url": [r.url for r in results],
        "status": [r.status for r in results], "http_code": pa.array([r.http_code for r in results], pa.int32()),
        "attempts": [r.attempts for r in results], "bytes": [r.bytes for r in results],
        "sha256": [r.sha256 for r in results], "path": [r.path for r in results],
        "error": [r.error for r in results],
    }) if results else tables.IMAGE_MANIFEST.empty_table()
    tables.write_image_manifest(args.manifest, table)
    counts = collections.Counter(r.status for r in results)
    failed = len(results) - counts.get("ok", 0)
    rate = failed / len(results) if results else 0.0
    summary = {"urls": len(results), "ok": counts.get("ok", 0), "failed": failed, "failure_rate": rate,
               "entities_with_images": len({r.entity for r in results if r.status == "ok"}),
               "by_status": dict(sorted(counts.items()))}
    if args.summary:
        write_json(args.summary, summary)
    log.info("images: %d ok, %d failed of %d URLs (%s) -> %s", summary["ok"], failed, len(results),
             json.dumps(summary["by_status"]), images_dir)
    if rate > config.max_failure_rate:
        raise ValueError(f"{failed} of {len(results)} image downloads failed ({rate:.1%}), more than "
                         f"download_images.max_failure_rate={config.max_failure_rate:.1%}; see {args.manifest}")


if __name__ == "__main__":
    run_main(main)
