
import pytest
import torch

from helpers import batch, tiny_model
from mygo.model import TuckER


def test_shapes_and_masks():
    model = tiny_model()
    out, mask = model.entity_encoder()
    assert out.shape == (7, 2 + 3 + 2, 8) and mask.shape == (7, 7)
    assert mask[:, :2].all()
    assert not mask[0, 2:5].any()
    known, relation, head, target = batch(model)
    scores = model(known, relation, head)
    loss = model.losses(known, relation, head, target, mu=0.01, contrastive_size=4).total
    assert scores.shape == (5, 7) and loss.dim() == 0 and torch.isfinite(loss)


def test_padded_slots_do_not_change_the_output():
    model = tiny_model().eval()
    before = model.entity_embeddings()
    enc = model.entity_encoder
    enc.visual_ids[~enc.visual_mask] = 4                       # garbage behind the mask
    enc.text_ids[~enc.text_mask] = 3
    assert torch.allclose(model.entity_embeddings(), before, atol=1e-6)


def test_eval_mode_is_deterministic():
    model = tiny_model().eval()
    known, relation, head, _ = batch(model)
    a = model(known, relation, head)
    b = model(known, relation, head)
    assert torch.equal(a, b)


def test_tucker_matches_loop_reference():
    config = tiny_model().config
    tucker = TuckER(config).eval()
    g = torch.Generator().manual_seed(3)
    context, relation, entities = (torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g),
                                   torch.randn(7, 8, generator=g))
    fast = tucker(context, relation, entities)
    x = tucker.bn0(context)
    expected = torch.zeros(4, 7)
    for b in range(4):
        M = torch.zeros(8, 8)
        for j in range(8):
            M += relation[b, j] * tucker.core[j]
        y = tucker.bn1((x[b] @ M).unsqueeze(0)).squeeze(0)
        expected[b] = entities @ y
    assert torch.allclose(fast, expected, atol=1e-4)


def test_tucker_contraction_orders_agree_with_gradients():
    """Training with core dropout materialises each query's d x d matrix; otherwise TuckER uses
    (x outer r') @ W. Same scores and same gradients."""
    config = tiny_model().config
    assert config.core_dropout > 0
    g = torch.Generator().manual_seed(5)
    inputs = [torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g), torch.randn(7, 8, generator=g)]

    def scores_and_grads(materialised: bool):
        torch.manual_seed(0)
        tucker = TuckER(config).eval()
        if materialised:               # the training path, with every dropout and batch norm inert
            tucker.train()
            for module in (tucker.bn0, tucker.bn1, tucker.drop_in, tucker.drop_core, tucker.drop_hidden):
                module.eval()
        leaves = [x.clone().requires_grad_() for x in inputs]
        scores = tucker(*leaves)
        (scores * torch.linspace(-1, 1, scores.numel()).view_as(scores)).sum().backward()
        return scores.detach(), [x.grad for x in leaves] + [tucker.core.grad]

    scores_a, grads_a = scores_and_grads(True)
    scores_b, grads_b = scores_and_grads(False)
    assert torch.allclose(scores_a, scores_b, atol=1e-4)
    for a, b in zip(grads_a, grads_b):
        assert torch.allclose(a, b, atol=1e-4)


def test_frozen_tables_unchanged_after_a_step():
    model = tiny_model()
    tables = {k: v.clone() for k, v in model.state_dict().items() if "table" in k or "_ids" in k}
    assert not any("table" in name for name, _ in model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    known, relation, head, target = batch(model)
    loss = model.losses(known, relation, head, target, mu=0.1, contrastive_size=5).total
    loss.backward()
    opt.step()
    for k, v in tables.items():
        assert torch.equal(model.state_dict()[k], v)


@pytest.mark.parametrize("switch", ["use_visual", "use_text", "use_structure"])
def test_ablation_switches_remove_a_modality(switch):
    model = tiny_model(**{switch: False})
    _, mask = model.entity_encoder()
    column = {"use_structure": slice(1, 2), "use_visual": slice(2, 5), "use_text": slice(5, 7)}[switch]
    assert not mask[:, column].any()


def test_overfits_a_handful_of_triples():
    model = tiny_model(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0,
                       input_dropout=0.0, core_dropout=0.0, hidden_dropout=0.0, dim=16)
    triples = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 2, 5], [6, 0, 2]])
    known, relation, target = triples[:, 0], triples[:, 1], triples[:, 2]
    head = torch.zeros(4, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        loss = model.losses(known, relation, head, target).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    scores = model(known, relation, head)
    assert (scores.argmax(1) == target).all()
    assert loss.item() < 0.1


def test_contrastive_second_pass_only_encodes_the_sample():
    model = tiny_model()
    calls = []
    model.entity_encoder.register_forward_hook(lambda mod, args, out: calls.append(out[0].shape[0]))
    known, relation, head, target = batch(model)
    model.losses(known, relation, head, target, mu=0.01, contrastive_size=3)
    assert calls == [7, 3]


def test_dropping_all_padded_slots_changes_nothing():
    model = tiny_model().eval()
    enc = model.entity_encoder
    enc.visual_mask[:, 2] = False                          # a slot padded for every entity
    out, mask = enc()
    # reference: the plain encoder on the full sequence
    full = enc.encoder
    calls = []
    handle = full.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[1]))
    enc()
    handle.remove()
    assert calls == [6]                                    # 7 slots, one dropped
    E, L, d = out.shape
    seq_mask = mask
    ent = enc.ent_token.expand(E, 1, d)
    structure = enc.norm_str(enc.structure).unsqueeze(1) + enc.bias_str
    visual = enc.norm_vis(enc.proj_vis(enc.visual_table[enc.visual_ids])) + enc.bias_vis
    text = enc.norm_txt(enc.proj_txt(enc.text_table[enc.text_ids])) + enc.bias_txt
    reference = full(torch.cat([ent, structure, visual, text], 1), src_key_padding_mask=~seq_mask)
    assert torch.allclose(out[:, 0], reference[:, 0], atol=1e-5)
    assert torch.allclose(out[seq_mask], reference[seq_mask], atol=1e-5)


def test_contrastive_on_the_sample_equals_slicing_a_full_pass():
    """Same loss and gradients as the reference code's second pass over all N entities."""
    def loss_and_grads(full_pass: bool):
        model = tiny_model(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0)
        entity_emb = model.entity_embeddings()
        sample = torch.tensor([5, 0, 3, 6])
        if full_pass:
            out, mask = model.entity_encoder()
            model.entity_encoder.forward = lambda entities=None: (out[entities], mask[entities])
        loss = model.contrastive_loss(entity_emb, sample, tau=0.5)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = loss_and_grads(full_pass=False)
    loss_b, grads_b = loss_and_grads(full_pass=True)
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name


def test_decisions_from_the_host_masks_are_the_devices_own():
    """What a model on a GPU decides from host copies (the slots to encode, the contrastive views'
    valid rows) is what reading the device's masks back decides: the same slots, the same loss to
    the bit; and the host copies follow the buffers when they change (a loaded state dict)."""
    from mygo.model import info_nce
    model = tiny_model(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0)
    encoder = model.entity_encoder
    for entities in (None, torch.tensor([0, 3]), torch.tensor([5, 0, 3, 6]), torch.tensor([0])):
        mask = encoder.slot_mask(entities)
        assert torch.equal(encoder.host_slot_mask(entities), mask)
        ours, theirs = encoder._kept_slots(mask, encoder.host_slot_mask(entities)), encoder._kept_slots(mask)
        assert (ours is None and theirs is None) or torch.equal(ours, theirs)
    assert encoder._kept_slots(encoder.slot_mask(torch.tensor([0]))) is not None    # entity 0: no visual slots
    g = torch.Generator().manual_seed(0)
    anchor, view = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    for valid in (torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool), torch.ones(6, dtype=torch.bool)):
        assert torch.equal(info_nce(anchor, view, valid, 0.5, host_valid=valid), info_nce(anchor, view, valid, 0.5))
    assert info_nce(anchor, view, torch.zeros(6, dtype=torch.bool), 0.5, host_valid=torch.zeros(6, dtype=torch.bool)) \
        is None
    entity_emb = model.entity_embeddings()
    sample = torch.tensor([5, 0, 3, 6])
    out, mask = encoder(sample)
    assert torch.equal(model.fine_grained_loss(entity_emb[sample], out, mask, 0.5, encoder.host_slot_mask(sample)),
                       model.fine_grained_loss(entity_emb[sample], out, mask, 0.5))
    state = model.state_dict()
    state["entity_encoder.visual_mask"] = torch.zeros_like(state["entity_encoder.visual_mask"])
    model.load_state_dict(state)
    assert not encoder.host_slot_mask()[:, 2:5].any() and torch.equal(encoder.host_slot_mask(), encoder.slot_mask())


def test_skipping_padded_slots_keeps_loss_and_gradients():
    def loss_and_grads(skip: bool):
        model = tiny_model(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0,
                           input_dropout=0.0, core_dropout=0.0, hidden_dropout=0.0)
        model.entity_encoder.visual_mask[:] = False                  # no images at all
        model.entity_encoder.skip_padded_slots = skip
        known, relation, head, target = batch(model)
        loss = model.losses(known, relation, head, target, mu=0.1, contrastive_size=5,
                            generator=torch.Generator().manual_seed(0)).total
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = loss_and_grads(True)
    loss_b, grads_b = loss_and_grads(False)
    assert torch.allclose(loss_a, loss_b, atol=1e-5)
    for name, grad in grads_b.items():
        assert torch.allclose(grads_a.get(name, torch.zeros_like(grad)), grad, atol=1e-5), name


@pytest.mark.slow
def test_compiled_model_matches_eager():
    """torch.compile (MyGO.compile_parts) keeps the mathematics: the same loss, contrastive term
    included, and the same gradients as the eager model, in train and eval mode. Takes a minute
    on a CPU: Inductor compiles C++ kernels."""
    def loss_and_grads(compiled: bool):
        model = tiny_model(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0,
                           input_dropout=0.0, core_dropout=0.0, hidden_dropout=0.0)
        model.entity_encoder.visual_mask[:, 2] = False      # a slot padded everywhere: the skipping path
        if compiled:
            model.compile_parts()
        known, relation, head, target = batch(model)
        loss = model.losses(known, relation, head, target, mu=0.1, contrastive_size=4,
                            generator=torch.Generator().manual_seed(0)).total
        loss.backward()
        with torch.no_grad():
            scores = model.eval()(known, relation, head)
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, scores

    try:
        loss_eager, grads_eager, scores_eager = loss_and_grads(False)
        loss_compiled, grads_compiled, scores_compiled = loss_and_grads(True)
    finally:
        torch._dynamo.reset()
    assert torch.allclose(loss_compiled, loss_eager, rtol=1e-5)
    assert grads_compiled.keys() == grads_eager.keys()
    for name, grad in grads_eager.items():
        assert torch.allclose(grads_compiled[name], grad, atol=1e-5), name
    assert torch.allclose(scores_compiled, scores_eager, atol=1e-5)


def _bounds(model, N, R, d, Dv, Dt):
    """Xavier-uniform bounds sqrt(6 / (fan_in + fan_out)) of the reference scheme, per parameter."""
    vec = (6 / (2 * d)) ** 0.5
    return {
        "entity_encoder.structure": (6 / (d + N * d)) ** 0.5,            # (N, 1, d)
        "triple_encoder.relation": (6 / (d + R * d)) ** 0.5,             # (R, 1, d)
        "entity_encoder.ent_token": vec, "entity_encoder.bias_str": vec, "entity_encoder.bias_vis": vec,
        "entity_encoder.bias_txt": vec, "triple_encoder.position": vec,
        "triple_encoder.mask_token": (6 / (d + 1)) ** 0.5,                # (1, d) in the authors' code
        "decoder.core": (6 / (2 * d * d)) ** 0.5,                        # sqrt(3) / d
        "entity_encoder.proj_vis.weight": (6 / (Dv + d)) ** 0.5,
        "entity_encoder.proj_txt.weight": (6 / (Dt + d)) ** 0.5,
    }


@pytest.mark.parametrize("init", ["reference", "ours"])
def test_initialisation_bounds_per_parameter(init):
    N, R, d = 400, 30, 32
    torch.manual_seed(0)
    model = tiny_model(num_entities=N, num_relations=R, dim=d, init=init)
    params = dict(model.named_parameters())
    Dv, Dt = model.config.visual_dim, model.config.text_dim
    for name, bound in _bounds(model, N, R, d, Dv, Dt).items():
        largest = params[name].detach().abs().max().item()
        if init == "reference":
            assert largest <= bound + 1e-7, name
            assert largest > 0.8 * bound, name           # uniform over the whole range, not smaller
        elif name in ("entity_encoder.structure", "decoder.core"):
            assert largest > 2 * bound, name             # ours: (N, d) Xavier and uniform(-1, 1)
    if init == "reference":
        # the mask token's bound is the (1, d) one, about 1.41x the (1, 1, d) vectors'
        assert params["triple_encoder.mask_token"].abs().max() > 1.2 * _bounds(model, N, R, d, Dv, Dt)["entity_encoder.bias_str"]
        # What the scheme changes in practice: DB15K-size tables start far smaller than (N, d) Xavier.
        assert _bounds(model, 12842, 279, 256, Dv, Dt)["entity_encoder.structure"] < (6 / (12842 + 256)) ** 0.5 / 15


def _loss_and_grads(model, seed=5):
    torch.manual_seed(seed)
    known, relation, head, target = batch(model)
    loss = model.train().losses(known, relation, head, target, mu=0.1, contrastive_size=4,
                                generator=torch.Generator().manual_seed(0)).total
    model.zero_grad()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1, 3, 6])
def test_chunked_encoder_equals_one_pass_without_dropout(chunk):
    zero = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0, input_dropout=0.0,
                core_dropout=0.0, hidden_dropout=0.0)
    loss_a, grads_a = _loss_and_grads(tiny_model(**zero))
    loss_b, grads_b = _loss_and_grads(tiny_model(**zero, encoder_chunk=chunk))
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_chunked_encoder_recomputes_the_same_dropout_masks(monkeypatch):
    """With dropout, checkpointed chunks must give exactly the loss and gradients of the same
    chunks kept in memory (the recomputation in backward replays each chunk's RNG state)."""
    import mygo.model as model_module
    loss_a, grads_a = _loss_and_grads(tiny_model(encoder_chunk=3))
    monkeypatch.setattr(model_module, "checkpoint", lambda fn, *args, **kwargs: fn(*args))
    loss_b, grads_b = _loss_and_grads(tiny_model(encoder_chunk=3))
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-5, atol=1e-7, msg=name)


def test_encoder_layer_equals_torchs_layer():
    """The batch-first self-attention gives torch's nn.TransformerEncoderLayer outputs and
    gradients in training mode (same parameters, same padding mask, dropout off)."""
    from mygo.fast.attention import BatchFirstEncoderLayer as EncoderLayer
    dropout = 0.0
    torch.manual_seed(0)
    ours = EncoderLayer(16, 2, 32, dropout=dropout, batch_first=True)
    theirs = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=dropout, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    theirs.dropout, theirs.dropout1, theirs.dropout2 = ours.dropout, ours.dropout1, ours.dropout2
    x = torch.randn(5, 7, 16)
    padded = torch.rand(5, 7) < 0.3
    padded[:, 0] = False                                 # every sequence keeps a real slot
    results = []
    for layer in (ours, theirs):
        layer.train()
        leaf = x.clone().requires_grad_()
        torch.manual_seed(1)
        out = layer(leaf, src_key_padding_mask=padded)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), leaf.grad, layer.self_attn.in_proj_weight.grad, layer.linear1.weight.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_encoder_layer_attention_dropout_is_applied():
    from mygo.fast.attention import BatchFirstEncoderLayer as EncoderLayer
    torch.manual_seed(0)
    layer = EncoderLayer(16, 2, 32, dropout=0.5, batch_first=True)
    layer.dropout, layer.dropout1, layer.dropout2 = (torch.nn.Identity(),) * 3   # leave attention's own dropout
    x = torch.randn(4, 6, 16)
    train_a, train_b = layer.train()(x), layer(x)
    plain = layer.eval()(x)
    assert not torch.allclose(train_a, train_b) and not torch.allclose(train_a, plain)
    layer.self_attn.dropout = 0.0
    torch.testing.assert_close(layer.train()(x), plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", ["fast", "kv-attention", "plain"])
@pytest.mark.parametrize("layers", [1, 2])
def test_ent_only_pass_equals_slicing_the_full_output(kernels, layers):
    """The all-entity pass computes only the [ENT] slot in the last layer: the same outputs and
    gradients as slicing the full pass (train mode without dropout, and eval mode)."""
    no_dropout = dict(emb_dropout=0.0, vis_dropout=0.0, txt_dropout=0.0, attn_dropout=0.0)
    for mode in ("train", "eval"):
        results = []
        for ent_only in (True, False):
            model = tiny_model(kernels=kernels, num_layer_enc=layers, **no_dropout)
            getattr(model, mode)()
            entities = torch.tensor([0, 3, 5, 6])
            out, mask = model.entity_encoder(entities, ent_only=ent_only)
            ent = out[:, 0]
            (ent * torch.linspace(-1, 1, ent.numel()).view_as(ent)).sum().backward()
            results.append([ent.detach()] + [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                                             for p in model.parameters()])
            if ent_only:
                assert out.shape == (4, 1, model.config.dim)
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_entity_embeddings_use_the_ent_only_pass(monkeypatch):
    model = tiny_model()
    seen = []
    original = type(model.entity_encoder).forward

    def spy(self, entities=None, ent_only=False):
        seen.append(ent_only)
        return original(self, entities, ent_only)

    monkeypatch.setattr(type(model.entity_encoder), "forward", spy)
    model.entity_embeddings()
    assert seen == [True]


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_folded_slot0_attention_equals_keys_and_values(heads, mode):
    """The [ENT] attention with the query folded into the key and value projections computes
    torch's keys-and-values attention: outputs and every gradient (the key bias's is zero in both,
    up to rounding), with padded keys, in float64; attention dropout off (its masks differ)."""
    from mygo.model import slot0_attention_folded
    from mygo.model import slot0_attention
    torch.manual_seed(heads)
    layer = torch.nn.TransformerEncoderLayer(16, heads, 32, dropout=0.0, batch_first=True).double()
    with torch.no_grad():
        layer.self_attn.in_proj_bias.normal_()                 # torch zero-inits it: give it weight
    getattr(layer, mode)()
    padded = torch.rand(9, 6) < 0.4
    padded[:, 0] = False                                        # [ENT] is never padded
    padded[3, 1:] = True                                        # an entity with no tokens at all
    results = []
    for attention in (slot0_attention, slot0_attention_folded):
        x = torch.randn(9, 6, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                        requires_grad=True)
        layer.zero_grad()
        out = attention(layer, x, padded)
        assert out.shape == (9, 16)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append([out.detach(), x.grad, layer.self_attn.in_proj_weight.grad, layer.self_attn.in_proj_bias.grad])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_folded_slot0_attention_applies_attention_dropout():
    """With attention dropout the folded attention draws masks (training outputs vary and differ
    from eval), keeps the expectation (the mean of many draws nears the eval output), and without
    it equals eval."""
    from mygo.model import slot0_attention_folded
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.3, batch_first=True)
    with torch.no_grad():
        layer.self_attn.in_proj_bias.normal_()
    x, padded = torch.randn(5, 6, 16), torch.zeros(5, 6, dtype=torch.bool)
    with torch.no_grad():
        plain = slot0_attention_folded(layer.eval(), x, padded)
        draws = torch.stack([slot0_attention_folded(layer.train(), x, padded) for _ in range(4000)])
    assert not torch.allclose(draws[0], draws[1]) and not torch.allclose(draws[0], plain)
    torch.testing.assert_close(draws.mean(0), plain, rtol=0.0, atol=0.05)
    layer.self_attn.dropout = 0.0
    with torch.no_grad():
        torch.testing.assert_close(slot0_attention_folded(layer.train(), x, padded), plain)
