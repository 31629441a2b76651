"""Render `dvc plots diff` offline and screenshot it with headless Chromium.

    python scripts/render_plots.py --vega-dir node_modules --out docs/plots.png [REVISION ...]

DVC's HTML loads Vega from a CDN; this inlines local copies instead (`npm install vega@5
vega-lite@5 vega-embed@6` provides them), so it works without network.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="*", help="git revisions or experiment names to compare")
    parser.add_argument("--vega-dir", required=True, help="node_modules holding vega, vega-lite, vega-embed")
    parser.add_argument("--out", default="docs/plots.png")
    parser.add_argument("--size", default="1500,1100")
    args = parser.parse_args()
    modules = Path(args.vega_dir)
    scripts = "".join(f"<script>{(modules / name / 'build' / f'{name}.min.js').read_text()}</script>\n"
                      for name in ("vega", "vega-lite", "vega-embed"))
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        # DVC's own CDN script tags land inside the comment and are never loaded.
        template.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>MyGO plots</title>"
                            f"{scripts}<!-- {{scripts}} --></head><body>{{plot_divs}}</body></html>")
        command = ["dvc", "plots", "diff", *args.revisions, "--html-template", str(template), "-o", f"{tmp}/plots"]
        subprocess.run(command, check=True)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            sys.exit("chromium not found (Debian: apt-get install chromium)")
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp}/profile", f"--window-size={args.size}", "--hide-scrollbars",
                        "--virtual-time-budget=10000", f"--screenshot={out}",
                        (Path(tmp) / "plots" / "index.html").as_uri()], check=True, capture_output=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
