"""Long work tells time in a log file: heartbeats with rate and ETA, per-epoch durations and the
run's ETA, and a projection after the first training steps."""
import logging
import re

import pytest

from conftest import ROOT, run_stage, write_named, write_params
from helpers import TRAIN, VALID, tiny_model
from mygo.progress import LogBar, bar, duration
from mygo.training import TrainParams, train


@pytest.mark.parametrize("seconds, text", [(4.26, "4.3 s"), (42.4, "42 s"), (187, "3m 07s"), (7500, "2h 05m"),
                                           (3 * 86400 + 4000, "3d 01h")])
def test_durations_read_like_a_person_writes_them(seconds, text):
    assert duration(seconds) == text


def test_without_a_terminal_a_loop_logs_heartbeats_with_rate_and_eta(caplog, monkeypatch):
    monkeypatch.setenv("MYGO_HEARTBEAT_SECONDS", "0.000001")
    loop = bar(range(4), desc="evaluate", unit="batch", total=4)
    assert isinstance(loop, LogBar)                              # pytest's stderr is not a terminal
    with caplog.at_level(logging.INFO, logger="mygo.progress"):
        assert list(loop) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("evaluate: 1/4 batches, ")
    assert all(" s/batch" in line and "ETA of this loop" in line for line in lines) and len(lines) == 4
    for unit, plural in (("epoch", "epochs"), ("image", "images"), ("query", "queries"), ("day", "days"),
                         ("box", "boxes"), ("batch", "batches")):
        one = LogBar(range(1), desc="train", unit=unit, interval=0)
        one.update()
        assert one.line().startswith(f"train: 1/1 {plural}, ")
    monkeypatch.setenv("MYGO_HEARTBEAT_SECONDS", "0")           # 0: no heartbeats
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mygo.progress"):
        list(bar(range(3), desc="x", unit="batch"))
    assert caplog.records == []
    monkeypatch.setenv("MYGO_HEARTBEAT_SECONDS", "often")
    with pytest.raises(ValueError, match="MYGO_HEARTBEAT_SECONDS = 'often'"):
        bar(range(3), desc="x", unit="batch")


def test_training_projects_the_run_and_gives_each_epoch_its_duration_and_eta(caplog):
    config = TrainParams(device="cpu", epochs=3, batch_size=2, eval_every=3, seed=1, contrastive_size=4)
    with caplog.at_level(logging.INFO, logger="mygo.training"):
        train(tiny_model(), config, TRAIN, VALID)
    lines = [r.getMessage() for r in caplog.records]
    projection = [line for line in lines if line.startswith("first steps:")]
    assert len(projection) == 1 and "3 steps an epoch" in projection[0] and "for the 3 epochs left" in projection[0]
    epochs = [line for line in lines if line.startswith("epoch ") and "ETA of the run" in line]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert epochs[-1].endswith("(ETA of the run 0.0 s)")


def test_stage_logs_without_a_terminal_have_no_third_party_bars(tmp_path):
    """A stage's stderr in a log file (no terminal) is log lines only: no tqdm bars from the
    text model's loading, no carriage returns; and a graph without image URLs says so once."""
    params = write_params(tmp_path / "params.yaml", {"tokenize_images": {"image_tokenizer": "vqgan"}})
    raw = write_named(tmp_path / "raw", "a\tan alpha\nb\ta beta\nc\n", "a\tr\tb\nb\tr\tc\n", "a\tr\tc\n", "c\tr\ta\n")
    run_stage(ROOT / "stages/prepare.py", raw, tmp_path / "kg", "--params", params)
    text = run_stage(ROOT / "stages/tokenize_text.py", tmp_path / "kg", tmp_path / "text", "--params", params).stderr
    assert "\r" not in text and "it/s" not in text and "%|" not in text, text
    assert all(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) mygo", line) for line in text.splitlines()), text
    images = run_stage(ROOT / "stages/download_images.py", tmp_path / "kg", tmp_path / "images",
                       tmp_path / "manifest.parquet", "--params", params).stderr
    assert images.count("no entity has an image URL") == 1 and "0 ok" not in images
    tokens = run_stage(ROOT / "stages/tokenize_images.py", tmp_path / "manifest.parquet", tmp_path / "images",
                       tmp_path / "image_tokens", "--params", params).stderr
    assert "RANDOM weights" not in tokens                      # nothing to tokenize, nothing to warn about
