"""conf/config.yaml and docs/params.md, rendered from the declarations in src/mygo/params.py, and
the packaged pipeline (src/mygo/project/dvc.yaml.template) rendered from dvc.yaml.

    python scripts/params_doc.py --write     # after changing a param's default or meaning
    python scripts/params_doc.py             # check: exit 1 naming the files that are stale
"""
import argparse
import sys
from pathlib import Path

from mygo.params import render_config, render_markdown
from mygo.project import render_dvc_yaml

ROOT = Path(__file__).resolve().parents[1]
FILES = {ROOT / "conf/config.yaml": render_config, ROOT / "docs/params.md": render_markdown,
         ROOT / "src/mygo/project/dvc.yaml.template": lambda: render_dvc_yaml((ROOT / "dvc.yaml").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the files")
    args = parser.parse_args()
    stale = [path for path, render in FILES.items() if not path.exists() or path.read_text() != render()]
    if args.write:
        for path in stale:
            path.write_text(FILES[path]())
            sys.stderr.write(f"wrote {path.relative_to(ROOT)}\n")
    elif stale:
        sys.exit("stale (run `python scripts/params_doc.py --write`): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))


if __name__ == "__main__":
    main()
