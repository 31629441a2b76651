"""DVCLive in the pipeline: `dvc exp show` lists the training metrics of a run in progress."""
import json
import subprocess
import time

import pytest

from helpers import BIN, env_for, make_clone


def live_metrics(show: list) -> dict | None:
    """The workspace's DVCLive summary in `dvc exp show --json` output, if it has one."""
    for entry in show:
        if entry.get("rev") == "workspace":
            metrics = ((entry.get("data") or {}).get("metrics") or {}).get("metrics/train/metrics.json") or {}
            return metrics.get("data")
    return None


@pytest.mark.slow
def test_exp_show_lists_the_training_metrics_while_a_run_goes(tmp_path):
    clone = make_clone(tmp_path, "live")
    run = subprocess.Popen([str(BIN / "dvc"), "exp", "run", "-n", "live", "-S", "train.epochs=40",
                            "-S", "train.eval_every=2"], cwd=clone, env=env_for(clone),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 900
    try:
        while run.poll() is None and time.time() < deadline:
            show = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=clone, env=env_for(clone),
                                  capture_output=True, text=True)
            if show.returncode == 0:
                metrics = live_metrics(json.loads(show.stdout))
                if metrics and 0 < metrics.get("step", 0) < 40 and run.poll() is None:
                    seen.append(metrics)
                    if len({m["step"] for m in seen}) >= 2:
                        break
            time.sleep(1)
    finally:
        stderr = run.communicate(timeout=900)[1]
    assert run.returncode == 0, stderr[-3000:]
    steps = sorted({m["step"] for m in seen})
    assert len(steps) >= 2, f"exp show never listed the running run's training metrics: {seen}"
    assert {"loss", "kgc_loss", "contrastive_loss", "lr"} <= set(seen[-1]["train"]) and "best_epoch" in seen[-1]


def test_the_summary_holds_the_best_validation_while_running_and_the_run_summary_at_the_end(tmp_path):
    from types import SimpleNamespace

    from mygo.live import LiveLog
    losses = [{"epoch": e, "loss": 1.0 / e, "kgc_loss": 0.9 / e, "contrastive_loss": 0.1 / e, "lr": 1e-3}
              for e in (1, 2, 3)]
    valid = [{"epoch": 2, "mrr": 0.4, "hits@1": 0.3, "hits@3": 0.5, "hits@10": 0.7}]
    log = LiveLog(tmp_path / "live")
    log.update(SimpleNamespace(losses=losses[:2], valid=valid, best_epoch=2, best_metrics=valid[0]))
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["best_epoch"] == 2 and summary["best"] == {"mrr": 0.4, "hits@1": 0.3, "hits@3": 0.5, "hits@10": 0.7}
    assert summary["valid"]["mrr"] == 0.4 and summary["train"]["loss"] == 0.5
    final = {"mrr": 0.45, "hits@1": 0.35, "hits@3": 0.55, "hits@10": 0.75}
    log.update(SimpleNamespace(losses=losses, valid=[*valid, {"epoch": 3, **final}], best_epoch=3,
                               best_metrics={"epoch": 3, **final}))
    log.finish({"best_epoch": 3, "epochs": 3, "valid": {**final, "count": 10}})
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert (summary["best_epoch"], summary["epochs"], summary["best"]) == (3, 3, final)
    assert "count" not in summary["best"] and summary["step"] == 3
