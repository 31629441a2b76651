"""Visual tokenizers (paper section 4.1): an image -> a grid of codebook ids.

* VQGAN (taming-transformers `VQModel`): built on `transformers`' ChameleonVQVAE, whose encoder,
  `quant_conv` and quantizer have taming's architecture and parameter names, so a taming
  Lightning checkpoint's `state_dict` loads into it without pytorch-lightning.
* BEiT-v2 VQ-KD: a ViT-B/16 encoder (`transformers`' BeitModel), the task head
  `Linear -> Tanh -> Linear` to 32 dims, and an L2-normalised 8192 x 32 codebook; the code is the
  nearest by cosine. 224 px -> 14 x 14 = 196 ids.

Without a checkpoint both are built with seeded random weights: the ids are then not semantic.
Measured on the demo, random-weight VQGAN ids do not even separate colours (the first
GroupNorm removes a patch's mean colour), so the demo uses a third, transparent tokenizer:

* palette: each patch's mean colour -> the nearest colour of a fixed RGB grid (levels^3 codes).
  Not learned and not from the paper; it carries colour and nothing else.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import nn

from mygo.params import TokenizeImagesParams

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _load_state_dict(path: str | Path) -> dict:
    """A checkpoint's tensors without unpickling arbitrary objects (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read the checkpoint safely (weights_only=True): {err}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (or one under 'state_dict' / 'model')")
    return obj


def _load_strict(module: nn.Module, state: dict, path, ignore: tuple[str, ...]) -> None:
    kept = {k: v for k, v in state.items() if not k.startswith(ignore)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match the {type(module).__name__} architecture: "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    wrong = [k for k in kept if kept[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise ValueError(f"{path}: {k} has shape {tuple(kept[k].shape)}, the architecture expects "
                         f"{tuple(expected[k].shape)}")
    module.load_state_dict(kept, strict=True)


# --------------------------------------------------------------------------- VQGAN

def vqgan_config(ddconfig: dict, n_embed: int, embed_dim: int):
    """ChameleonVQVAEConfig from taming's `ddconfig`, `n_embed`, `embed_dim`."""
    from transformers import ChameleonVQVAEConfig
    return ChameleonVQVAEConfig(
        embed_dim=embed_dim, num_embeddings=n_embed, double_latent=bool(ddconfig.get("double_z", False)),
        latent_channels=ddconfig["z_channels"], resolution=ddconfig["resolution"],
        in_channels=ddconfig["in_channels"], base_channels=ddconfig["ch"],
        channel_multiplier=list(ddconfig["ch_mult"]), num_res_blocks=ddconfig["num_res_blocks"],
        attn_resolutions=list(ddconfig["attn_resolutions"]), dropout=ddconfig.get("dropout", 0.0))


VQGAN_PRESETS = {
    # taming's f16 ImageNet models (1024 or 16384 codes)
    "full": ({"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
              "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
              "dropout": 0.0}, 1024, 256),
    # the same design, f16, narrow: fast enough for the demo on a CPU
    "small": ({"double_z": False, "z_channels": 32, "resolution": 64, "in_channels": 3, "out_ch": 3,
               "ch": 32, "ch_mult": [1, 1, 2, 2, 2], "num_res_blocks": 1, "attn_resolutions": [],
               "dropout": 0.0}, 1024, 32),
}


def read_taming_yaml(path: str | Path) -> tuple[dict, int, int]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
        params = config["model"]["params"]
        return params["ddconfig"], int(params["n_embed"]), int(params["embed_dim"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a taming VQModel config (model.params.ddconfig / n_embed / "
                         f"embed_dim): {err!r}") from None


class VQGANTokenizer(nn.Module):
    """Image (B, 3, H, W) in [-1, 1] -> ids (B, H/f * W/f)."""

    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int):
        super().__init__()
        from transformers.models.chameleon.modeling_chameleon import ChameleonVQVAE
        self.vqvae = ChameleonVQVAE(vqgan_config(ddconfig, n_embed, embed_dim)).eval()
        self.resolution = ddconfig["resolution"]

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # oneDNN picks convolution algorithms by batch size, which moves features by ~1e-7 and can
        # flip a near-tied code; PyTorch's native CPU convolution gives the same ids whatever
        # the batch size.
        with torch.backends.mkldnn.flags(enabled=pixels.device.type != "cpu"):
            hidden = self.vqvae.quant_conv(self.vqvae.encoder(pixels))      # (B, C, h, w)
        B, C, h, w = hidden.shape
        flat = hidden.permute(0, 2, 3, 1).reshape(-1, C)                    # (B*h*w, C)
        codebook = self.vqvae.quantize.embedding.weight                     # (K, C)
        distances = (flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1)
                     - 2 * flat @ codebook.t())
        return distances.argmin(1).view(B, h * w)

    def codebook(self) -> torch.Tensor:
        return self.vqvae.quantize.embedding.weight.detach().clone()

    def load_taming_checkpoint(self, path: str | Path) -> None:
        """Load a taming `VQModel` checkpoint (Lightning `.ckpt` or bare state dict), strictly:
        the decoder and the training loss are not used and are skipped."""
        _load_strict(self.vqvae, _load_state_dict(path), path, ignore=("decoder.", "loss."))

    def preprocess(self, image: Image.Image, size: int) -> torch.Tensor:
        """Resize the shorter side to `size`, centre-crop, scale to [-1, 1]: (3, size, size)."""
        return _resize_crop(image, size) * 2.0 - 1.0


# --------------------------------------------------------------------------- BEiT-v2 VQ-KD

BEIT_PRESETS = {
    "full": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "image_size": 224, "patch_size": 16, "codebook_size": 8192, "codebook_dim": 32},
    "small": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
              "image_size": 64, "patch_size": 16, "codebook_size": 1024, "codebook_dim": 32},
}


class BEiTv2Tokenizer(nn.Module):
    """BEiT-v2 VQ-KD encoder side: image (B, 3, 224, 224) in [0, 1] -> ids (B, 196)."""

    def __init__(self, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 image_size=224, patch_size=16, codebook_size=8192, codebook_dim=32):
        super().__init__()
        from transformers import BeitConfig, BeitModel
        config = BeitConfig(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                            num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                            image_size=image_size, patch_size=patch_size, use_absolute_position_embeddings=True,
                            use_relative_position_bias=False, use_shared_relative_position_bias=False,
                            layer_scale_init_value=0.0, use_mean_pooling=False, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, drop_path_rate=0.0, layer_norm_eps=1e-6)
        self.encoder = BeitModel(config, add_pooling_layer=False).eval()
        self.task_layer = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh(),
                                        nn.Linear(hidden_size, codebook_dim))
        self.register_buffer("embedding", F.normalize(torch.randn(codebook_size, codebook_dim), dim=-1))
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean) / self.std                                  # VQ-KD's CLIP scaling layer
        patches = self.encoder(pixel_values=x).last_hidden_state[:, 1:]      # (B, P, D) after the final norm
        features = F.normalize(self.task_layer(patches), dim=-1)            # (B, P, 32)
        codebook = F.normalize(self.embedding, dim=-1)                      # (K, 32)
        return (features @ codebook.t()).argmax(-1)                          # (B, P) nearest by cosine

    def codebook(self) -> torch.Tensor:
        return F.normalize(self.embedding, dim=-1).detach().clone()

    def preprocess(self, image: Image.Image, size: int) -> torch.Tensor:
        return _resize_crop(image, self.image_size)

    def load_vqkd_checkpoint(self, path: str | Path) -> None:
        """Load the official VQ-KD checkpoint (microsoft/unilm beit2, `{'model': state_dict}`).

        Key mapping (official -> here), the decoder side being skipped:
          encoder.cls_token / pos_embed / patch_embed.proj.*  -> encoder.embeddings.cls_token /
              position_embeddings / patch_embeddings.projection.*
          encoder.blocks.{i}.norm1 / norm2                      -> encoder.layers.{i}.layernorm_before / _after
          encoder.blocks.{i}.attn.qkv.weight (3D x D)           -> q_proj / k_proj / v_proj .weight (split)
          encoder.blocks.{i}.attn.q_bias / v_bias               -> q_proj.bias / v_proj.bias (k has none)
          encoder.blocks.{i}.attn.proj                          -> encoder.layers.{i}.attention.o_proj
          encoder.blocks.{i}.mlp.fc1 / fc2                      -> encoder.layers.{i}.mlp.fc1 / fc2
          encoder.norm                                          -> encoder.layernorm
          encode_task_layer.0 / .2                              -> task_layer.0 / .2
          quantize.embedding.weight                             -> embedding
        """
        state = _load_state_dict(path)
        skip = ("decoder.", "decode_task_layer.", "scaling_layer.", "teacher_model.", "quantize.embedding.cluster_size",
                "quantize.embedding.embed_avg", "quantize.embedding.initted", "quantize.cluster_size",
                "encoder.head.", "logit_scale")
        mapped = {}
        for key, value in state.items():
            if key.startswith(skip):
                continue
            new = self._map_key(key, value, mapped)
            if new is not None:
                mapped[new] = value
        _load_strict(self, mapped, path, ignore=())

    @staticmethod
    def _map_key(key: str, value: torch.Tensor, out: dict) -> str | None:
        simple = {"encoder.cls_token": "encoder.embeddings.cls_token",
                  "encoder.pos_embed": "encoder.embeddings.position_embeddings",
                  "encoder.norm.weight": "encoder.layernorm.weight", "encoder.norm.bias": "encoder.layernorm.bias",
                  "quantize.embedding.weight": "embedding"}
        if key in simple:
            return simple[key]
        if key.startswith("encoder.patch_embed.proj."):
            return key.replace("encoder.patch_embed.proj.", "encoder.embeddings.patch_embeddings.projection.")
        if key.startswith("encode_task_layer."):
            return key.replace("encode_task_layer.", "task_layer.")
        match = re.fullmatch(r"encoder\.blocks\.(\d+)\.(.+)", key)
        if not match:
            return key                                   # reported as unexpected by the strict load
        i, rest = match.groups()
        prefix = f"encoder.layers.{i}."
        if rest == "attn.qkv.weight":
            q, k, v = value.chunk(3, dim=0)
            out[prefix + "attention.q_proj.weight"] = q
            out[prefix + "attention.k_proj.weight"] = k
            out[prefix + "attention.v_proj.weight"] = v
            return None
        names = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.q_bias": "attention.q_proj.bias",
                 "attn.v_bias": "attention.v_proj.bias", "attn.proj": "attention.o_proj", "mlp.fc1": "mlp.fc1",
                 "mlp.fc2": "mlp.fc2"}
        for old, new in names.items():
            if rest == old or rest.startswith(old + "."):
                return prefix + new + rest[len(old):]
        return key


# --------------------------------------------------------------------------- palette

class PaletteTokenizer(nn.Module):
    """Image (B, 3, S, S) in [0, 1] -> ids (B, (S/patch)^2): each patch's mean colour quantised to
    the nearest colour of a levels x levels x levels RGB grid (`colours`, levels^3 x 3).

    Its codebook (the frozen table the model reads) holds one-hot codes, one independent
    direction per palette colour, as a learned VQ codebook's codes are nearly orthogonal. RGB
    triples as 3-d codes make the tones of different colours nearly parallel once projected and
    layer-normed, and the demo's visual modality then taught the model nothing measurable
    (README, "What the demo shows")."""

    def __init__(self, levels: int = 4, patch_size: int = 8, image_size: int = 64):
        super().__init__()
        grid = torch.linspace(0.0, 1.0, levels)
        self.register_buffer("colours", torch.cartesian_prod(grid, grid, grid))      # (levels^3, 3)
        self.patch_size, self.image_size = patch_size, image_size

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        means = F.avg_pool2d(pixels, self.patch_size)                               # (B, 3, h, w)
        B = means.shape[0]
        flat = means.permute(0, 2, 3, 1).reshape(-1, 3)                           # (B*h*w, 3)
        return torch.cdist(flat, self.colours).argmin(1).view(B, -1)

    def codebook(self) -> torch.Tensor:
        return torch.eye(self.colours.shape[0])

    def preprocess(self, image: Image.Image, size: int) -> torch.Tensor:
        return _resize_crop(image, self.image_size)


# --------------------------------------------------------------------------- common

def _resize_crop(image: Image.Image, size: int) -> torch.Tensor:
    """Shorter side to `size` (bicubic), centre crop: (3, size, size) float in [0, 1]."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return data.permute(2, 0, 1).float() / 255.0


def build_tokenizer(config: TokenizeImagesParams, quiet: bool = False) -> tuple[nn.Module, int]:
    """The tokenizer named by `config` and its input size; random weights without a checkpoint
    (a warning says so, unless `quiet`: there is nothing to tokenize)."""
    torch.manual_seed(config.seed)
    if config.image_tokenizer == "vqgan":
        if config.image_checkpoint:
            if not config.image_config:
                raise ValueError("tokenize_images.image_config: a VQGAN checkpoint needs its taming YAML config")
            tokenizer = VQGANTokenizer(*read_taming_yaml(config.image_config))
            tokenizer.load_taming_checkpoint(config.image_checkpoint)
            size = config.image_size
        else:
            ddconfig, n_embed, embed_dim = VQGAN_PRESETS[config.random_preset]
            tokenizer = VQGANTokenizer(ddconfig, n_embed, embed_dim)
            size = ddconfig["resolution"] if config.random_preset == "small" else config.image_size
    elif config.image_tokenizer == "palette":
        return PaletteTokenizer().eval(), 64
    else:
        tokenizer = BEiTv2Tokenizer(**BEIT_PRESETS["full" if config.image_checkpoint else config.random_preset])
        if config.image_checkpoint:
            tokenizer.load_vqkd_checkpoint(config.image_checkpoint)
        size = tokenizer.image_size
    if not config.image_checkpoint and not quiet:
        log.warning("no image_checkpoint: the %s tokenizer has seeded RANDOM weights (preset %r); its visual "
                    "tokens are NOT semantic. Point tokenize_images.image_checkpoint at a real checkpoint.",
                    config.image_tokenizer, config.random_preset)
    return tokenizer.eval(), size


def tokenize_images(tokenizer: nn.Module, paths: list[Path], size: int, batch_size: int,
                    device: torch.device, progress: bool = True) -> list[list[int]]:
    """Token ids per image file, in order."""
    from mygo.progress import bar as progress_bar
    tokenizer.to(device)
    out: list[list[int]] = []
    for start in progress_bar(range(0, len(paths), batch_size), desc="tokenize_images", unit="batch", enabled=progress):
        batch = []
        for path in paths[start:start + batch_size]:
            with Image.open(path) as image:
                batch.append(tokenizer.preprocess(image, size))
        ids = tokenizer(torch.stack(batch).to(device))
        out.extend(ids.cpu().tolist())
    return out
