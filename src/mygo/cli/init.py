"""init: write a ready DVC pipeline project (dvc.yaml, conf/, params.yaml, the demo data).

    mygo init my-project && cd my-project && dvc repro        # the demo, end to end
    dvc exp run -n m16 -S max_vis_token=16                     # then experiments, as in this README

The folder must be new or empty. It becomes a git repository (when git is installed) with DVC
initialised, Hydra composition on and everything committed, so `dvc repro` and
`dvc exp run -S ...` work at once. Where git has no identity to commit with (no user.name and
user.email), the printed command sets one and commits first.
"""
from __future__ import annotations

import logging


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="the project folder to create (new or empty)")
    parser.add_argument("--no-git", action="store_true", help="no git repository (DVC without SCM: no experiments)")


def run(args) -> None:
    from mygo.project import init
    root, command = init(args.directory, git=not args.no_git)
    logging.getLogger("mygo.init").info("wrote a MyGO pipeline project in %s; run the demo with:\n    %s",
                                        root, command)
