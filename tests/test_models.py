"""Models by name: the TuckER baseline through the same stages as MyGO, and what checkpoints record."""
import json

import pytest
import torch
import yaml

from conftest import ROOT, run_stage
from helpers import tiny_model
from mygo.baselines import TuckERBaseline
from mygo.checkpoint import load_checkpoint, save_checkpoint
from mygo.model import ModelConfig


def test_tucker_baseline_trains_and_evaluates_through_the_stages(demo_processed, tmp_path):
    params = yaml.safe_load((demo_processed / "params.yaml").read_text())
    params["train"]["model"]["name"] = "tucker"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage(ROOT / "stages/train.py", demo_processed / "kg", demo_processed / "tokens", tmp_path / "model.pt",
              "--live", tmp_path / "live", "--params", tmp_path / "params.yaml")
    assert json.loads((tmp_path / "live/metrics.json").read_text())["best_epoch"] > 0
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["model_name"] == "tucker" and set(checkpoint["model"]) == {
        "entity", "relation", "decoder.core", *(f"decoder.bn{i}.{k}" for i in (0, 1) for k in
                                                ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))}
    result = run_stage(ROOT / "stages/evaluate.py", demo_processed / "kg", tmp_path / "model.pt",
                       tmp_path / "eval.json", tmp_path / "per_relation.json", "--params", tmp_path / "params.yaml")
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert 0.0 < metrics["mrr"] <= 1.0 and metrics["count"] > 0 and "test: MRR" in result.stderr


def test_baseline_learns_and_predicts_heads_through_reciprocal_relations():
    torch.manual_seed(0)
    config = ModelConfig(num_entities=6, num_relations=2, dim=8, num_head=2, input_dropout=0.0, core_dropout=0.0,
                         hidden_dropout=0.0)
    model = TuckERBaseline(config)
    known, relation = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 1])
    head = torch.tensor([False, True, False, True])
    target = torch.tensor([4, 5, 5, 4])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        losses = model.train().losses(known, relation, head, target, mu=0.5, label_smoothing=0.0)
        assert losses.contrastive.item() == 0.0                  # no contrastive term for the baseline
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
    with torch.no_grad():
        assert model.eval()(known, relation, head).argmax(1).tolist() == target.tolist()
        # the same (entity, relation) asked for a tail and for a head scores differently
        assert not torch.equal(model(known[:1], relation[:1], torch.tensor([False])),
                               model(known[:1], relation[:1], torch.tensor([True])))


def test_checkpoints_name_their_model_and_mygo_keeps_the_earlier_format(tmp_path):
    save_checkpoint(tmp_path / "mygo.pt", tiny_model())
    assert "model_name" not in torch.load(tmp_path / "mygo.pt", weights_only=True)    # MyGO: as every earlier one
    model, _ = load_checkpoint(tmp_path / "mygo.pt")
    assert type(model).__name__ == "MyGO"
    checkpoint = torch.load(tmp_path / "mygo.pt", weights_only=True)
    checkpoint["model_name"] = "transe"
    torch.save(checkpoint, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: holds a model named 'transe', which this version does not have "
                                         r"\(it has mygo, tucker\)"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_model_name_is_a_param_error(tmp_path):
    from mygo.params import parse_params
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["model"]["name"] = "transe"
    with pytest.raises(ValueError, match=r"train.model.name = 'transe'"):
        parse_params(raw)
