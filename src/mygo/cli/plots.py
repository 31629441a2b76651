"""plots: training curves and per-relation MRR as images, offline: no browser, no CDN, no npm.

    mygo plots                          # the workspace
    mygo plots HEAD my-experiment       # runs side by side (git revisions or experiment names)
    mygo plots --out dvc_plots --format svg

Takes the plots that dvc.yaml declares from `dvc plots diff --json` (so it sees exactly what
`dvc plots show` would) and renders each Vega-Lite spec with vl-convert, which bundles Vega:
loss (total, KGC and contrastive parts), learning rate, valid MRR and test MRR per relation
(bars from zero). Writes one image per plot and an index.html that shows them all.
"""
from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path


def dvc_plot_specs(revisions: list[str]) -> dict[str, dict]:
    """{plot id: Vega-Lite spec with its data inline} from DVC."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    command = [dvc, "plots", "diff", "--json", *revisions] if revisions else [dvc, "plots", "show", "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    for error in data.get("errors", []) or []:
        print(f"warning: {error}", file=sys.stderr)
    specs = {}
    for plot_id, entries in data.get("data", {}).items():
        for entry in entries:
            if entry.get("type") == "vega" and entry.get("content"):
                specs[plot_id] = entry["content"]
    if not specs:
        raise ValueError("no plot data: run the pipeline first (`dvc repro`)")
    return specs


def bars_from_zero(spec: dict) -> dict:
    """Quantitative axes of bar charts start at zero (a bar's length is its value)."""
    def visit(node):
        if isinstance(node, dict):
            mark = node.get("mark")
            mark = mark.get("type") if isinstance(mark, dict) else mark
            if mark == "bar":
                for channel in node.get("encoding", {}).values():
                    if isinstance(channel, dict) and channel.get("type") == "quantitative":
                        channel.setdefault("scale", {})["zero"] = True
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(spec)
    return spec


def add_arguments(parser) -> None:
    parser.add_argument("revisions", nargs="*", help="git revisions or experiment names to compare")
    parser.add_argument("--out", default="dvc_plots", help="directory for the images and index.html")
    parser.add_argument("--format", choices=("png", "svg"), default="png", help="image format (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=2.0, help="PNG pixel scale")


def check(args) -> str | None:
    """A usage error in the arguments, or None."""
    if not args.scale > 0:
        return f"--scale {args.scale}: must be > 0"
    return None


def run(args) -> None:
    import vl_convert

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for plot_id, spec in dvc_plot_specs(args.revisions).items():
        spec = bars_from_zero(spec)
        name = plot_id.replace("/", "_").replace(".", "_") + f".{args.format}"
        if args.format == "png":
            (out / name).write_bytes(vl_convert.vegalite_to_png(spec, scale=args.scale))
        else:
            (out / name).write_text(vl_convert.vegalite_to_svg(spec))
        written.append((plot_id, name))
        print(out / name)
    title = "MyGO plots" + (f": {', '.join(args.revisions)}" if args.revisions else "")
    body = "".join(f"<h2>{html.escape(plot_id)}</h2><img src='{name}' style='max-width:100%'>\n"
                   for plot_id, name in written)
    (out / "index.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                                    f"</title></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")
    print(out / "index.html")

