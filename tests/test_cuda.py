"""The CUDA path against the CPU's: run wherever CUDA is present, skipped (with the reason) where
it is not. Run on a GPU machine with `pytest tests/test_cuda.py -v`."""
import copy

import numpy as np
import pytest
import torch

from mygo.evaluation import compute_ranks
from mygo.training import TrainParams, train
from helpers import TRAIN, VALID, batch, tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

NO_DROPOUT = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0, input_dropout=0.0,
                  core_dropout=0.0, hidden_dropout=0.0)


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 comparisons: no TF32 (it rounds matmul inputs to 10-bit mantissas)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _loss_grads_scores(model, device, amp=False):
    model = model.to(device).train()
    known, relation, head, target = (t.to(device) for t in batch(model, B=6))
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model.losses(known, relation, head, target, mu=0.1, contrastive_size=5,
                            generator=torch.Generator().manual_seed(0)).total
        scores = model(known, relation, head)
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().float().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().float().cpu(), grads, scores.detach().float().cpu()


def test_cpu_and_cuda_agree_in_fp32():
    cpu = _loss_grads_scores(tiny_model(**NO_DROPOUT), torch.device("cpu"))
    gpu = _loss_grads_scores(tiny_model(**NO_DROPOUT), torch.device("cuda"))
    torch.testing.assert_close(gpu[0], cpu[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu[2], cpu[2], rtol=1e-5, atol=1e-5)
    for name in cpu[1]:
        torch.testing.assert_close(gpu[1][name], cpu[1][name], rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_autocast_within_tolerance():
    """bf16 keeps 8 mantissa bits: loss within 2%, scores within 0.05 + 3% of fp32."""
    fp32 = _loss_grads_scores(tiny_model(**NO_DROPOUT), torch.device("cuda"))
    bf16 = _loss_grads_scores(tiny_model(**NO_DROPOUT), torch.device("cuda"), amp=True)
    torch.testing.assert_close(bf16[0], fp32[0], rtol=0.02, atol=0.0)
    torch.testing.assert_close(bf16[2], fp32[2], rtol=0.03, atol=0.05)


def test_compile_on_cuda_matches_eager():
    eager = _loss_grads_scores(tiny_model(**NO_DROPOUT), torch.device("cuda"))
    model = tiny_model(**NO_DROPOUT).cuda()
    model.compile_parts()
    compiled = _loss_grads_scores(model, torch.device("cuda"))
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled[2], eager[2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("amp", [False, True])
def test_the_fused_ent_attention_on_cuda_is_autograds(amp):
    """mygo.fast.attention.slot0_attention_fused on CUDA (its own backward, the attention dropout
    drawn as F.dropout draws it there): the output and the gradients of x and the in-projection
    equal autograd's through slot0_attention_folded after the same seed, in fp32 and under bf16
    autocast."""
    from mygo.fast.attention import slot0_attention_fused
    from mygo.model import slot0_attention_folded
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 2, 64, dropout=0.2, batch_first=True).cuda().train()
    padded = torch.rand(50, 7, device="cuda") < 0.3
    padded[:, 0] = False
    results = []
    for attention in (slot0_attention_folded, slot0_attention_fused):
        x = torch.randn(50, 7, 32, device="cuda", generator=torch.Generator("cuda").manual_seed(1),
                        requires_grad=True)
        layer.zero_grad()
        torch.manual_seed(5)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = attention(layer, x, padded)
            out, residual = out if isinstance(out, tuple) else (out, x[:, :1])
        (out.float().sum() + 2 * residual.float().sum()).backward()
        results.append([out.float().detach(), x.grad, layer.self_attn.in_proj_weight.grad,
                        layer.self_attn.in_proj_bias.grad])
    tolerance = dict(rtol=2e-2, atol=2e-2) if amp else dict(rtol=1e-4, atol=1e-5)
    for name, a, b in zip(["out", "x", "weight", "bias"], *results):
        torch.testing.assert_close(b, a, **tolerance, msg=name)


def test_training_resumes_bit_identically_on_the_same_gpu(tmp_path, monkeypatch):
    """Killed mid-run (an exception inside an optimizer step), resumed from the saved state: the
    same weights as an uninterrupted run on the same GPU (cuBLAS is deterministic per device
    for the same shapes; the dropout RNG state is saved and restored)."""
    config = TrainParams(device="cuda", amp=False, seed=3, epochs=4, batch_size=2, lr=0.01, eval_every=2, t0=3,
                         mu=0.01, contrastive_size=4, checkpoint_minutes=1e-9)
    full = tiny_model()
    train(full, config, TRAIN, VALID, progress=False)
    original, calls = torch.optim.Adam.step, {"n": 0}

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    state = tmp_path / "state.pt"
    monkeypatch.setattr(torch.optim.Adam, "step", failing)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), config, TRAIN, VALID, resume_path=state, run_id="x", progress=False)
    monkeypatch.setattr(torch.optim.Adam, "step", original)
    resumed = tiny_model()
    train(resumed, config, TRAIN, VALID, resume_path=state, run_id="x", progress=False)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()), name


def test_evaluation_ranks_equal_the_cpus():
    model = tiny_model(**NO_DROPOUT)
    triples = np.array([[0, 0, 1], [2, 1, 3], [4, 2, 5], [6, 0, 2]])
    cpu = compute_ranks(copy.deepcopy(model), triples, [TRAIN, VALID, triples], device="cpu", progress=False)
    gpu = compute_ranks(copy.deepcopy(model).cuda(), triples, [TRAIN, VALID, triples], device="cuda", progress=False)
    for kind in ("optimistic", "pessimistic", "realistic"):
        np.testing.assert_array_equal(gpu[kind], cpu[kind])


def test_the_eager_step_waits_for_the_device_nowhere():
    """A training step on CUDA reads nothing back: the slots to encode and the contrastive views'
    valid rows are decided from host copies of the masks, so the host queues the next steps while
    the device runs (torch.cuda's sync debug mode makes any wait an error). The first step makes
    the host copies; the one after must not wait at all."""
    from mygo.training import adam, step_losses
    cuda = torch.device("cuda")
    model = tiny_model().to(cuda).train()
    config = TrainParams(device="cuda", batch_size=6, mu=0.5, contrastive_size=5)
    optimizer = adam(model, config.lr)
    queries = tuple(t.to(cuda) for t in batch(model, B=6))
    generator = torch.Generator().manual_seed(0)
    step_losses(model, optimizer, config, queries, generator, cuda)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = step_losses(model, optimizer, config, queries, generator, cuda)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(losses["loss"]).item()


def test_cuda_graph_step_is_captured_and_trains_as_the_eager_step():
    """Warm-up steps, the capture, replays and an eager partial batch between them."""
    from test_graphs import assert_same_training, train_steps
    cuda = torch.device("cuda")
    sizes = (6, 6, 6, 6, 6, 4, 6, 6)
    graphed = train_steps("graphed", cuda, sizes)
    assert graphed["step"].failed is None and graphed["step"].graph is not None
    assert_same_training(graphed, train_steps("eager", cuda, sizes))


def test_training_with_cuda_graph_captures_the_step(caplog):
    import logging
    model = tiny_model()
    config = TrainParams(device="cuda", epochs=3, batch_size=2, eval_every=1, mu=0.5, contrastive_size=4,
                         cuda_graph=True)
    with caplog.at_level(logging.INFO):
        summary = train(model, config, TRAIN, VALID, progress=False)
    assert "the training step is captured as one CUDA graph" in caplog.text, caplog.text
    assert "could not be captured" not in caplog.text
    assert summary["epochs"] == 3


def test_a_graphed_run_stopped_and_resumed_captures_again(tmp_path, caplog):
    """A resumed run's optimizer comes from the state file: its rate is installed as the tensor the
    new graph reads, and the step is captured again."""
    import logging
    state = tmp_path / "state.pt"
    config = dict(device="cuda", batch_size=2, eval_every=1, mu=0.5, contrastive_size=4, cuda_graph=True)
    train(tiny_model(), TrainParams(epochs=2, **config), TRAIN, VALID, resume_path=state, run_id="g", progress=False)
    with caplog.at_level(logging.INFO):
        summary = train(tiny_model(), TrainParams(epochs=4, **config), TRAIN, VALID, resume_path=state, run_id="g",
                        progress=False)
    assert "resuming from" in caplog.text and "captured as one CUDA graph" in caplog.text, caplog.text
    assert "could not be captured" not in caplog.text and summary["epochs"] == 4
