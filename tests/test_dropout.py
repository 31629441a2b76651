import math

import pytest
import torch
import torch.nn.functional as F

from mygo.fast import counter
from mygo.fast.dropout import (CounterDropout, Dropout, core_dropout_contract, dropout, keep_mask, kept_fraction,
                               relu_dropout_unscaled)

MASKS = ["drawn", "counter"]


def same_mask(shape, p, masks):
    """The bool mask that `masks`' next draw makes (call after the same torch.manual_seed)."""
    if masks == "drawn":
        return keep_mask(shape, p)
    return counter.keep(shape, counter.Counter.draw(p))


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


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dropout_values_and_gradient(masks, dtype):
    torch.manual_seed(0)
    # drawn in float32 and rounded: torch's own bf16 normal draw gives exact zeros in some
    # versions (2.11), which a dropped entry could not be told from
    x = torch.randn(64, 33).to(dtype).requires_grad_()
    assert (x != 0).all()
    torch.manual_seed(1)
    out = dropout(x, 0.4, masks=masks)
    torch.manual_seed(1)
    kept = same_mask(x.shape, 0.4, masks)
    scale = 1 / kept_fraction(0.4)
    assert torch.equal(out == 0, ~kept)
    torch.testing.assert_close(out[kept], x[kept] * scale)
    grad = torch.randn_like(out)
    out.backward(grad)
    torch.testing.assert_close(x.grad, grad * kept * scale)
    assert dropout(x, 0.4, training=False) is x and dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="masks = 'fresh': expected one of drawn, counter"):
        dropout(x, 0.4, masks="fresh")


@pytest.mark.parametrize("masks", MASKS)
def test_dropout_keeps_expectations(masks):
    torch.manual_seed(1)
    x = torch.ones(1_000_000)
    assert abs(dropout(x, 0.3, masks=masks).mean().item() - 1.0) < 5e-3


KERNEL_DROPOUT = {"fast": CounterDropout, "drawn-masks": Dropout, "kv-attention": Dropout,
                  "torch-dropout": torch.nn.Dropout, "torch-attention": CounterDropout}


@pytest.mark.parametrize("kernels", list(KERNEL_DROPOUT))
def test_every_kernel_switch_builds_the_same_model_as_torch(kernels):
    """mygo.fast.ops(kernels) changes operations, never parameters: the same state dict as the
    plain model for a seed, every dropout of the chosen kind, and the same function (float
    tolerance) in eval mode and in training without dropout."""
    from helpers import batch, tiny_model
    from mygo.fast.attention import BatchFirstEncoderLayer
    plain, other = tiny_model(kernels="plain"), tiny_model(kernels=kernels)
    assert list(plain.state_dict()) == list(other.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), other.state_dict().values()))
    dropouts = {type(m) for m in other.modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts == {KERNEL_DROPOUT[kernels]}
    assert {type(m) for m in plain.modules() if isinstance(m, torch.nn.Dropout)} == {torch.nn.Dropout}
    layers = {type(m) for m in other.modules() if isinstance(m, torch.nn.TransformerEncoderLayer)}
    assert layers == ({torch.nn.TransformerEncoderLayer} if kernels == "torch-attention" else {BatchFirstEncoderLayer})
    known, relation, head, target = batch(plain)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(known, relation, head), plain.eval()(known, relation, head))
    no_dropout = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0, input_dropout=0.0,
                      core_dropout=0.0, hidden_dropout=0.0)
    plain, other = tiny_model(kernels="plain", **no_dropout), tiny_model(kernels=kernels, **no_dropout)
    losses = []
    for model in (plain, other):
        loss = model.train().losses(known, relation, head, target, mu=0.1, contrastive_size=5,
                                    generator=torch.Generator().manual_seed(0)).total
        loss.backward()
        losses.append((loss.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(losses[0][1], losses[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_kernels_are_refused():
    from mygo import fast
    with pytest.raises(ValueError, match="kernels = 'turbo': expected one of fast, drawn-masks, kv-attention, plain"):
        fast.ops("turbo")


@pytest.mark.parametrize("mode", ["1", "0"])
def test_both_modes_build_the_same_operations(monkeypatch, mode):
    """The stages build `fast.ops()` (train) and `inference_ops()` (evaluate, predict) alike in
    the pinned and the fast CPU mode: the folded [ENT] attention and the token tables projected
    before gathering; the pinned mode differs in its environment only. The kernel sets kept as
    the benchmarks' befores gather tokens first and attend through keys and values."""
    from mygo import fast
    from mygo.checkpoint import inference_ops
    from mygo.fast.attention import slot0_attention_fused
    from mygo.model import project_table_rows, project_tokens, slot0_attention, slot0_attention_folded
    monkeypatch.setenv("MYGO_REPRODUCIBLE", mode)
    assert fast.default_kernels() == "fast" and fast.ops().ent_attention is slot0_attention_fused
    assert inference_ops().ent_attention is slot0_attention_folded          # the same forward, no mygo.fast
    assert fast.ops().tokens is project_table_rows and inference_ops().tokens is project_table_rows
    assert fast.ops("plain").ent_attention is slot0_attention
    assert fast.ops("kv-attention").ent_attention is slot0_attention
    for kernels in ("drawn-masks", "kv-attention", "plain"):
        assert fast.ops(kernels).tokens is project_tokens


@pytest.mark.parametrize("rows, tokens_shape", [(7, (5, 3)), (40, (5, 3)), (15, (15, 1)), (1, (4, 2))])
def test_tokens_projected_from_the_table_equal_gathered_ones(rows, tokens_shape):
    """norm(proj(table))[ids] = norm(proj(table[ids])): values, and the gradients of the
    projection and the layer norm, with repeated ids, on both sides of the switch (more table
    rows than ids: a tensor; fewer: Tokens, gathered by assemble)."""
    from mygo.model import Tokens, assemble, project_table_rows, project_tokens
    g = torch.Generator().manual_seed(rows)
    proj, norm = torch.nn.Linear(6, 4).double(), torch.nn.LayerNorm(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
        norm.bias.normal_(generator=g)
    table = torch.randn(rows, 6, dtype=torch.float64, generator=g)
    ids = torch.randint(0, rows, tokens_shape, generator=g)
    upstream = torch.randn(*tokens_shape, 4, dtype=torch.float64, generator=g)
    results = []
    for tokens in (project_tokens, project_table_rows):
        proj.zero_grad()
        norm.zero_grad()
        piece = tokens(proj, norm, table, ids, torch.nn.Identity())
        assert isinstance(piece, Tokens) == (tokens is project_table_rows and rows <= ids.numel())
        out = assemble([piece], torch.zeros(1, tokens_shape[1], 4, dtype=torch.float64))
        (out * upstream).sum().backward()
        results.append([out.detach(), proj.weight.grad, proj.bias.grad, norm.weight.grad, norm.bias.grad])
    assert results[1][0].shape == (*tokens_shape, 4)
    for name, a, b in zip(["tokens", "proj.weight", "proj.bias", "norm.weight", "norm.bias"], *results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("p, training", [(0.3, True), (0.3, False), (0.0, True)])
def test_tokens_gathered_in_the_sequences_pass_equal_the_unfused_pieces(p, training):
    """assemble_in_place with Tokens pieces (counter-mask dropout) against mygo.model.assemble
    gathering them with the same dropout modules after the same seed: the sequence bit for bit,
    the gradients of the rows, the other pieces and the slot bias to float tolerance; a piece
    with drawn-mask dropout is gathered on its own, with the same result."""
    from mygo.fast.tokens import assemble_in_place
    from mygo.model import Tokens, assemble
    g = torch.Generator().manual_seed(7)
    E, d = 40, 8
    token, structure = torch.randn(1, 1, d, generator=g), torch.randn(E, 1, d, generator=g)
    visual_rows, text_rows = torch.randn(30, d, generator=g), torch.randn(90, d, generator=g)
    visual_ids, text_ids = torch.randint(0, 30, (E, 3), generator=g), torch.randint(0, 90, (E, 2), generator=g)
    slot_bias = torch.randn(1, 7, d, generator=g)
    upstream = torch.randn(E, 7, d, generator=g)
    for text_dropout in (CounterDropout, Dropout):
        results = []
        for build in (assemble, assemble_in_place):
            leaves = [t.clone().requires_grad_() for t in (token, structure, visual_rows, text_rows, slot_bias)]
            drops = [CounterDropout(p).train(training), text_dropout(p).train(training)]
            pieces = [leaves[0].expand(E, 1, d), leaves[1], Tokens(leaves[2], visual_ids, drops[0]),
                      Tokens(leaves[3], text_ids, drops[1])]
            torch.manual_seed(3)
            out = build(pieces, leaves[4])
            (out * upstream).sum().backward()
            results.append([out.detach(), *(leaf.grad for leaf in leaves)])
        assert torch.equal(results[0][0], results[1][0])
        for name, a, b in zip(["token", "structure", "visual rows", "text rows", "slot bias"], results[0][1:],
                              results[1][1:]):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtypes", [(torch.float32,) * 3, (torch.float64,) * 3, (torch.bfloat16, torch.float32, torch.float32)])
def test_assembling_in_place_is_concatenating_and_adding_bit_for_bit(dtypes):
    """mygo.fast.tokens.assemble_in_place: the sequence and the gradients of every piece and of
    the slot bias are torch.equal to cat + bias through autograd, with an expanded piece ([ENT]),
    a bf16 piece among float32 ones, and an empty piece."""
    from mygo.fast.tokens import assemble_in_place
    from mygo.model import assemble
    g = torch.Generator().manual_seed(len(set(dtypes)))
    E, d = 6, 5
    token = torch.randn(1, 1, d, generator=g).to(dtypes[0])
    pieces = [torch.randn(E, 3, d, generator=g).to(dtypes[1]), torch.randn(E, 0, d, generator=g).to(dtypes[2]),
              torch.randn(E, 2, d, generator=g).to(dtypes[2])]
    slot_bias = torch.randn(1, 6, d, generator=g).to(dtypes[1])
    upstream = torch.randn(E, 6, d, generator=g)
    results = []
    for build in (assemble, assemble_in_place):
        leaves = [t.detach().clone().requires_grad_() for t in [token, *pieces, slot_bias]]
        out = build([leaves[0].expand(E, 1, d), *leaves[1:-1]], leaves[-1])
        (out * upstream.to(out.dtype)).sum().backward()
        results.append([out.detach(), *(leaf.grad for leaf in leaves)])
    for a, b in zip(*results):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("masks", MASKS)
def test_core_dropout_contract_equals_the_unfused_autograd_version(masks):
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
            y = core_dropout_contract(*leaves, p, masks)
        else:
            keep = same_mask((B, d, d), p, masks)
            matrices = (leaves[1] @ leaves[2].view(d, d * d)).view(B, d, d) * keep / kept_fraction(p)
            y = torch.bmm(leaves[0].unsqueeze(1), matrices).squeeze(1)
        (y * weight).sum().backward()
        return [y.detach()] + [t.grad for t in leaves]

    for a, b in zip(run(True), run(False)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("masks", MASKS)
def test_core_dropout_contract_gradcheck(masks):
    g = torch.Generator().manual_seed(2)
    B, d = 3, 4
    leaves = [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((B, d), (B, d), (d, d, d))]

    def fn(x, r, core):
        torch.manual_seed(11)                     # the same mask on every evaluation
        return core_dropout_contract(x, r, core, 0.5, masks)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("masks", MASKS)
def test_core_dropout_contract_without_dropout_is_the_plain_contraction(masks):
    g = torch.Generator().manual_seed(4)
    x, r, core = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(3, 3, 3, generator=g)
    expected = torch.einsum("bj,bi,ijk->bk", x, r, core)
    torch.testing.assert_close(core_dropout_contract(x, r, core, 0.0, masks), expected)
    # and an einsum check of the dropped version: zeros where the mask drops
    torch.manual_seed(5)
    y = core_dropout_contract(x, r, core, 0.5, masks)
    torch.manual_seed(5)
    keep = same_mask((4, 3, 3), 0.5, masks).float() / kept_fraction(0.5)
    torch.testing.assert_close(y, torch.einsum("bj,bi,ijk,bjk->bk", x, r, core, keep))
    assert not torch.allclose(y, F.dropout(expected, 0.0))


def training_layer(p: float, kind):
    """A fast encoder layer in training with dropouts `kind`(p), an input x (5, 7, 16) and a key
    padding mask (slot 0 never padded)."""
    from mygo.fast.attention import BatchFirstEncoderLayer
    torch.manual_seed(0)
    layer = BatchFirstEncoderLayer(16, 2, 32, dropout=p, batch_first=True)
    layer.dropout, layer.dropout1, layer.dropout2 = (kind(p) for _ in range(3))
    layer.train()
    x = torch.randn(5, 7, 16)
    padded = torch.rand(5, 7) < 0.3
    padded[:, 0] = False
    return layer, x, padded


def output_and_gradients(layer, x, run) -> list[torch.Tensor]:
    """run(leaf) after torch.manual_seed(1), backward through a fixed weighting of its output:
    the output, x's gradient and every parameter's."""
    layer.zero_grad()
    leaf = x.clone().requires_grad_()
    torch.manual_seed(1)
    out = run(leaf)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return [out.detach(), leaf.grad] + [q.grad.clone() for q in layer.parameters()]


@pytest.mark.parametrize("kind", [Dropout, CounterDropout])
@pytest.mark.parametrize("p", [0.0, 0.01, 0.3])
def test_folded_dropout_scales_equal_the_plain_layer(monkeypatch, p, kind):
    """The CPU layer with its dropout scales folded into the linear layers and ReLU + dropout in one
    masked pass: the same outputs and gradients as dropout applied to the activations, with the
    same masks (the same draws in the same order)."""
    from mygo.fast.attention import BatchFirstEncoderLayer
    layer, x, padded = training_layer(p, kind)
    results = []
    for folded in (True, False):
        monkeypatch.setattr(BatchFirstEncoderLayer, "folds_dropout", lambda self, x, folded=folded: folded)
        results.append(output_and_gradients(layer, x, lambda leaf: layer(leaf, src_key_padding_mask=padded)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [0.01, 0.3])
def test_the_ent_slot_feed_forward_folds_with_counter_masks_only(monkeypatch, p):
    """mygo.fast.attention.folded_feed_forward, first_slot's feed-forward block in the fast
    kernels: with counter masks the layer's folded block, equal to mygo.model.feed_forward with
    the same masks, outputs and gradients; with drawn masks (the pinned mode's kernels) and in
    eval mode feed_forward itself, never the folded block."""
    from mygo import fast
    from mygo.fast.attention import BatchFirstEncoderLayer, folded_feed_forward
    from mygo.model import feed_forward, first_slot, slot0_attention
    assert fast.ops("fast").ent_feed_forward is folded_feed_forward
    assert all(fast.ops(k).ent_feed_forward is feed_forward for k in ("drawn-masks", "kv-attention", "plain"))
    layer, x, padded = training_layer(p, CounterDropout)
    results, calls, folded_block = [], [], BatchFirstEncoderLayer.feed_forward
    monkeypatch.setattr(BatchFirstEncoderLayer, "feed_forward",
                        lambda self, x: calls.append(1) or folded_block(self, x))
    for ffn in (folded_feed_forward, feed_forward):
        results.append(output_and_gradients(layer, x,
                                            lambda leaf: first_slot(layer, leaf, padded, slot0_attention, ffn)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert calls == [1]                                      # folded once, in the folded round
    monkeypatch.setattr(BatchFirstEncoderLayer, "feed_forward", lambda self, x: pytest.fail("folded"))
    first_slot(layer.eval(), x, padded, slot0_attention, folded_feed_forward)
    layer.dropout, layer.dropout1, layer.dropout2 = (Dropout(p) for _ in range(3))
    assert first_slot(layer.train(), x, padded, slot0_attention, folded_feed_forward).shape == (5, 1, 16)


def test_layer_folds_only_on_cpu_with_the_fast_dropout():
    from mygo.fast.attention import BatchFirstEncoderLayer
    layer = BatchFirstEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    x = torch.randn(2, 3, 8)
    assert not layer.folds_dropout(x)                        # torch's nn.Dropout modules
    layer.dropout, layer.dropout1, layer.dropout2 = (Dropout(0.1) for _ in range(3))
    assert layer.folds_dropout(x)
    layer.dropout, layer.dropout1, layer.dropout2 = (CounterDropout(0.1) for _ in range(3))
    assert layer.folds_dropout(x)
    layer.dropout1 = Dropout(0.1)                            # two kinds: not folded
    assert not layer.folds_dropout(x)


@pytest.mark.parametrize("masks", MASKS)
def test_relu_dropout_unscaled_values_and_gradcheck(masks):
    h = torch.randn(6, 9, dtype=torch.float64)
    torch.manual_seed(3)
    out = relu_dropout_unscaled(h.clone(), 0.4, masks)
    torch.manual_seed(3)
    keep = same_mask(h.shape, 0.4, masks)
    torch.testing.assert_close(out, torch.relu(h) * keep)

    def fn(x):
        torch.manual_seed(3)
        return relu_dropout_unscaled(x * 1.0, 0.4, masks)     # a fresh activation, as the layer passes

    leaf = torch.randn(4, 5, dtype=torch.float64).add_(0.05 * torch.sign(torch.randn(4, 5, dtype=torch.float64)))
    assert torch.autograd.gradcheck(fn, [leaf.requires_grad_()])


def with_residual(attention, layer, x, padded):
    """An [ENT] attention's output and the residual x[:, :1], as mygo.model.first_slot takes them."""
    out = attention(layer, x, padded)
    return out if isinstance(out, tuple) else (out, x[:, :1])


def folded_with_counter_dropout(layer, x, padded):
    """slot0_attention_folded with its attention dropout drawn as counter masks: the reference
    for the fused backward (the same masks after the same torch.manual_seed)."""
    from mygo.model import slot0_attention_folded
    original = F.dropout
    try:
        F.dropout = lambda t, q, *args, **kwargs: dropout(t, q, masks="counter")
        return slot0_attention_folded(layer, x, padded)
    finally:
        F.dropout = original


def folded_with_native_dropout(layer, x, padded):
    """slot0_attention_folded with its attention dropout drawn by torch.native_dropout, as F.dropout
    draws on CUDA: the reference for the fused backward's drawn masks."""
    from mygo.model import slot0_attention_folded
    original = F.dropout
    try:
        F.dropout = lambda t, q, *args, **kwargs: torch.native_dropout(t, q, True)[0]
        return slot0_attention_folded(layer, x, padded)
    finally:
        F.dropout = original


def fused_and_its_reference(masks):
    """slot0_attention_fused with `masks` and the autograd reference drawing the same masks."""
    from mygo.fast.attention import slot0_attention_fused
    reference = folded_with_counter_dropout if masks == "counter" else folded_with_native_dropout
    return reference, lambda layer, x, padded: slot0_attention_fused(layer, x, padded, masks=masks)


@pytest.mark.parametrize("masks", ["counter", "drawn"])
@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_slot0_attention_backward_equals_autograd(heads, p, dtype, masks):
    """slot0_attention_fused's own backward: the output and the gradients of x, the in-projection's
    weight and bias equal autograd's through slot0_attention_folded, with padded slots, an entity
    with no tokens and attention dropout (counter masks, as on the CPU, or drawn ones, as
    elsewhere: the same draw in both)."""
    from mygo.fast.attention import slot0_attention_fused
    torch.manual_seed(heads)
    layer = torch.nn.TransformerEncoderLayer(16, heads, 32, dropout=p, batch_first=True).to(dtype).train()
    with torch.no_grad():
        layer.self_attn.in_proj_bias.normal_()
    padded = torch.rand(9, 6) < 0.4
    padded[:, 0] = False
    padded[3, 1:] = True
    results = []
    for attention in fused_and_its_reference(masks):
        x = torch.randn(9, 6, 16, dtype=dtype, generator=torch.Generator().manual_seed(0), requires_grad=True)
        layer.zero_grad()
        torch.manual_seed(5)
        out, residual = with_residual(attention, layer, x, padded)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum()
        (loss + (residual * torch.linspace(2, 3, residual.numel(), dtype=dtype).view_as(residual)).sum()).backward()
        results.append([out.detach(), residual.detach(), x.grad, layer.self_attn.in_proj_weight.grad,
                        layer.self_attn.in_proj_bias.grad])
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for name, a, b in zip(["out", "residual", "x", "weight", "bias"], *results):
        torch.testing.assert_close(b, a, **tolerance, msg=name)
    assert torch.equal(results[1][1], x[:, :1].detach())
    if p:
        torch.manual_seed(6)
        assert not torch.equal(slot0_attention_fused(layer, x, padded, masks=masks)[0], results[1][0])


@pytest.mark.parametrize("masks", ["counter", "drawn"])
def test_fused_slot0_attention_under_bf16_autocast_equals_autograd(masks):
    """Under CPU bf16 autocast the fused attention casts x once (not once per product): the same
    output and gradients as autograd through the folded attention under autocast, x's gradient in
    x's dtype."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 2, 64, dropout=0.2, batch_first=True).train()
    padded = torch.rand(20, 6) < 0.3
    padded[:, 0] = False
    results = []
    for attention in fused_and_its_reference(masks):
        x = torch.randn(20, 6, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
        layer.zero_grad()
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, residual = with_residual(attention, layer, x, padded)
        (out.float().sum() + 2 * residual.sum()).backward()
        results.append([out.float().detach(), x.grad, layer.self_attn.in_proj_weight.grad])
    assert results[1][1].dtype == torch.float32
    for name, a, b in zip(["out", "x", "weight"], *results):
        torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-2, msg=name)


def test_fused_slot0_attention_gradcheck():
    from mygo.fast.attention import slot0_attention_fused
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True).double().train()
    padded = torch.zeros(3, 4, dtype=torch.bool)
    padded[1, 2:] = True
    attn = layer.self_attn

    def fn(x, w, b):
        attn.in_proj_weight, attn.in_proj_bias = w, b
        torch.manual_seed(2)                                  # the same mask on every evaluation
        return slot0_attention_fused(layer, x, padded)

    leaves = [torch.randn(3, 4, 8, dtype=torch.float64, requires_grad=True),
              attn.in_proj_weight.detach().clone().requires_grad_(), torch.randn(24, dtype=torch.float64,
                                                                                  requires_grad=True)]
    del attn.in_proj_weight, attn.in_proj_bias
    assert torch.autograd.gradcheck(fn, leaves)


def test_fused_slot0_attention_without_gradients_is_the_folded_forward():
    from mygo.fast.attention import slot0_attention_fused
    from mygo.model import slot0_attention_folded
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    x, padded = torch.randn(5, 6, 16), torch.zeros(5, 6, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(slot0_attention_fused(layer, x, padded), slot0_attention_folded(layer, x, padded))
    layer.train()
    out, residual = slot0_attention_fused(layer, x, padded)                 # the weights want gradients
    assert torch.equal(out, slot0_attention_folded(layer, x, padded)) and torch.equal(residual, x[:, :1])


def test_off_the_cpu_the_all_entity_pass_adds_slot_0s_gradients_in_place():
    """Off the CPU (here on `meta`, which computes nothing but takes the code paths a CUDA device
    takes) the [ENT] attention runs its own backward too (drawn masks), so the all-entity pass's
    backward makes no zero-filled (E, L, d) gradient for slot 0's slices to be added on: what it
    saves a GPU step is two such tensors written and three (E, L, d) sums."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from helpers import tiny_model

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.outputs = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.outputs.append((func.overloadpacket.__name__, tuple(getattr(out, "shape", ()))))
            return out

    model = tiny_model(attn_dropout=0.2).to("meta").train()
    encoder = model.entity_encoder
    encoder.host_slot_mask = lambda entities=None: None          # no host copies of meta tensors
    encoder.fixed_slots = torch.arange(encoder.visual_ids.shape[1] + encoder.text_ids.shape[1] + 2, device="meta")
    sequence = (model.config.num_entities, len(encoder.fixed_slots), model.config.dim)
    embeddings = model.entity_embeddings()
    assert embeddings.grad_fn is not None
    with Record() as record:
        embeddings.sum().backward()
    names = [name for name, _ in record.outputs]
    assert "native_dropout_backward" in names                    # the fused backward's drawn mask
    zero_filled = [(name, shape) for name, shape in record.outputs
                   if name in ("select_backward", "slice_backward") and shape == sequence]
    assert not zero_filled, zero_filled
