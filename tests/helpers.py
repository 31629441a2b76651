"""Helpers the tests share: a tiny model, a batch of queries, a tiny graph, and running git and
DVC in temporary clones of this repository."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mygo import fast
from mygo.folders import EntityTokens
from mygo.model import ModelConfig, MyGO

ROOT = Path(__file__).resolve().parents[1]

TRAIN = np.array([[0, 0, 1], [2, 1, 3], [4, 2, 5], [6, 0, 2], [1, 1, 4], [3, 2, 0]])
VALID = np.array([[0, 0, 1], [5, 0, 6], [5, 0, 6]])


def tiny_tokens(num_entities=7, m=3, n=2) -> EntityTokens:
    """Random token ids for `num_entities` entities (some without visual or text tokens) and the
    5 x 4 visual and 6 x 5 text tables they index (row 0: padding)."""
    g = torch.Generator().manual_seed(0)
    visual_mask = torch.rand(num_entities, m, generator=g) < 0.6
    text_mask = torch.rand(num_entities, n, generator=g) < 0.6
    visual_mask[0] = False                                     # an entity with no visual tokens
    visual_ids = torch.randint(1, 5, (num_entities, m), generator=g) * visual_mask
    text_ids = torch.randint(1, 6, (num_entities, n), generator=g) * text_mask
    visual_table = torch.randn(5, 4, generator=g)
    text_table = torch.randn(6, 5, generator=g)
    visual_table[0] = 0
    text_table[0] = 0
    return EntityTokens(visual_ids, visual_mask, text_ids, text_mask, visual_table, text_table)


def tiny_model(num_entities=7, num_relations=3, dim=8, kernels="fast", distributed_step=False, **overrides) -> MyGO:
    """A 7-entity MyGO with `tiny_tokens`, built from mygo.fast.ops(kernels)."""
    t = tiny_tokens(num_entities)
    config = ModelConfig(num_entities=num_entities, num_relations=num_relations, max_vis_token=3,
                         max_txt_token=2, visual_rows=5, visual_dim=4, text_rows=6, text_dim=5, dim=dim,
                         hidden_dim=16, num_head=2, **overrides)
    torch.manual_seed(0)
    return MyGO(config, t.visual_table, t.visual_ids, t.visual_mask, t.text_table, t.text_ids, t.text_mask,
                fast.ops(kernels, distributed_step=distributed_step))


def batch(model, B=5):
    g = torch.Generator().manual_seed(1)
    N, R = model.config.num_entities, model.config.num_relations
    return (torch.randint(0, N, (B,), generator=g), torch.randint(0, R, (B,), generator=g),
            torch.rand(B, generator=g) < 0.5, torch.randint(0, N, (B,), generator=g))


BIN = Path(sys.executable).parent
FAST_TRAIN = {"epochs": 6, "eval_every": 3}


def env_for(clone: Path) -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(clone / "src"),
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def sh(clone: Path, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=clone, env=env_for(clone), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def dvc(clone, *args, check=True):
    return sh(clone, str(BIN / "dvc"), *args, check=check)


def run_queue(clone: Path, timeout: float, tasks: int) -> str:
    """Start one DVC queue worker, wait until `tasks` tasks have finished and none is queued or
    running, stop the worker, and return the last `dvc queue status`. The worker is a daemon that
    outlives `dvc queue start`, so its output goes to a file (a pipe it inherited would keep this
    process waiting for as long as the worker idles), and it is stopped even when the wait fails."""
    log = clone.parent / f"{clone.name}-queue.log"
    with open(log, "w") as out:
        started = subprocess.run([str(BIN / "dvc"), "queue", "start", "-j", "1"], cwd=clone, env=env_for(clone),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    assert started.returncode == 0, log.read_text()[-4000:]
    return wait_for_queue(clone, timeout, log, tasks)


def wait_for_queue(clone: Path, timeout: float, log: Path, tasks: int) -> str:
    """Wait until `tasks` tasks of a started queue have finished (succeeded or failed) and none is
    queued or running, stop its worker (also when the wait fails) and return the last
    `dvc queue status`; `log` holds the worker's output. Counting finished tasks matters: for a
    moment after the worker takes the next task off the queue, `dvc queue status` lists it neither
    as queued nor as running, so "nothing queued or running" alone can end the wait one task early."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            status = dvc(clone, "queue", "status").stdout
            finished = len(re.findall(r"\b(Success|Failed)\b", status))
            if finished >= tasks and not re.search(r"\b(Queued|Running)\b", status):
                break
            assert time.monotonic() < deadline, f"queue not done in {timeout:.0f} s:\n{status}\n{log.read_text()[-4000:]}"
            time.sleep(3)
    finally:
        try:
            subprocess.run([str(BIN / "dvc"), "queue", "stop", "--kill"], cwd=clone, env=env_for(clone),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        except subprocess.TimeoutExpired:
            pass
    return status


def ran(result) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr)


def make_clone(tmp_path: Path, name: str, source: Path = ROOT) -> Path:
    clone = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    # params.yaml for `dvc repro`, conf/config.yaml for `dvc exp run` (which composes params.yaml from it)
    for path in (clone / "params.yaml", clone / "conf" / "config.yaml"):
        params = yaml.safe_load(path.read_text())
        params["train"].update(FAST_TRAIN)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    sh(clone, "git", "commit", "-qam", "fast params for tests")
    return clone
