"""bf16 autocast on CPU (`train.amp`, `evaluate.amp`): where it is used, and that its numbers stay
within the same tolerances as the CUDA path's (tests/test_cuda.py). bf16 rounding is the same
whether the CPU computes it natively or emulates it, so the tolerance tests run on any CPU."""
import logging

import numpy as np
import pytest
import torch

from mygo import device as device_mod
from mygo.evaluation import compute_ranks, metrics_from_ranks
from mygo.training import Trainer, TrainParams
from helpers import TRAIN, VALID, batch, tiny_model

NO_DROPOUT = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0, input_dropout=0.0,
                  core_dropout=0.0, hidden_dropout=0.0)
CPU = torch.device("cpu")


@pytest.mark.parametrize("capability, units, expected", [
    ("AVX2", "AMX", False),           # AVX2 kernels (the pinned mode's) emulate bf16: never
    ("AVX512", "AMX", True),
    ("AVX512", "AVX512-BF16", True),
    ("AVX512", None, False),          # no native bf16: float32
])
def test_cpu_bf16_only_where_the_kernels_reach_native_units(monkeypatch, caplog, capability, units, expected):
    monkeypatch.setattr(device_mod, "kernel_capability", lambda: capability)
    monkeypatch.setattr(device_mod, "cpu_bf16_units", lambda: units)
    with caplog.at_level(logging.INFO, logger="mygo.device"):
        assert device_mod.use_bf16(True, CPU) is expected
    assert ("bf16 autocast" in caplog.text) is expected
    assert device_mod.use_bf16(False, CPU) is False


def test_cuda_device_always_takes_amp_when_asked(monkeypatch):
    monkeypatch.setenv("MYGO_REPRODUCIBLE", "1")
    assert device_mod.use_bf16(True, torch.device("cuda")) is True


def test_cpu_bf16_units_names_what_torch_reports(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert device_mod.cpu_bf16_units() == "AVX512-BF16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert device_mod.cpu_bf16_units() is None


def _loss_and_scores(model, amp):
    model = model.train()
    known, relation, head, target = batch(model, B=6)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=amp):
        loss = model.losses(known, relation, head, target, mu=0.1, contrastive_size=5,
                            generator=torch.Generator().manual_seed(0)).total
        scores = model(known, relation, head)
    loss.backward()
    grads = {n: p.grad.detach().float() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().float(), scores.detach().float(), grads


def test_cpu_bf16_autocast_within_the_cuda_tolerance():
    """The same model and tolerances as tests/test_cuda.py: loss within 2 %, scores within
    0.05 + 3 % of float32; gradients point the same way (cosine > 0.99)."""
    loss32, scores32, grads32 = _loss_and_scores(tiny_model(**NO_DROPOUT), amp=False)
    loss16, scores16, grads16 = _loss_and_scores(tiny_model(**NO_DROPOUT), amp=True)
    assert not torch.equal(scores16, scores32)          # autocast did run in bf16
    torch.testing.assert_close(loss16, loss32, rtol=0.02, atol=0.0)
    torch.testing.assert_close(scores16, scores32, rtol=0.03, atol=0.05)
    for name, g in grads32.items():
        if g.norm() > 1e-6:
            cosine = torch.nn.functional.cosine_similarity(g.flatten(), grads16[name].flatten(), dim=0)
            assert cosine > 0.99, (name, float(cosine))


def test_evaluation_under_amp_keeps_float32_scores_and_close_ranks():
    model = tiny_model(dim=32, **NO_DROPOUT).eval()
    known, relation, head, _ = batch(model, B=6)
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        scores = model(known, relation, head)
    assert scores.dtype == torch.float32
    triples = np.array([[0, 0, 1], [2, 1, 3], [4, 2, 5], [6, 0, 2], [1, 1, 4]])
    fp32 = compute_ranks(model, triples, [TRAIN, VALID, triples], progress=False)
    bf16 = compute_ranks(model, triples, [TRAIN, VALID, triples], progress=False, amp=True)
    a, b = metrics_from_ranks(fp32)[0], metrics_from_ranks(bf16)[0]
    assert abs(a["mrr"] - b["mrr"]) < 0.05
    assert np.abs(fp32["realistic"] - bf16["realistic"]).max() <= 1.0


def test_training_runs_under_cpu_bf16_on_native_units(monkeypatch):
    """train.amp on a CPU with native bf16 that torch's kernels reach: the steps run under autocast and the
    run trains (finite losses, a best model kept)."""
    monkeypatch.setattr(device_mod, "kernel_capability", lambda: "AVX512")
    monkeypatch.setattr(device_mod, "cpu_bf16_units", lambda: "AMX")
    seen = []
    original = torch.autocast.__init__

    def spy(self, device_type, *args, **kwargs):
        seen.append((device_type, kwargs.get("enabled", True)))
        original(self, device_type, *args, **kwargs)

    monkeypatch.setattr(torch.autocast, "__init__", spy)
    config = TrainParams(device="cpu", amp=True, seed=1, epochs=2, batch_size=3, eval_every=1, t0=2)
    trainer = Trainer(tiny_model(dim=16), config, TRAIN, VALID, progress=False)
    assert trainer.use_amp
    trainer.run()
    assert ("cpu", True) in seen
    assert len(trainer.state.losses) == 2 and all(np.isfinite(row["loss"]) for row in trainer.state.losses)
    assert trainer.state.best_model is not None


@pytest.mark.parametrize("count, name, message", [
    (1, "cuda:7", "device is 'cuda:7' but this machine has 1 CUDA device (cuda:0)"),
    (2, "cuda:2", "device is 'cuda:2' but this machine has 2 CUDA devices (cuda:0 to cuda:1)"),
])
def test_a_cuda_index_beyond_the_devices_present_is_refused(monkeypatch, count, name, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        device_mod.pick_device(name)
    assert device_mod.pick_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
