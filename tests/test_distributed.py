import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from conftest import ROOT

TESTS = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_same_step_as_one(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.pt"
    subprocess.run([sys.executable, str(TESTS / "dist_step.py"), str(single)], check=True, env=env)
    double = tmp_path / "double.pt"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_addr=127.0.0.1", f"--master_port={free_port()}",
                             str(TESTS / "dist_step.py"), str(double)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = torch.load(single, weights_only=True), torch.load(double, weights_only=True)
    assert abs(a["loss"] - b["loss"]) < 1e-5
    for name, value in a["state"].items():
        assert torch.allclose(value.float(), b["state"][name].float(), atol=1e-5), name
