"""The CUDA-graph step's pieces on a CPU (mygo.fast.graphs; the capture itself: tests/test_cuda.py):
the slots decided once, the InfoNCE that reads nothing back, and the step on fixed inputs with its
drawn sample, learning rate and eager partial batch, against the eager step."""
import logging

import numpy as np
import pytest
import torch

from mygo.fast.graphs import GraphedStep, unsupported
from mygo.model import info_nce, info_nce_terms
from mygo.training import EpochSums, TrainParams, adam, step_losses, train
from helpers import TRAIN, VALID, batch, tiny_model

NO_DROPOUT = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0, input_dropout=0.0,
                  core_dropout=0.0, hidden_dropout=0.0)


def _loss_and_grads(model, sample):
    model.zero_grad()
    losses = model.losses(*batch(model, B=6), mu=0.5, sample=sample)
    losses.total.backward()
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("sample", [[0, 1, 2, 3, 4, 5, 6], [0, 3], [5, 1, 2]])
def test_fixed_slots_and_weighted_infonce_equal_the_per_batch_ones(sample):
    """Entities 0 and 3 fill no visual slot here, so the sample [0, 3] has no valid visual view:
    the per-batch step drops those slots and that view's term, the fixed one keeps the slots
    masked and weights the term out."""
    sample = torch.tensor(sample)
    eager = tiny_model(**NO_DROPOUT)
    eager.entity_encoder.visual_mask[[0, 3]] = False
    fixed = tiny_model(**NO_DROPOUT)
    fixed.entity_encoder.visual_mask[[0, 3]] = False
    fixed.entity_encoder.fix_slots()
    (a, grads_a), (b, grads_b) = _loss_and_grads(eager, sample), _loss_and_grads(fixed, sample)
    torch.testing.assert_close(b.kgc, a.kgc)
    torch.testing.assert_close(b.contrastive, a.contrastive, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fixed_slots_drop_the_slots_no_entity_fills():
    model = tiny_model()
    model.entity_encoder.visual_mask[:] = False                 # no images anywhere: the 3 visual slots go
    model.entity_encoder.fix_slots()
    assert model.entity_encoder.fixed_slots.tolist() == [0, 1, 5, 6]
    model.entity_encoder.skip_padded_slots = False
    model.entity_encoder.fix_slots()
    assert model.entity_encoder.fixed_slots.tolist() == list(range(7))


def test_weighted_infonce_without_any_valid_row_is_absent_not_nan():
    g = torch.Generator().manual_seed(0)
    anchor, view = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    valid = torch.tensor([True, False, True, True])
    loss, present = info_nce_terms(anchor, view, valid, 0.5)
    torch.testing.assert_close(loss, info_nce(anchor, view, valid, 0.5))
    assert present.item() == 1.0
    loss, present = info_nce_terms(anchor.requires_grad_(), view, torch.zeros(4, dtype=torch.bool), 0.5)
    loss.backward()
    assert loss.item() == 0.0 and present.item() == 0.0 and torch.isfinite(anchor.grad).all()
    assert info_nce(anchor, view, torch.zeros(4, dtype=torch.bool), 0.5) is None


def _queries(n, model, seed):
    g = torch.Generator().manual_seed(seed)
    N, R = model.config.num_entities, model.config.num_relations
    return (torch.randint(0, N, (n,), generator=g), torch.randint(0, R, (n,), generator=g),
            torch.rand(n, generator=g) < 0.5, torch.randint(0, N, (n,), generator=g))


def train_steps(kind: str, device: torch.device, sizes=(6, 6, 4, 6, 6)) -> dict:
    """A tiny model without dropout trained on batches of `sizes` queries, a scheduler step after
    each: eagerly (`eager`), through GraphedStep replaying by running (`fixed`) or capturing
    (`graphed`, CUDA). Its losses, weights, rates and generator state."""
    config = TrainParams(device=device.type, batch_size=6, lr=0.01, mu=0.5, contrastive_size=4, amp=False)
    model = tiny_model(**NO_DROPOUT).to(device).train()
    optimizer = adam(model, config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3)
    step = None if kind == "eager" else GraphedStep(model, optimizer, config, device, False,
                                                    capture=kind == "graphed")
    g = torch.Generator().manual_seed(7)
    losses, rates = [], []
    for size in sizes:
        queries = tuple(t.to(device) for t in _queries(size, model, len(losses)))
        out = step(queries, g) if step else step_losses(model, optimizer, config, queries, g, device)
        losses.append(torch.stack([out["loss"], out["kgc"], out["contrastive"]]).cpu())
        scheduler.step()
        if step:
            step.set_lr()
            assert optimizer.param_groups[0]["lr"] is step.lr
        rates.append(float(optimizer.param_groups[0]["lr"]))
    return {"losses": torch.stack(losses), "weights": {k: v.cpu() for k, v in model.state_dict().items()},
            "generator": g.get_state(), "rates": rates, "step": step}


def assert_same_training(run: dict, eager: dict) -> None:
    """The same losses and weights to float tolerance, the same draws, the same rates (float32)."""
    assert len(set(eager["rates"])) > 2
    np.testing.assert_allclose(run["rates"], eager["rates"], rtol=1e-7)
    torch.testing.assert_close(run["losses"], eager["losses"], rtol=1e-5, atol=1e-6)
    for name, value in eager["weights"].items():
        other = run["weights"][name]
        if name.endswith("in_proj_bias"):     # not the key biases: their gradient is 0 up to rounding,
            d = len(value) // 3               # whose sign Adam's first steps turn into +-lr
            value, other = torch.cat([value[:d], value[2 * d:]]), torch.cat([other[:d], other[2 * d:]])
        torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-5, msg=name)
    assert torch.equal(run["generator"], eager["generator"])           # the same samples drawn


def test_the_step_on_fixed_inputs_trains_as_the_eager_step():
    """Four full batches and a partial one: the fixed slots round differently, so to float
    tolerance; the rate the graph reads follows the scheduler."""
    cpu = torch.device("cpu")
    assert_same_training(train_steps("fixed", cpu), train_steps("eager", cpu))


def test_capture_is_refused_with_its_reason_where_it_cannot_run():
    model = tiny_model()
    assert "not CUDA" in unsupported(model, torch.device("cpu"))


def test_cuda_graph_on_a_cpu_trains_eagerly_and_says_why(caplog):
    weights = {}
    for graph in (False, True):
        model = tiny_model()
        config = TrainParams(device="cpu", epochs=2, batch_size=4, eval_every=1, mu=0.5, contrastive_size=4,
                             cuda_graph=graph)
        with caplog.at_level(logging.INFO, logger="mygo.training"):
            train(model, config, TRAIN, VALID, progress=False)
        weights[graph] = model.state_dict()
    assert "train.cuda_graph: eager steps, as the device is cpu, not CUDA" in caplog.text
    for name, value in weights[False].items():
        assert torch.equal(weights[True][name], value), name


def test_epoch_sums_read_once_equal_the_steps_read_one_by_one():
    g = torch.Generator().manual_seed(3)
    steps = [({k: torch.rand((), generator=g) * 10 for k in EpochSums.KEYS}, size) for size in (7, 7, 3)]
    sums = EpochSums()
    total = count = kgc = contrastive = 0.0
    for losses, size in steps:
        sums.add(losses, size)
        total += float(losses["loss"]) * size
        kgc += float(losses["kgc"]) * size
        contrastive += float(losses["contrastive"]) * size
        count += size
    sums.settle()
    assert (sums.total, sums.count, sums.sums) == (total, count, {"kgc": kgc, "contrastive": contrastive})
    assert not sums.pending and np.isfinite(sums.total)


def test_a_failed_capture_is_logged_and_training_goes_on_eagerly(monkeypatch, caplog):
    """The capture path's control flow with torch.cuda's stream and graph calls stood in for (no
    GPU here): three warm-up steps, then a capture that fails; the step says why, once, and every
    later full batch runs eagerly and still trains."""
    import contextlib
    import importlib

    class Stream:
        def __init__(self, *args, **kwargs):
            pass

        def wait_stream(self, other):
            pass

    @contextlib.contextmanager
    def failing_capture(graph, stream=None):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
        yield

    for name, value in {"Stream": Stream, "stream": lambda s: contextlib.nullcontext(),
                        "current_stream": lambda *a: Stream(), "graph": failing_capture,
                        "CUDAGraph": object, "synchronize": lambda *a: None}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    for name in ("torch.optim.adam", "torch.optim.optimizer"):     # capturable Adam, here on the CPU
        monkeypatch.setattr(importlib.import_module(name), "_get_capturable_supported_devices",
                            lambda *a, **k: ["cpu"])
    model = tiny_model().train()
    config = TrainParams(device="cpu", batch_size=6, mu=0.5, contrastive_size=4)
    step = GraphedStep(model, adam(model, 0.01), config, torch.device("cpu"), False, capture=True)
    g = torch.Generator().manual_seed(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="mygo.fast.graphs"):
        losses = [step(_queries(6, model, i), g)["loss"] for i in range(6)]
    assert step.eager_steps == 3 and step.graph is None
    assert step.failed == "RuntimeError: operation not permitted when stream is capturing"
    assert caplog.text.count("could not be captured") == 1
    assert all(torch.isfinite(loss) for loss in losses) and len(set(float(x) for x in losses)) == 6
    after = model.state_dict()
    assert not torch.equal(after["decoder.core"], before["decoder.core"])
