"""Counter dropout masks (mygo.fast.counter): the documented formula, the C kernels against the
torch version bit for bit, threads, the build and its fallback."""
import logging
import math
import os

import pytest
import torch

from mygo.fast import counter
from mygo.fast.counter import Counter

M64 = 2**64 - 1


def splitmix_keep(seed: int, i: int, threshold: int) -> bool:
    """The module docstring's formula in Python integers: the oracle neither implementation shares."""
    z = (seed + (i // 4 + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return ((z >> (16 * (i % 4))) & 0xFFFF) < threshold


@pytest.fixture(params=["c", "torch"])
def implementation(request, monkeypatch):
    """Run a test with the C kernels and with the torch version."""
    counter.library.cache_clear()
    monkeypatch.setenv("MYGO_NATIVE_KERNELS", "1" if request.param == "c" else "0")
    if request.param == "c":
        assert counter.library() is not None, "the C kernels should build on the test machine (cc)"
    yield request.param
    counter.library.cache_clear()


def both(fn):
    """fn() with the C kernels and with torch operations."""
    results = []
    for native in ("1", "0"):
        os.environ["MYGO_NATIVE_KERNELS"] = native
        counter.library.cache_clear()
        try:
            results.append(fn())
        finally:
            os.environ.pop("MYGO_NATIVE_KERNELS")
            counter.library.cache_clear()
    return results


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 2, 0x0123456789ABCDEF])
def test_keep_follows_the_formula(implementation, seed):
    mask = Counter(seed, round(0.7 * 2**16))
    n = 37
    got = counter.keep((n,), mask).tolist()
    assert got == [splitmix_keep(seed, i, mask.threshold) for i in range(n)]
    assert counter.keep((n,), mask, dropped=True).tolist() == [not k for k in got]


@pytest.mark.parametrize("n", [1, 3, 4, 5, 4095, 4097, 70_001, 300_000])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_c_and_torch_draw_the_same_mask(n, p):
    mask = Counter(12345 + n, round((1 - p) * 2**16))
    c, t = both(lambda: counter.keep((n,), mask))
    assert torch.equal(c, t)
    if p in (0.0, 1.0):
        assert bool(c.all()) == (p == 0.0) and bool(c.any()) == (p == 0.0)


@pytest.mark.parametrize("p", [0.01, 0.3, 0.6])
def test_every_lane_is_bernoulli(p):
    """Each of a word's four 16-bit lanes keeps 1 - p' of its entries (5 sigma)."""
    torch.manual_seed(0)
    n = 400_000
    mask = Counter.draw(p)
    keep = counter.keep((n,), mask)
    kept = mask.threshold / 2**16
    for lane in range(4):
        rate = keep[lane::4].float().mean().item()
        assert abs(rate - kept) < 5 * math.sqrt(kept * (1 - kept) / (n / 4)), (lane, rate)


def test_draws_follow_torchs_seed():
    torch.manual_seed(3)
    a = Counter.draw(0.2)
    torch.manual_seed(3)
    assert Counter.draw(0.2) == a and Counter.draw(0.2) != a
    assert a.threshold == round(0.8 * 2**16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(7,), (33, 65), (3, 300, 257)])
def test_operations_are_bit_equal_in_c_and_torch(dtype, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g).to(dtype)
    x.view(-1)[::11] = 0.0
    mask = Counter(99, round(0.6 * 2**16))

    def run():
        return [counter.mask_(x.clone(), mask), counter.mask_(x.clone(), mask, relu=True),
                counter.scaled(x, mask, 1 / 0.6), counter.scaled(x.transpose(0, -1), mask, 2.5)]

    for c, t in zip(*both(run)):
        assert c.dtype == dtype and torch.equal(c, t)
    masked, relu_masked, scaled, _ = run()
    keep = counter.keep(shape, mask)
    assert torch.equal(masked, x * keep.to(dtype))
    assert torch.equal(relu_masked, torch.relu(x) * keep.to(dtype))
    expected = (x.float() * (keep.float() / 0.6)).to(dtype)
    assert torch.equal(scaled, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B,d1,d2", [(1, 1, 1), (5, 3, 7), (64, 32, 48), (3, 2, 4100), (2, 3, 8192)])   # rows longer than the C buffer
def test_masked_outer_products(dtype, B, d1, d2):
    g = torch.Generator().manual_seed(2)
    a, c = torch.randn(B, d1, generator=g).to(dtype), torch.randn(B, d2, generator=g).to(dtype)
    mask = Counter(7, round(0.5 * 2**16))
    native, fallback = both(lambda: counter.outer(a, c, mask))
    assert torch.equal(native, fallback)
    expected = (a.unsqueeze(2) * c.unsqueeze(1)) * counter.keep((B, d1, d2), mask).to(dtype)
    assert native.shape == (B, d1, d2) and torch.equal(native, expected)


def test_threads_split_a_tensor_with_the_same_result(monkeypatch):
    monkeypatch.setattr(counter, "PARALLEL_FROM", 1)                # split even this small tensor
    x = torch.randn(3, 100_003)
    mask = Counter(5, round(0.9 * 2**16))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [counter.mask_(x.clone(), mask), counter.keep(x.shape, mask), counter.outer(x[:, :400], x[:, 400:700], mask)]
        torch.set_num_threads(3)
        three = [counter.mask_(x.clone(), mask), counter.keep(x.shape, mask), counter.outer(x[:, :400], x[:, 400:700], mask)]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, three):
        assert torch.equal(a, b)


def gathered_sequence(E=7, L=9, k=5, offset=3, V=11, d=6, p=0.3, seed=4):
    g = torch.Generator().manual_seed(seed)
    rows, bias = torch.randn(V, d, generator=g), torch.randn(k, d, generator=g)
    ids = torch.randint(0, V, (E, k), generator=g)
    ids[0, :2] = 3                                                  # a row picked more than once
    out = torch.full((E, L, d), 7.0)
    mask = Counter(seed, counter.keep_threshold(p))
    return out, offset, rows, ids, bias, mask, 1.0 / (1 - p)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.95])
def test_gathered_tokens_are_dropped_out_and_biased_in_place(implementation, p):
    """gather_into writes rows[ids] times the mask's 0 / scale plus the bias into its slots (mask
    entry (e k + j) d + c for token (e, j)), bit for bit as those torch operations, and nothing
    else; scatter_from's gradients are the autograd ones of the same expression."""
    out, offset, rows, ids, bias, mask, scale = gathered_sequence(p=p)
    E, k, d = *ids.shape, rows.shape[1]
    counter.gather_into(out, offset, rows, ids, bias, mask, scale)
    factor = counter.keep((E, k, d), mask).float() * scale
    leaf, bias_leaf = rows.clone().requires_grad_(), bias.clone().requires_grad_()
    expected = leaf[ids] * factor + bias_leaf
    assert torch.equal(out[:, offset:offset + k], expected.detach())
    assert (out[:, :offset] == 7).all() and (out[:, offset + k:] == 7).all()
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    expected.backward(grad[:, offset:offset + k])
    rows_grad, bias_grad = counter.scatter_from(grad, offset, ids, rows.shape[0], mask, scale)
    torch.testing.assert_close(rows_grad, leaf.grad)
    torch.testing.assert_close(bias_grad, bias_leaf.grad)


def test_scatter_from_threads_agree():
    """Threads taking ranges of rows give the rows' gradient bit for bit as one thread."""
    out, offset, rows, ids, bias, mask, scale = gathered_sequence(E=3000, L=6, k=4, offset=1, V=50, d=64)
    grad = torch.randn(out.shape)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = counter.scatter_from(grad, offset, ids, 50, mask, scale)
        torch.set_num_threads(2)
        two = counter.scatter_from(grad, offset, ids, 50, mask, scale)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0])
    torch.testing.assert_close(one[1], two[1])


def test_gather_and_scatter_take_the_torch_version_for_other_dtypes_and_ids():
    """float64 rows, bf16 sequences and int32 ids go through torch operations, with the same result."""
    out, offset, rows, ids, bias, mask, scale = gathered_sequence()
    counter.gather_into(out, offset, rows, ids, bias, mask, scale)
    out64 = torch.full(out.shape, 7.0, dtype=torch.float64)
    counter.gather_into(out64, offset, rows.double(), ids.int(), bias.double(), mask, scale)
    torch.testing.assert_close(out64.float(), out)
    out16 = torch.full(out.shape, 7.0, dtype=torch.bfloat16)
    counter.gather_into(out16, offset, rows.bfloat16(), ids, bias.bfloat16(), mask, scale)
    torch.testing.assert_close(out16.float(), out, rtol=2e-2, atol=5e-2)
    grad = torch.randn(out.shape)
    expected = counter.scatter_from(grad, offset, ids, rows.shape[0], mask, scale)
    for a, b in zip(counter.scatter_from(grad, offset, ids.int(), rows.shape[0], mask, scale), expected):
        torch.testing.assert_close(a, b)


def test_gather_into_c_and_torch_bit_equal():
    results = both(lambda: [counter.gather_into(*args) or args[0]
                            for args in [gathered_sequence(E=300, V=40, d=33, p=0.4)]][0])
    assert torch.equal(*results)


@pytest.mark.parametrize("n", [1, 5, 4099, 300_001])
def test_relu_grad_is_the_gradient_times_the_outputs_sign(implementation, n):
    """relu_grad(g, y) = g * y.sign() for a ReLU's masked output y >= 0 (zeros among them), bit for
    bit, with the C kernel and the torch version; other dtypes take the torch version."""
    g = torch.Generator().manual_seed(n)
    y = torch.relu(torch.randn(n, generator=g)) * (torch.rand(n, generator=g) < 0.7)
    grad = torch.randn(n, generator=g)
    assert torch.equal(counter.relu_grad(grad, y), grad * y.sign())
    g16, y16 = grad.bfloat16(), y.bfloat16()
    assert torch.equal(counter.relu_grad(g16, y16), g16 * y16.sign())
    assert torch.equal(counter.relu_grad(grad.double(), y.double()), (grad * y.sign()).double())


def test_other_dtypes_and_layouts_take_the_torch_version():
    x = torch.randn(40, 30, dtype=torch.float64)
    mask = Counter(1, round(0.5 * 2**16))
    keep = counter.keep(x.shape, mask)
    assert torch.equal(counter.mask_(x.clone(), mask), x * keep)
    y = torch.randn(30, 40).t()                                     # not contiguous: masked in its logical order
    assert torch.equal(counter.mask_(y.clone(), mask), y * keep)


def test_build_caches_one_library_per_source_and_machine(tmp_path):
    first = counter.build(tmp_path)
    assert first.exists() and first.parent == tmp_path
    stamp = first.stat().st_mtime_ns
    assert counter.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_without_a_compiler_the_masks_are_the_same_and_a_warning_says_why(tmp_path, monkeypatch, caplog):
    mask = Counter(42, round(0.75 * 2**16))
    x = torch.randn(1000)
    expected = counter.mask_(x.clone(), mask)
    monkeypatch.setenv("MYGO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    counter.library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="mygo.fast.counter"):
            assert counter.library() is None
            assert torch.equal(counter.mask_(x.clone(), mask), expected)
        assert "could not be built" in caplog.text and "no-such-compiler" in caplog.text
        with pytest.raises(OSError, match="no-such-compiler"):
            counter.build(tmp_path / "other")
        monkeypatch.setenv("CC", "false")                            # a compiler that fails
        with pytest.raises(OSError, match="false -O3"):
            counter.build(tmp_path / "other")
        assert not list((tmp_path / "other").glob("*.so"))
    finally:
        counter.library.cache_clear()
