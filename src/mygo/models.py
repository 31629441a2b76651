"""The models training, evaluation and prediction work with, by name (`train.model.name`).

A model is an nn.Module with a `config` (mygo.model.ModelConfig) that offers:

    entity_embeddings() -> (N, d)                       all entities, for scoring
    score(entity_emb, known, relation, predict_head)    -> (B, N) scores of every entity
    forward(known, relation, predict_head)              -> (B, N), the same from scratch
    losses(known, relation, predict_head, target, *, mu, tau, contrastive_size, label_smoothing,
           generator, kgc_weight, con_weight) -> mygo.model.Losses
    empty(config, ops)  (classmethod)                   a model of the right shapes to load weights into

A new model adds its class to MODELS and its name to params.ModelParams.name's choices
(docs/extending.md).
"""
from __future__ import annotations

import torch

from mygo.baselines import TuckERBaseline
from mygo.model import ModelConfig, MyGO, Ops

MODELS = {"mygo": MyGO, "tucker": TuckERBaseline}
DEFAULT = "mygo"


def name_of(model: torch.nn.Module) -> str:
    return next(name for name, cls in MODELS.items() if type(model) is cls)


def build_model(model_params: dict, num_entities: int, num_relations: int, tokens, seed: int = 0,
                ops: Ops = Ops()) -> torch.nn.Module:
    """A freshly initialised model named by `model_params["name"]` (default mygo); `seed` fixes the
    initial weights (a new process's default seed is random). `tokens` (mygo.folders.EntityTokens)
    fixes the token shapes; models without tokens ignore them."""
    params = dict(model_params)
    name = params.pop("name", DEFAULT)
    if name not in MODELS:
        raise ValueError(f"train.model.name = {name!r}: expected one of {', '.join(MODELS)}")
    torch.manual_seed(seed)
    config = ModelConfig(num_entities=num_entities, num_relations=num_relations,
                         max_vis_token=tokens.visual_ids.shape[1], max_txt_token=tokens.text_ids.shape[1],
                         visual_rows=tokens.visual_table.shape[0], visual_dim=tokens.visual_table.shape[1],
                         text_rows=tokens.text_table.shape[0], text_dim=tokens.text_table.shape[1], **params)
    if name == "mygo":
        return MyGO(config, tokens.visual_table, tokens.visual_ids, tokens.visual_mask,
                    tokens.text_table, tokens.text_ids, tokens.text_mask, ops)
    return MODELS[name](config, ops)


__all__ = ["MODELS", "DEFAULT", "name_of", "build_model"]
