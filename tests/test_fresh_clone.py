"""`make repro`'s promise, end to end: a fresh clone reproduces the committed results byte for
byte. A file of its own, so that `make test`'s processes run it beside the other end-to-end tests."""
import subprocess

import pytest

from conftest import ROOT
from helpers import dvc, sh

pytestmark = pytest.mark.slow


def test_a_fresh_clone_reproduces_the_committed_results(tmp_path):
    """With the committed params, a fresh clone's `dvc repro` gives the committed dvc.lock and
    metrics, byte for byte (the pinned CPU mode), leaving git clean."""
    clone = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    dvc(clone, "repro")
    assert sh(clone, "git", "status", "--porcelain").stdout.strip() == ""
