import math

import pytest
import torch
import torch.nn.functional as F

from mygo.dropout import Dropout, core_dropout_contract, dropout, keep_mask, kept_fraction, use_cheap_dropout


@pytest.mark.parametrize("p", [0.01, 0.1, 0.4, 0.5, 0.9])
def test_keep_mask_is_bernoulli_in_every_lane(p):
    """Each entry is kept with probability 1 - p'; the four 16-bit lanes of a 64-bit draw each
    carry that rate (a lane with a stuck bit would show up as a rate off by far more than 5 sigma)."""
    torch.manual_seed(0)
    n = 400_000
    mask = keep_mask((n,), p)
    keep = kept_fraction(p)
    assert abs(keep - (1 - p)) <= 2**-17
    for lane in range(4):
        rate = mask[lane::4].float().mean().item()
        sigma = math.sqrt(keep * (1 - keep) / (n / 4))
        assert abs(rate - keep) < 5 * sigma, (lane, rate, keep)


def test_keep_mask_shapes_seeds_and_complement():
    torch.manual_seed(3)
    a = keep_mask((5, 7, 3), 0.3)
    torch.manual_seed(3)
    b = keep_mask((5, 7, 3), 0.3, dropped=True)
    assert a.shape == (5, 7, 3) and a.dtype == torch.bool
    assert torch.equal(a, ~b)                     # the same draw, complemented
    torch.manual_seed(4)
    assert not torch.equal(keep_mask((5, 7, 3), 0.3), a)
    assert keep_mask((0, 4), 0.5).shape == (0, 4)
    assert keep_mask((3,), 0.0).all() and keep_mask((1,), 0.5).shape == (1,)


def test_dropout_values_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(64, 33, requires_grad=True)
    out = dropout(x, 0.4)
    kept = out != 0
    scale = 1 / kept_fraction(0.4)
    assert torch.allclose(out[kept], x[kept] * scale)
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.allclose(x.grad, grad * kept * scale)
    assert dropout(x, 0.4, training=False) is x and dropout(x, 0.0) is x


def test_dropout_keeps_expectations():
    torch.manual_seed(1)
    x = torch.ones(1_000_000)
    assert abs(dropout(x, 0.3).mean().item() - 1.0) < 5e-3


def test_dropout_module_replaces_every_nn_dropout():
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    use_cheap_dropout(layer)
    kinds = [type(m) for m in layer.modules() if isinstance(m, torch.nn.Dropout)]
    assert kinds and all(kind is Dropout for kind in kinds)
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in state.items())
    layer.eval()
    x = torch.randn(3, 5, 8)
    fresh = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True).eval()
    fresh.load_state_dict(state)
    assert torch.allclose(layer(x), fresh(x))      # inert in eval mode, same function


def test_core_dropout_contract_equals_the_unfused_autograd_version():
    """Output and gradients (x, r', W) of the fused contraction equal those of building each
    query's matrix, masking it with the same draw and multiplying, under plain autograd."""
    g = torch.Generator().manual_seed(0)
    B, d, p = 6, 5, 0.4
    x, r, core = (torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((B, d), (B, d), (d, d, d)))
    weight = torch.randn(B, d, generator=g, dtype=torch.float64)

    def run(fused: bool):
        leaves = [t.clone().requires_grad_() for t in (x, r, core)]
        torch.manual_seed(7)
        if fused:
            y = core_dropout_contract(*leaves, p)
        else:
            keep = keep_mask((B, d, d), p)
            matrices = (leaves[1] @ leaves[2].view(d, d * d)).view(B, d, d) * keep / kept_fraction(p)
            y = torch.bmm(leaves[0].unsqueeze(1), matrices).squeeze(1)
        (y * weight).sum().backward()
        return [y.detach()] + [t.grad for t in leaves]

    for a, b in zip(run(True), run(False)):
        torch.testing.assert_close(a, b)


def test_core_dropout_contract_gradcheck():
    g = torch.Generator().manual_seed(2)
    B, d = 3, 4
    leaves = [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((B, d), (B, d), (d, d, d))]

    def fn(x, r, core):
        torch.manual_seed(11)                     # the same mask on every evaluation
        return core_dropout_contract(x, r, core, 0.5)

    assert torch.autograd.gradcheck(fn, leaves)


def test_core_dropout_contract_without_dropout_is_the_plain_contraction():
    g = torch.Generator().manual_seed(4)
    x, r, core = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(3, 3, 3, generator=g)
    expected = torch.einsum("bj,bi,ijk->bk", x, r, core)
    torch.testing.assert_close(core_dropout_contract(x, r, core, 0.0), expected)
    # and an einsum check of the dropped version: zeros where the mask drops
    torch.manual_seed(5)
    y = core_dropout_contract(x, r, core, 0.5)
    torch.manual_seed(5)
    keep = keep_mask((4, 3, 3), 0.5).float() / kept_fraction(0.5)
    torch.testing.assert_close(y, torch.einsum("bj,bi,ijk,bjk->bk", x, r, core, keep))
    assert not torch.allclose(y, F.dropout(expected, 0.0))
