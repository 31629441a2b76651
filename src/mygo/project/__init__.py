"""A pipeline project of one's own: what `mygo init DIR` writes.

The package carries the pipeline's `dvc.yaml` (`dvc.yaml.template`, rendered from this repository's: its stages run
`mygo <stage>` instead of `python stages/<stage>.py`, and do not depend on source files, which
an installed package does not have) and `conf/` (Hydra's config and the recipes; the
repository's `conf` is this folder). `init` adds params.yaml, the generated demo data in
data/raw/demo, and git and DVC set up with Hydra composition on.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "dvc.yaml.template"     # not named dvc.yaml: DVC would read it as a pipeline here
CODE_DEP = re.compile(r"^\s*- (stages/|src/mygo/)\S*\s*$")
STAGE_CMD = re.compile(r"python stages/(\w+)\.py")
COMMAND_OF = {"check_params": "validate-params"}


def render_dvc_yaml(text: str) -> str:
    """The repository's dvc.yaml as an installed package runs it: `mygo <command>` stages, no
    source-file deps."""
    out = []
    for line in text.splitlines(keepends=True):
        if CODE_DEP.match(line):
            continue
        line = STAGE_CMD.sub(lambda m: f"mygo {COMMAND_OF.get(m[1], m[1].replace('_', '-'))}", line)
        out.append(line.replace("python scripts/plots.py", "mygo plots"))
    # a deps list left empty (check_params depends on code only) goes with its key
    out = [line for i, line in enumerate(out)
           if not (line.strip() == "deps:" and (i + 1 == len(out) or not out[i + 1].lstrip().startswith("- ")))]
    header = ("# The MyGO pipeline (written by `mygo init`; the stages are `mygo <command> --help`).\n"
              "# `dvc repro` runs the demo; `dvc exp run -S recipe=db15k` the paper's DB15K settings.\n")
    return header + "".join(out)


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"`{' '.join(command)}` in {cwd} failed: {result.stderr.strip() or result.stdout.strip()}")


def init(directory: str | Path, git: bool = True) -> tuple[Path, str]:
    """Write a ready pipeline project into `directory` (new or empty) and, with git, make its first
    commit; returns its path and the command that runs the demo there (which commits first where
    git has no identity to commit with)."""
    from mygo import demo
    from mygo.params import defaults
    import yaml

    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root}: not empty; `mygo init` writes a new project into a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text(TEMPLATE.read_text())
    shutil.copytree(HERE / "conf", root / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(defaults(), sort_keys=False))
    demo.build(root / "data" / "raw" / "demo")
    (root / ".gitignore").write_text("/models/resume/\n/dvc_plots/\n")
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    command = f"cd {shlex.quote(str(root))} && dvc repro"
    if git and shutil.which("git"):
        _run(["git", "init", "-q"], root)
        _run([dvc, "init", "-q"], root)
        _run([dvc, "config", "hydra.enabled", "true"], root)
        _run(["git", "add", "-A"], root)
        committed = subprocess.run(["git", "commit", "-q", "-m", "MyGO project (mygo init)"], cwd=root,
                                   capture_output=True, text=True)
        if committed.returncode != 0:              # no user.name / user.email: the user commits
            command = (f"cd {shlex.quote(str(root))} && git config user.name 'Your Name' && "
                       "git config user.email you@example.com && git commit -qm 'MyGO project' && dvc repro")
    else:
        _run([dvc, "init", "-q", "--no-scm"], root)
        _run([dvc, "config", "hydra.enabled", "true"], root)
    return root, command
