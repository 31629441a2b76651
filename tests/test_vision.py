import pytest
import torch
from PIL import Image

from mygo.params import TokenizeImagesParams
from mygo.vision import (BEiTv2Tokenizer, PaletteTokenizer, VQGANTokenizer,
                         build_tokenizer, tokenize_images)

TINY_DD = {"double_z": False, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
           "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0}
TINY_BEIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 image_size=32, patch_size=16, codebook_size=64, codebook_dim=8)


def images(n=5, size=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g)


def tiny_vqgan():
    torch.manual_seed(0)
    return VQGANTokenizer(TINY_DD, 16, 8).eval()


def tiny_beit():
    torch.manual_seed(0)
    return BEiTv2Tokenizer(**TINY_BEIT).eval()


@pytest.mark.parametrize("make, codes, grid", [(tiny_vqgan, 16, 256), (tiny_beit, 64, 4)])
def test_ids_in_codebook_deterministic_and_batch_independent(make, codes, grid):
    tokenizer = make()
    x = images() * 2 - 1 if isinstance(tokenizer, VQGANTokenizer) else images()
    ids = tokenizer(x)
    assert ids.shape == (5, grid)
    assert ids.min() >= 0 and ids.max() < codes
    assert torch.equal(ids, tokenizer(x))
    one_by_one = torch.cat([tokenizer(x[i:i + 1]) for i in range(5)])
    assert torch.equal(ids, one_by_one)
    assert tokenizer.codebook().shape[0] == codes


def taming_lightning_checkpoint(tokenizer: VQGANTokenizer) -> dict:
    """The layout of a taming-transformers VQModel Lightning checkpoint."""
    state = dict(tokenizer.vqvae.state_dict())
    state["decoder.conv_in.weight"] = torch.zeros(32, 8, 3, 3)
    state["decoder.conv_out.weight"] = torch.zeros(3, 32, 3, 3)
    state["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    state["loss.logvar"] = torch.zeros(())
    return {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.0.8", "state_dict": state,
            "optimizer_states": [], "lr_schedulers": []}


def test_vqgan_loads_taming_checkpoint_strictly(tmp_path):
    source = tiny_vqgan()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    torch.save(taming_lightning_checkpoint(source), tmp_path / "last.ckpt")
    target = VQGANTokenizer(TINY_DD, 16, 8)
    target.load_taming_checkpoint(tmp_path / "last.ckpt")
    x = images() * 2 - 1
    assert torch.equal(target(x), source(x))


def test_vqgan_mismatched_and_corrupt_checkpoints(tmp_path):
    checkpoint = taming_lightning_checkpoint(tiny_vqgan())
    del checkpoint["state_dict"]["encoder.conv_in.weight"]
    checkpoint["state_dict"]["encoder.extra.weight"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"missing \['encoder.conv_in.weight'\].*unexpected \['encoder.extra.weight'\]"):
        tiny_vqgan().load_taming_checkpoint(tmp_path / "bad.ckpt")
    wide = VQGANTokenizer(TINY_DD, 32, 8)                          # 32 codes, checkpoint has 16
    torch.save(taming_lightning_checkpoint(tiny_vqgan()), tmp_path / "ok.ckpt")
    with pytest.raises(ValueError, match="quantize.embedding.weight has shape"):
        wide.load_taming_checkpoint(tmp_path / "ok.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="corrupt.ckpt: cannot read the checkpoint"):
        tiny_vqgan().load_taming_checkpoint(tmp_path / "corrupt.ckpt")


def vqkd_checkpoint(seed=1) -> dict:
    """A checkpoint in the layout of the official BEiT-v2 VQ-KD release (microsoft/unilm beit2)."""
    g = torch.Generator().manual_seed(seed)
    D, F, P, L = 32, 64, 4, 2
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2
    state = {"encoder.cls_token": r(1, 1, D), "encoder.pos_embed": r(1, P + 1, D),
             "encoder.patch_embed.proj.weight": r(D, 3, 16, 16), "encoder.patch_embed.proj.bias": r(D),
             "encoder.norm.weight": 1 + r(D), "encoder.norm.bias": r(D)}
    for i in range(L):
        b = f"encoder.blocks.{i}."
        state.update({b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D), b + "attn.qkv.weight": r(3 * D, D),
                      b + "attn.q_bias": r(D), b + "attn.v_bias": r(D), b + "attn.proj.weight": r(D, D),
                      b + "attn.proj.bias": r(D), b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
                      b + "mlp.fc1.weight": r(F, D), b + "mlp.fc1.bias": r(F), b + "mlp.fc2.weight": r(D, F),
                      b + "mlp.fc2.bias": r(D)})
    state.update({"encode_task_layer.0.weight": r(D, D), "encode_task_layer.0.bias": r(D),
                  "encode_task_layer.2.weight": r(8, D), "encode_task_layer.2.bias": r(8),
                  "quantize.embedding.weight": torch.nn.functional.normalize(r(64, 8), dim=-1),
                  "quantize.embedding.cluster_size": torch.ones(64), "quantize.embedding.embed_avg": r(64, 8),
                  "quantize.embedding.initted": torch.tensor(True), "quantize.cluster_size": torch.ones(64),
                  "decoder.blocks.0.attn.qkv.weight": r(3 * D, D), "decode_task_layer.0.weight": r(D, D)})
    return {"model": state}


def test_beit_loads_vqkd_checkpoint_strictly_with_the_documented_mapping(tmp_path):
    checkpoint = vqkd_checkpoint()
    torch.save(checkpoint, tmp_path / "vqkd.pth")
    tokenizer = tiny_beit()
    tokenizer.load_vqkd_checkpoint(tmp_path / "vqkd.pth")
    state, official = tokenizer.state_dict(), checkpoint["model"]
    qkv = official["encoder.blocks.1.attn.qkv.weight"]
    assert torch.equal(state["encoder.layers.1.attention.q_proj.weight"], qkv[:32])
    assert torch.equal(state["encoder.layers.1.attention.k_proj.weight"], qkv[32:64])
    assert torch.equal(state["encoder.layers.1.attention.v_proj.weight"], qkv[64:])
    assert torch.equal(state["encoder.layers.1.attention.v_proj.bias"], official["encoder.blocks.1.attn.v_bias"])
    assert torch.equal(state["encoder.layernorm.weight"], official["encoder.norm.weight"])
    assert torch.equal(state["embedding"], official["quantize.embedding.weight"])
    ids = tokenizer(images())
    assert ids.shape == (5, 4) and ids.max() < 64


def test_beit_rejects_a_mismatched_checkpoint(tmp_path):
    checkpoint = vqkd_checkpoint()
    checkpoint["model"]["encoder.blocks.1.gamma_1"] = torch.ones(32)
    torch.save(checkpoint, tmp_path / "vqkd.pth")
    with pytest.raises(ValueError, match="unexpected"):
        tiny_beit().load_vqkd_checkpoint(tmp_path / "vqkd.pth")


def test_palette_tokens_carry_colour():
    tokenizer = PaletteTokenizer()
    red = tokenizer.preprocess(Image.new("RGB", (50, 40), (250, 5, 5)), 64)
    blue = tokenizer.preprocess(Image.new("RGB", (50, 40), (5, 5, 250)), 64)
    ids = tokenizer(torch.stack([red, blue]))
    assert ids.shape == (2, 64)                                   # 8 px patches of a 64 px image
    assert len(set(ids[0].tolist())) == 1 and ids[0, 0] != ids[1, 0]
    assert torch.allclose(tokenizer.colours[ids[0, 0]], torch.tensor([1.0, 0.0, 0.0]))
    codebook = tokenizer.codebook()                              # one independent code per colour
    assert codebook.shape == (64, 64) and torch.equal(codebook, torch.eye(64))


def test_random_weights_warn_loudly(caplog, tmp_path):
    config = TokenizeImagesParams(image_tokenizer="vqgan", random_preset="small")
    tokenizer, size = build_tokenizer(config)
    assert "RANDOM weights" in caplog.text and size == 64
    Image.new("RGB", (70, 50), (10, 200, 10)).save(tmp_path / "a.png")
    ids = tokenize_images(tokenizer, [tmp_path / "a.png"] * 3, size, 2, torch.device("cpu"), progress=False)
    assert len(ids) == 3 and len(ids[0]) == 16 and ids[0] == ids[2]


def test_unknown_tokenizer_is_an_error():
    with pytest.raises(ValueError, match="image_tokenizer = .clip.: must be one of"):
        TokenizeImagesParams(image_tokenizer="clip")
