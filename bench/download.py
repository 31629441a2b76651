"""Image download throughput against a local HTTP server that adds latency to every request.

    python bench/download.py [--latency 0.05] [--images 256] [--out bench/results/download.md]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from http_server import ImageServer  # noqa: E402
from mygo.download import DownloadImagesParams, download_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", default="1,4,16,64")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    with ImageServer(delay=args.latency) as server:
        for workers in map(int, args.workers.split(",")):
            config = DownloadImagesParams(workers=workers, timeout=10.0, max_side=512)
            jobs = [(i, f"{server.url}/img/w{workers}-{i}.png") for i in range(args.images)]
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                results = download_all(jobs, tmp, tmp, config, progress=False)
                elapsed = time.perf_counter() - started
            assert all(r.status == "ok" for r in results)
            rows.append((workers, elapsed, args.images / elapsed))
            print(f"{workers} workers: {args.images / elapsed:.1f} images/s", flush=True)
    text = (f"Command: `python bench/download.py --latency {args.latency} --images {args.images}` "
            f"(local server on 127.0.0.1, {args.latency * 1000:.0f} ms added per request, 40 x 30 PNG, "
            f"each image decoded, validated and stored)\n\n| workers | seconds | images / s |\n|---|---|---|\n"
            + "".join(f"| {w} | {s:.2f} | {r:.1f} |\n" for w, s, r in rows))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
