"""Models to compare MyGO with, behind the same interface (mygo.models.KGCModel).

TuckER (Balazevic et al., 2019), the structure-only baseline of the MyGO paper's tables: a learned
(N, d) entity table and a (2R, d) relation table (each relation and its reciprocal, used to
predict heads), scored by the same TuckER decoder MyGO uses (mygo.model.TuckER: its core tensor,
batch norms and three dropouts, train.model.input_dropout / core_dropout / hidden_dropout). No
images, no text, no contrastive loss: `dvc exp run -S train.model.name=tucker`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mygo.model import Losses, ModelConfig, Ops, TuckER


class TuckERBaseline(nn.Module):
    def __init__(self, config: ModelConfig, ops: Ops = Ops()):
        super().__init__()
        d = config.dim
        self.config, self.ops = config, ops
        self.entity = nn.Parameter(torch.empty(config.num_entities, d))
        self.relation = nn.Parameter(torch.empty(2 * config.num_relations, d))   # r, then r^-1
        self.decoder = TuckER(config, ops)
        for table in (self.entity, self.relation):
            nn.init.xavier_uniform_(table.view(-1, 1, d) if config.init == "reference" else table)
        if config.init == "reference":
            nn.init.xavier_uniform_(self.decoder.core)

    @classmethod
    def empty(cls, config: ModelConfig, ops: Ops = Ops()) -> "TuckERBaseline":
        return cls(config, ops)

    def entity_embeddings(self) -> torch.Tensor:
        return self.entity                                                     # (N, d)

    def score(self, entity_emb: torch.Tensor, known: torch.Tensor, relation: torch.Tensor,
              predict_head: torch.Tensor) -> torch.Tensor:
        """Scores (B, N); a head is predicted as the tail of the reciprocal relation."""
        r = self.relation[relation + self.config.num_relations * predict_head.long()]   # (B, d)
        return self.decoder(entity_emb[known], r, entity_emb)

    def forward(self, known: torch.Tensor, relation: torch.Tensor, predict_head: torch.Tensor) -> torch.Tensor:
        return self.score(self.entity_embeddings(), known, relation, predict_head)

    def losses(self, known: torch.Tensor, relation: torch.Tensor, predict_head: torch.Tensor, target: torch.Tensor,
               *, label_smoothing: float = 0.0, kgc_weight: float = 1.0, **_) -> Losses:
        """1-N cross-entropy over all entities (mu, tau and the contrastive settings do not apply)."""
        scores = self(known, relation, predict_head)
        kgc = kgc_weight * F.cross_entropy(scores.float(), target, label_smoothing=label_smoothing)
        return Losses(kgc, torch.zeros((), device=kgc.device))

    def compile_parts(self, **options) -> None:
        self.decoder.compile(**options)


__all__ = ["TuckERBaseline"]
