import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from mygo.checkpoint import load_checkpoint, save_checkpoint
from mygo.training import TrainParams, adam, selection_triples, train, training_queries
from helpers import TRAIN, VALID, tiny_model



def config(**overrides):
    values = dict(device="cpu", seed=3, epochs=6, batch_size=4, lr=0.01, eval_every=2, t0=3, mu=0.01,
                  contrastive_size=4, checkpoint_every=1)
    values.update(overrides)
    return TrainParams(**values)


def test_selection_drops_train_and_duplicates():
    kept, dropped = selection_triples(VALID, TRAIN)
    assert kept.tolist() == [[5, 0, 6]] and dropped == 2


def test_training_queries_directions():
    g = torch.Generator().manual_seed(0)
    known, relation, target, head = training_queries(TRAIN, "both", g)
    assert len(known) == 12 and head.sum() == 6
    pairs = {(k, r, t, h) for k, r, t, h in zip(known.tolist(), relation.tolist(), target.tolist(), head.tolist())}
    assert (0, 0, 1, False) in pairs and (1, 0, 0, True) in pairs
    known, *_ = training_queries(TRAIN, "random", g)
    assert len(known) == 6


def test_bad_directions_param():
    with pytest.raises(ValueError, match="directions"):
        config(directions="tails")


def test_resume_reaches_the_same_weights(tmp_path):
    full = tiny_model()
    train(full, config(), TRAIN, VALID, progress=False)

    class Stop(Exception):
        pass

    interrupted = tiny_model()
    state_path = tmp_path / "state.pt"
    original_step = torch.optim.Adam.step
    calls = {"n": 0}

    def failing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:                                     # mid-way through epoch 4
            raise Stop
        return original_step(self, *args, **kwargs)

    torch.optim.Adam.step = failing_step
    try:
        with pytest.raises(Stop):
            train(interrupted, config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    finally:
        torch.optim.Adam.step = original_step
    assert torch.load(state_path, weights_only=True)["state"]["epoch"] == 3
    resumed = tiny_model()
    summary = train(resumed, config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    assert summary["epochs"] == 6
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_time_limited_pieces_reach_the_same_weights(tmp_path):
    """A run in time-boxed pieces (each stops at the first epoch end past its limit, saving the
    resume state) ends with the weights and curves of an uninterrupted run."""
    full = tiny_model()
    expected = train(full, config(), TRAIN, VALID, progress=False, plots_dir=tmp_path / "full")
    state_path, pieces = tmp_path / "state.pt", []
    while not pieces or pieces[-1].get("stopped"):
        model = tiny_model()
        pieces.append(train(model, config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False,
                            plots_dir=tmp_path / "pieces", time_limit=0.0))
    assert [p["epochs"] for p in pieces] == [1, 2, 3, 4, 5, 6]
    assert all(p["stopped"] for p in pieces[:-1]) and pieces[-1] == expected
    for (name, a), b in zip(full.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    for name in ("loss.csv", "valid.csv"):
        assert (tmp_path / "pieces" / name).read_text() == (tmp_path / "full" / name).read_text()


def test_a_resumed_run_reports_the_whole_runs_time_and_the_pieces(tmp_path, caplog):
    """The last line of a resumed run gives the time of the whole run (every piece, kept in the
    resume state) and of the piece this process trained."""
    import logging
    import re
    state_path = tmp_path / "state.pt"
    train(tiny_model(), config(epochs=3), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False,
          time_limit=0.0)
    first = torch.load(state_path, weights_only=False)["state"]["seconds"]
    assert first > 0
    with caplog.at_level(logging.INFO, logger="mygo.training"):
        train(tiny_model(), config(epochs=3), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("trained "))
    match = re.match(r"trained 3 epochs in ([\d.]+)s \(this piece: epochs 2-3 in ([\d.]+)s, resumed after epoch 1\)",
                     line)
    assert match, line
    whole, piece = map(float, match.groups())
    assert whole == pytest.approx(first + piece, abs=0.11)


def test_resume_state_of_another_run_is_ignored(tmp_path):
    state_path = tmp_path / "state.pt"
    train(tiny_model(), config(epochs=2), TRAIN, VALID, resume_path=state_path, run_id="a", progress=False)
    summary = train(tiny_model(), config(epochs=2), TRAIN, VALID, resume_path=state_path, run_id="b",
                    progress=False)
    assert summary["epochs"] == 2 and torch.load(state_path, weights_only=True)["run_id"] == "b"


def test_early_stopping():
    summary = train(tiny_model(), config(epochs=40, eval_every=1, patience=2, lr=1e-12), TRAIN, VALID,
                    progress=False)
    assert summary["epochs"] == 3 and summary["best_epoch"] == 1


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model().eval()
    save_checkpoint(tmp_path / "m.pt", model, {"best_epoch": 4})
    loaded, checkpoint = load_checkpoint(tmp_path / "m.pt", ops=model.ops)
    assert checkpoint["best_epoch"] == 4
    known, relation, head = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([False, True])
    a = model(known, relation, head)
    assert torch.equal(a, loaded.eval()(known, relation, head))       # the same operations: the same bytes
    default, _ = load_checkpoint(tmp_path / "m.pt")                   # evaluate's (inference_ops): same function
    torch.testing.assert_close(default.eval()(known, relation, head), a, rtol=1e-5, atol=1e-5)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pt: cannot read a model checkpoint .*dvc repro train"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.slow
def test_killed_training_stage_resumes_to_the_same_result(demo_processed, tmp_path):
    root = demo_processed
    params = root / "params.yaml"

    def cmd(out):
        return [sys.executable, str(ROOT / "stages/train.py"), str(root / "kg"), str(root / "tokens"),
                str(out / "model.pt"), "--resume", str(out / "resume" / "state.pt"), "--live",
                str(out / "live"), "--params", str(params)]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cmd(straight), check=True, capture_output=True, cwd=ROOT)
    process = subprocess.Popen(cmd(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "resume" / "state.pt"
    deadline = time.time() + 120
    epoch = 0
    while time.time() < deadline and process.poll() is None:
        if state.exists():
            epoch = torch.load(state, weights_only=True)["state"]["epoch"]
            if epoch >= 4:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 4 <= epoch < 12 and not (killed / "model.pt").exists()
    result = subprocess.run(cmd(killed), check=True, capture_output=True, text=True, cwd=ROOT)
    assert "resuming from" in result.stderr
    # the DVCLive log, summary and history, is the uninterrupted run's
    for path in sorted(p.relative_to(straight) for p in (straight / "live").rglob("*") if p.is_file()):
        assert (killed / path).read_bytes() == (straight / path).read_bytes(), path
    assert (straight / "live/plots/metrics/train/loss.tsv").exists()
    a = torch.load(straight / "model.pt", weights_only=True)["model"]
    b = torch.load(killed / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compile_param_compiles_the_model(monkeypatch):
    calls = []
    model = tiny_model()
    monkeypatch.setattr(type(model), "compile_parts", lambda self: calls.append(self))
    train(model, config(epochs=1, eval_every=1), TRAIN, VALID, progress=False)
    assert calls == []
    train(model, config(epochs=1, eval_every=1, compile=True), TRAIN, VALID, progress=False)
    assert calls == [model]


@pytest.mark.parametrize("pinned", ["1", "0"])
def test_adam_is_fused_in_both_modes(monkeypatch, pinned):
    """Training's Adam is torch's fused update in both CPU modes (its square root is the CPU's
    exact instruction; the per-operation update's goes through MKL's vector maths, whose bytes
    differ between CPU vendors). It is Adam: a few steps agree with the per-operation update to
    float tolerance."""
    monkeypatch.setenv("MYGO_REPRODUCIBLE", pinned)
    results = []
    for fused in (True, False):
        model = torch.nn.Linear(6, 3)
        torch.nn.init.constant_(model.weight, 0.1)
        torch.nn.init.constant_(model.bias, 0.1)
        optimizer = adam(model, 0.01) if fused else torch.optim.Adam(model.parameters(), lr=0.01)
        assert bool(optimizer.param_groups[0]["fused"]) == fused
        for step in range(5):
            model.zero_grad()
            (model(torch.linspace(-1, 1, 12).view(2, 6) * (step + 1)) ** 2).sum().backward()
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
        assert not torch.equal(a, torch.full_like(a, 0.1))

@pytest.mark.parametrize("pinned", ["1", "0"])
@pytest.mark.parametrize("kill_at", [5, 8])
def test_killed_mid_epoch_resumes_bit_identically(tmp_path, kill_at, pinned, monkeypatch):
    """train.checkpoint_minutes saves inside an epoch; the resumed run ends with the same weights
    and loss curve as an uninterrupted one (same data order, generator and dropout RNG), in the
    pinned mode and outside it (fused Adam)."""
    monkeypatch.setenv("MYGO_REPRODUCIBLE", pinned)
    settings = dict(batch_size=2, checkpoint_minutes=1e-9, mu=0.5, contrastive_size=3)   # 3 batches per epoch
    full = tiny_model()
    straight = train(full, config(**settings), TRAIN, VALID, progress=False)

    class Stop(Exception):
        pass

    state_path = tmp_path / "state.pt"
    original_step = torch.optim.Adam.step
    calls = {"n": 0}

    def failing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise Stop
        return original_step(self, *args, **kwargs)

    torch.optim.Adam.step = failing_step
    try:
        with pytest.raises(Stop):
            train(tiny_model(), config(**settings), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    finally:
        torch.optim.Adam.step = original_step
    saved = torch.load(state_path, weights_only=True)["state"]
    assert saved["position"]["batch"] == (kill_at - 1) % 3 and saved["epoch"] == (kill_at - 1) // 3
    resumed = tiny_model()
    summary = train(resumed, config(**settings), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    assert summary["final_loss"] == straight["final_loss"]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_corrupt_resume_state_names_the_file_and_the_remedy(tmp_path):
    state_path = tmp_path / "state.pt"
    train(tiny_model(), config(epochs=1), TRAIN, VALID, resume_path=state_path, run_id="a", progress=False)
    state_path.write_bytes(state_path.read_bytes()[:200])          # truncated
    with pytest.raises(ValueError, match=r"state.pt: cannot read a training resume state .*delete it"):
        train(tiny_model(), config(epochs=1), TRAIN, VALID, resume_path=state_path, run_id="a", progress=False)


@pytest.mark.parametrize("sig, at_step, position", [(signal.SIGINT, 3, {"epoch": 1, "batch": 1}),
                                                   (signal.SIGTERM, 5, {"epoch": 2, "batch": 1}),
                                                   (signal.SIGINT, 8, {"epoch": 4, "batch": None})])
def test_a_signal_saves_the_current_step_and_the_run_resumes_bit_identically(tmp_path, monkeypatch, sig, at_step,
                                                                            position):
    """SIGINT / SIGTERM during training: the step in progress finishes, the resume state is saved
    at it (mid-epoch: the batch to go on from), training stops with KeyboardInterrupt; the next
    run resumes to the weights and curves of an uninterrupted run."""
    import os

    from mygo import training
    full = tiny_model()
    expected = train(full, config(), TRAIN, VALID, progress=False, plots_dir=tmp_path / "full")
    original, calls = training.step_losses, {"n": 0}

    def signalling(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at_step:
            os.kill(os.getpid(), sig)
        return out

    state_path = tmp_path / "state.pt"
    monkeypatch.setattr(training, "step_losses", signalling)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False,
              plots_dir=tmp_path / "pieces")
    monkeypatch.setattr(training, "step_losses", original)
    saved = torch.load(state_path, weights_only=True)["state"]
    assert {"epoch": saved["epoch"], "batch": (saved["position"] or {}).get("batch")} == position
    assert calls["n"] == at_step                                            # stopped right after that step
    resumed = tiny_model()
    assert train(resumed, config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False,
                 plots_dir=tmp_path / "pieces") == expected
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "pieces/loss.csv").read_text() == (tmp_path / "full/loss.csv").read_text()


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. "
                                                               "DefaultCPUAllocator: can't allocate memory: you "
                                                               "tried to allocate 68719476736 bytes."),
                                   RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")])
def test_running_out_of_memory_names_the_params_that_help_and_keeps_the_resume_state(tmp_path, monkeypatch, error):
    from mygo import training
    original, calls = training.step_losses, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "step_losses", failing)
    state_path = tmp_path / "state.pt"
    with pytest.raises(ValueError, match=r"out of memory in training after epoch 1 .*lower train.batch_size .*"
                                         r"train.memory_budget_gb or train.model.encoder_chunk.*state.pt\) is kept"):
        train(tiny_model(), config(), TRAIN, VALID, resume_path=state_path, run_id="x", progress=False)
    assert torch.load(state_path, weights_only=True)["state"]["epoch"] == 1      # usable: resumes from epoch 1
    monkeypatch.setattr(training, "step_losses", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):                     # other errors pass unchanged
        train(tiny_model(), config(), TRAIN, VALID, progress=False)


def test_resume_states_are_written_in_the_background_from_a_snapshot(tmp_path, monkeypatch):
    """The first write is done before `write` returns; later ones go on in a thread from a copy
    taken at once, so changes made meanwhile are not in the file; a failed write is raised by
    `wait`, with its own message."""
    from mygo import training
    writer = training.ResumeWriter()
    weights = torch.zeros(3)
    writer.write(tmp_path / "a.pt", {"w": weights, "history": [1]})
    assert writer.thread is None and torch.load(tmp_path / "a.pt")["w"].tolist() == [0, 0, 0]
    state = {"w": weights, "history": [1, 2]}
    writer.write(tmp_path / "b.pt", state)
    weights.add_(5)                                   # training goes on changing its tensors
    state["history"].append(3)
    writer.wait()
    saved = torch.load(tmp_path / "b.pt")
    assert saved == {"w": saved["w"], "history": [1, 2]} and saved["w"].tolist() == [0, 0, 0]

    def full(path, obj):
        raise OSError(28, "No space left on device", str(path))
    monkeypatch.setattr(training, "save_torch", full)
    writer.write(tmp_path / "c.pt", state)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()                                     # raised once
    assert not (tmp_path / "c.pt").exists()
