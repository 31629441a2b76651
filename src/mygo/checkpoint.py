"""The checkpoint format and the data fingerprint a checkpoint carries.

A checkpoint is a dict saved with torch.save that loads with weights_only=True:

    config       the model's ModelConfig as a dict (hyperparameters and the data's shapes)
    model        its state dict (frozen token tables included: the file alone rebuilds the model)
    model_name   the model's name in mygo.models.MODELS; absent for MyGO (every earlier checkpoint)
    data         {entities, relations, sha256}: what it was trained on (data_fingerprint)
    ...          anything the writer adds (the train stage: train_config, best_epoch)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from mygo.folders import KGFolder
from mygo.io import first_line, load_torch, save_torch
from mygo.model import ModelConfig, Ops, project_table_rows, slot0_attention_folded
from mygo.models import DEFAULT, MODELS, name_of


def save_checkpoint(path: str | Path, model: torch.nn.Module, extra: dict | None = None) -> None:
    name = name_of(model)
    save_torch(path, {"config": dataclasses.asdict(model.config), "model": model.state_dict(),
                      **({"model_name": name} if name != DEFAULT else {}), **(extra or {})})


def inference_ops() -> Ops:
    """What evaluate and predict build models from: torch's own operations, with the [ENT]
    attention folded (mygo.model.slot0_attention_folded) and the token tables projected before
    gathering (mygo.model.project_table_rows), the same functions training's fast kernels
    compute (in eval mode, where no dropout acts), in both CPU modes."""
    return Ops(ent_attention=slot0_attention_folded, tokens=project_table_rows)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    ops: Ops | None = None) -> tuple[torch.nn.Module, dict]:
    """The model a checkpoint holds (built from `ops`, by default `inference_ops()`) and the
    checkpoint dict."""
    path = Path(path)
    remedy = "re-run the train stage (`dvc repro train`) or point to another checkpoint"
    checkpoint = load_torch(path, "a model checkpoint", remedy, map_location=device)
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
        raise ValueError(f"{path}: not a model checkpoint (needs 'config' and 'model'); {remedy}")
    name = checkpoint.get("model_name", DEFAULT)
    if name not in MODELS:
        raise ValueError(f"{path}: holds a model named {name!r}, which this version does not have "
                         f"(it has {', '.join(MODELS)}); {remedy}")
    try:
        model = MODELS[name].empty(ModelConfig(**checkpoint["config"]), inference_ops() if ops is None else ops)
        model.load_state_dict(checkpoint["model"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: checkpoint does not match this version's {name} model "
                         f"({first_line(err)}); {remedy}") from None
    return model.to(device), checkpoint


def data_fingerprint(kg_dir: str | Path) -> dict:
    """What a model was trained on: entity and relation counts and a hash of their names in id
    order. evaluate and predict refuse a model whose fingerprint differs from the graph's."""
    kg = KGFolder(kg_dir)
    entities, relations = kg.entity_names(), kg.relation_names()
    digest = hashlib.sha256(json.dumps([entities, relations]).encode()).hexdigest()
    return {"entities": len(entities), "relations": len(relations), "sha256": digest}


def check_fingerprint(checkpoint: dict, model_path: str | Path, kg_dir: str | Path) -> None:
    """A ValueError naming both files unless the checkpoint was trained on the graph in `kg_dir`."""
    graph = data_fingerprint(kg_dir)
    trained = checkpoint.get("data")
    if trained is None:
        config = checkpoint["config"]
        trained = {"entities": config["num_entities"], "relations": config["num_relations"], "sha256": None}
    same_counts = (trained["entities"], trained["relations"]) == (graph["entities"], graph["relations"])
    if not same_counts or (trained["sha256"] is not None and trained["sha256"] != graph["sha256"]):
        raise ValueError(f"{model_path} was trained on a graph of {trained['entities']} entities / "
                         f"{trained['relations']} relations (names hash {str(trained['sha256'])[:12]}), but "
                         f"{kg_dir} has {graph['entities']} / {graph['relations']} (hash {graph['sha256'][:12]}); "
                         f"train on this graph (`dvc repro`) or point to the matching model")


__all__ = ["save_checkpoint", "load_checkpoint", "inference_ops", "data_fingerprint", "check_fingerprint"]
