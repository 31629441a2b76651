"""The pinned CPU mode (param `reproducible`, the default): the same training gives the same bytes
whatever the shell asks for (another CPU capability, BLAS path or thread count), which is what
differs between CPU kinds; the fast mode follows the machine and, where it offers AVX-512,
gives other bytes."""
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from mygo import reproducible

SHELLS = [{}, {"ATEN_CPU_CAPABILITY": "avx512"}, {"ATEN_CPU_CAPABILITY": "default"}, {"OMP_NUM_THREADS": "2"},
          {"MKL_CBWR": "AUTO", "MKL_NUM_THREADS": "2"}, {"MKL_CBWR": "AVX2,STRICT"}, {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}]


def train(mode: str, shell: dict) -> tuple[str, str, int, str]:
    env = {k: v for k, v in os.environ.items() if k not in reproducible.PINNED_ENV and k != "MYGO_REPRODUCIBLE"}
    env.update(shell, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]))
    out = subprocess.run([sys.executable, str(ROOT / "tests/repro_train.py"), mode], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], out[1], int(out[2]), out[3]


def test_pinned_mode_gives_the_same_weights_whatever_the_shell_says():
    runs = {str(shell): train("pinned", shell) for shell in SHELLS}
    assert {capability for _, capability, _, _ in runs.values()} == {"AVX2"}
    assert {threads for _, _, threads, _ in runs.values()} == {reproducible.THREADS}
    # the branch MKL runs, read back: a request it does not honour on this CPU's vendor (AVX2 on
    # an AMD CPU runs AUTO) would give this machine's bytes, not every machine's
    import torch
    branches = {reproducible.MKL_BRANCH} if torch.backends.mkl.is_available() else {"none"}
    assert {branch for _, _, _, branch in runs.values()} == branches, runs
    assert len({digest for digest, _, _, _ in runs.values()}) == 1, runs


def test_fast_mode_follows_the_machine_and_differs_where_kernels_do():
    best = train("fast", {})
    avx2 = train("fast", {"ATEN_CPU_CAPABILITY": "avx2"})
    assert avx2[1] == "AVX2"
    if best[1] == "AVX2":
        pytest.skip("this CPU's best kernels are the pinned AVX2 ones: nothing differs to show")
    assert best[0] != avx2[0], "AVX-512 and AVX2 kernels gave the same weights: the pin would not be needed"
    assert best[0] != train("pinned", {})[0]


def test_apply_reads_the_param_and_the_recipes_choose(tmp_path):
    assert reproducible.wanted(ROOT / "params.yaml") is True
    for recipe in ("db15k", "mkg-w", "mkg-y"):
        assert yaml.safe_load((ROOT / f"conf/recipe/{recipe}.yaml").read_text())["reproducible"] is False
    (tmp_path / "fast.yaml").write_text("reproducible: false\n")
    assert reproducible.wanted(tmp_path / "fast.yaml") is False
    for broken in ("reproducible: [\n", "- a list\n"):       # the params check reports these
        (tmp_path / "broken.yaml").write_text(broken)
        assert reproducible.wanted(tmp_path / "broken.yaml") is True
    assert reproducible.wanted(tmp_path / "missing.yaml") is True


def test_check_warns_when_mkl_runs_another_path(monkeypatch, caplog):
    """A pinned process whose MKL runs another path than the pinned one says so in its first
    log line, as it does for torch's kernels."""
    import torch
    monkeypatch.setenv("MYGO_REPRODUCIBLE", "1")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: reproducible.CAPABILITY)
    threads = torch.get_num_threads()
    try:
        for branch, warned in (("AUTO", True), (reproducible.MKL_BRANCH, False), (None, False)):
            monkeypatch.setattr(reproducible, "mkl_branch", lambda branch=branch: branch)
            caplog.clear()
            with caplog.at_level("INFO", logger="mygo.reproducible"):
                reproducible.check()
            assert ("MKL runs its AUTO path here, not COMPATIBLE" in caplog.text) is warned, caplog.text
    finally:
        torch.set_num_threads(threads)
