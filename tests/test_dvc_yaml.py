"""dvc.yaml is consistent with the code: every stage depends on exactly the library modules it
imports (transitively), runs its own script, and its params exist in params.yaml."""
import ast
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def mygo_imports(path: Path, seen: set[str] | None = None) -> set[str]:
    """Library module files imported by `path`, transitively."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mygo"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("mygo")]
        for name in names:
            path_of = ROOT / "src" / name.replace(".", "/")
            for file in (path_of.with_suffix(".py"), path_of / "__init__.py"):    # a module or a package
                if file.exists() and file != ROOT / "src/mygo/__init__.py" and str(file) not in seen:
                    seen.add(str(file))
                    mygo_imports(file, seen)
    return seen


@pytest.mark.parametrize("stage", sorted(DVC))
def test_deps_are_the_imported_modules(stage):
    spec = DVC[stage]
    script = ROOT / "stages" / f"{stage}.py"
    assert f"stages/{stage}.py" in spec["cmd"] and f"stages/{stage}.py" in spec["deps"]
    imported = {str(Path(p).relative_to(ROOT)) for p in mygo_imports(script)}
    listed = {d for d in spec["deps"] if d.startswith("src/mygo/") and d.endswith(".py")}
    assert imported == listed, f"{stage}: missing {sorted(imported - listed)}, extra {sorted(listed - imported)}"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_params_exist(stage):
    for key in DVC[stage].get("params", []):
        if isinstance(key, dict):                  # `- params.yaml:`: the whole file (check_params)
            assert list(key) == ["params.yaml"] and stage == "check_params"
            continue
        node = PARAMS
        for part in key.split("."):
            assert part in node, f"{stage}: param {key} not in params.yaml"
            node = node[part]


def test_every_stage_waits_for_the_params_check():
    """check_params validates the whole file before any stage runs (and so before DVC removes
    any stage's outputs): every other stage depends on its output."""
    marker = DVC["check_params"]["outs"][0]
    marker = next(iter(marker)) if isinstance(marker, dict) else marker
    assert all(marker in spec["deps"] for name, spec in DVC.items() if name != "check_params")
