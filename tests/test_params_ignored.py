"""No silent params: a param that the chosen tokenizer, model or loss does not use is named at the
stage's start, changing it changes nothing, and provenance records only what was used."""
import dataclasses
import logging

import pyarrow as pa
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_stage, write_params
from helpers import batch, tiny_model, tiny_tokens
from mygo import tables
from mygo.models import build_model
from mygo.params import (ModelParams, Params, SelectTokensParams, TokenizeImagesParams, TrainParams, log_ignored,
                         unused)
from mygo.vision import build_tokenizer, tokenize_images

TUCKER_IGNORES = ["train.model.hidden_dim", "train.model.num_head", "train.model.num_layer_enc",
                  "train.model.num_layer_dec", "train.model.emb_dropout", "train.model.vis_dropout",
                  "train.model.txt_dropout", "train.model.attn_dropout", "train.model.use_structure",
                  "train.model.use_visual", "train.model.use_text", "train.model.encoder_chunk"]


@pytest.mark.parametrize("section, expected", [
    (TokenizeImagesParams(image_tokenizer="palette"),
     {"tokenize_images.image_tokenizer = 'palette'": ["tokenize_images.image_checkpoint", "tokenize_images.image_config",
                                                      "tokenize_images.image_size", "tokenize_images.random_preset",
                                                      "tokenize_images.seed"]}),
    (TokenizeImagesParams(image_tokenizer="vqgan", random_preset="small"),
     {"no tokenize_images.image_checkpoint": ["tokenize_images.image_config", "tokenize_images.image_size"]}),
    (TokenizeImagesParams(image_tokenizer="vqgan", random_preset="full"),
     {"no tokenize_images.image_checkpoint": ["tokenize_images.image_config"]}),
    (TokenizeImagesParams(image_tokenizer="vqgan", image_checkpoint="v.ckpt", image_config="v.yaml"),
     {"tokenize_images.image_checkpoint set": ["tokenize_images.random_preset", "tokenize_images.seed"]}),
    (TokenizeImagesParams(image_tokenizer="beit", image_checkpoint="vqkd.pth"),
     {"tokenize_images.image_checkpoint set": ["tokenize_images.random_preset", "tokenize_images.seed"],
      "tokenize_images.image_tokenizer = 'beit'": ["tokenize_images.image_config", "tokenize_images.image_size"]}),
    (TrainParams(), {}),
    (TrainParams(mu=0.0), {"train.mu = 0.0": ["train.tau", "train.contrastive_size"]}),
    (TrainParams(model=ModelParams(name="tucker")),
     {"train.model.name = 'tucker'": ["train.mu", "train.tau", "train.contrastive_size", "train.memory_budget_gb",
                                      *TUCKER_IGNORES]}),
    (TrainParams(model=ModelParams(use_visual=False, encoder_chunk=64)),
     {"train.model.encoder_chunk = 64": ["train.memory_budget_gb", "train.reuse_memory"],
      "train.model.use_visual = False": ["train.model.vis_dropout"]}),
    (SelectTokensParams(), {"no select_tokens.visual_json": ["select_tokens.visual_pad_row"],
                            "no select_tokens.text_json": ["select_tokens.text_pad_row"]}),
    (Params().download_images, {}),
    (dataclasses.replace(Params().download_images, retries=0),
     {"download_images.retries = 0": ["download_images.backoff", "download_images.max_retry_after"]}),
], ids=lambda v: "" if isinstance(v, dict) else None)
def test_every_unused_param_is_named_with_its_reason(section, expected):
    assert unused(section) == expected


def test_a_changed_ignored_param_is_a_warning_with_its_value(caplog):
    with caplog.at_level(logging.INFO, logger="t"):
        log_ignored(TokenizeImagesParams(image_tokenizer="palette"), logging.getLogger("t"))
        log_ignored(TokenizeImagesParams(image_tokenizer="palette", seed=3, image_size=128), logging.getLogger("t"))
    first, second = caplog.records
    assert first.levelno == logging.INFO and "tokenize_images.image_checkpoint" in first.message
    assert second.levelno == logging.WARNING
    assert second.message == ("ignored with tokenize_images.image_tokenizer = 'palette': tokenize_images.image_size "
                              "= 128, tokenize_images.seed = 3 (they change nothing here)")


# ---- what is named as ignored changes nothing -----------------------------------------------------

@pytest.mark.parametrize("base, changes", [
    ({"image_tokenizer": "palette"},
     {"image_checkpoint": "/nowhere/x.ckpt", "image_config": "/nowhere/x.yaml", "image_size": 128,
      "random_preset": "full", "seed": 5}),
    ({"image_tokenizer": "vqgan", "random_preset": "small"}, {"image_config": "/nowhere/x.yaml", "image_size": 512}),
    ({"image_tokenizer": "beit", "random_preset": "small"}, {"image_config": "/nowhere/x.yaml", "image_size": 512}),
])
def test_an_ignored_tokenizer_param_changes_no_token(tmp_path, base, changes):
    paths = []
    for i, colour in enumerate([(250, 5, 5), (5, 250, 5), (20, 20, 200)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (70, 50), colour).save(paths[-1])
    config = TokenizeImagesParams(**base)
    assert set(changes) == {name.split(".")[-1] for names in unused(config).values() for name in names}

    def ids(config):
        tokenizer, size = build_tokenizer(config, quiet=True)
        return tokenize_images(tokenizer, paths, size, 2, torch.device("cpu"), progress=False), tokenizer.codebook()

    reference = ids(config)
    for name, value in changes.items():
        other = ids(dataclasses.replace(config, **{name: value}))
        assert other[0] == reference[0] and torch.equal(other[1], reference[1]), name
        assert dataclasses.replace(config, **{name: value}).provenance() == config.provenance()


def test_the_tucker_baseline_uses_none_of_the_transformer_params():
    base = dataclasses.asdict(ModelParams(name="tucker", dim=8))
    reference = build_model(base, 7, 3, tiny_tokens(), seed=1)
    changed = {"hidden_dim": 16, "num_head": 4, "num_layer_enc": 2, "num_layer_dec": 3, "emb_dropout": 0.5,
               "vis_dropout": 0.5, "txt_dropout": 0.5, "attn_dropout": 0.5, "use_structure": False,
               "use_visual": False, "use_text": False, "encoder_chunk": 3}
    assert {f"train.model.{name}" for name in changed} == set(TUCKER_IGNORES)
    other = build_model({**base, **changed}, 7, 3, tiny_tokens(), seed=1)
    assert reference.state_dict().keys() == other.state_dict().keys()
    assert all(torch.equal(value, other.state_dict()[key]) for key, value in reference.state_dict().items())
    known, relation, head, target = batch(reference)
    values = []
    for model in (reference, other):
        torch.manual_seed(3)
        values.append(model.train().losses(known, relation, head, target, mu=0.5, tau=0.1, contrastive_size=4).kgc)
    assert torch.equal(*values)


@pytest.mark.parametrize("overrides, ignored", [
    ({"use_visual": False}, {"vis_dropout": 0.7}),
    ({"use_text": False}, {"txt_dropout": 0.7}),
])
def test_a_modality_switched_off_ignores_its_dropout(overrides, ignored):
    known, relation, head, target = batch(tiny_model())
    values = []
    for extra in ({}, ignored):
        model = tiny_model(**overrides, **extra).train()
        torch.manual_seed(3)
        values.append(model.losses(known, relation, head, target).kgc)
    assert torch.equal(*values)


def test_no_contrastive_loss_ignores_its_temperature_and_sample():
    model = tiny_model().train()
    known, relation, head, target = batch(model)
    values = []
    for tau, size in ((0.5, 4), (0.05, 6)):
        torch.manual_seed(3)
        losses = model.losses(known, relation, head, target, mu=0.0, tau=tau, contrastive_size=size)
        values.append(losses.total)
    assert torch.equal(*values)


def test_the_stage_names_what_it_ignores_and_records_only_what_it_used(tmp_path):
    """tokenize_images with the palette and a stray checkpoint: one warning line at the start, and
    the codebook's provenance holds the tokenizer only."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "images/a.png")
    tables.write_image_manifest(tmp_path / "manifest.parquet", pa.table({
        "entity": pa.array([0], pa.int32()), "url": ["http://127.0.0.1/a.png"], "status": ["ok"],
        "http_code": pa.array([200], pa.int32()), "attempts": pa.array([1], pa.int32()),
        "bytes": pa.array([10], pa.int64()), "sha256": ["x"], "path": ["a.png"], "error": [None]}))
    params = write_params(tmp_path / "params.yaml", {"tokenize_images": {"image_tokenizer": "palette",
                                                                          "image_checkpoint": "beit.pth"}})
    result = run_stage(ROOT / "stages/tokenize_images.py", tmp_path / "manifest.parquet", tmp_path / "images",
                       tmp_path / "out", "--params", params)
    lines = [line for line in result.stderr.splitlines() if "ignored with" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], result.stderr
    assert "tokenize_images.image_checkpoint = 'beit.pth'" in lines[0]
    saved = torch.load(tmp_path / "out/codebook.pt", weights_only=True)
    assert saved["source"] == {"image_tokenizer": "palette"}


def test_validate_params_names_every_stages_unused_params_before_any_runs(tmp_path):
    import subprocess
    import sys
    params = write_params(tmp_path / "params.yaml", {"train": {"model": {"name": "tucker", "hidden_dim": 99}}})
    result = subprocess.run([sys.executable, "-m", "mygo", "validate-params", "--params", str(params)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "ignored with" in line]
    assert any("WARNING" in line and "train.model.name = 'tucker': train.model.hidden_dim = 99" in line
               for line in lines), result.stderr
    assert any("tokenize_images.image_tokenizer = 'palette'" in line for line in lines), result.stderr
