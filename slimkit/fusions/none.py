"""The plain backbone as a Recommender: no side information, dot product with item IDs."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.fusions.base import Recommender


class PlainRecommender(Recommender):
    """User = backbone(sequence); item = the backbone's item ID embedding."""

    def forward(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        return self.backbone(item_seq, lengths)  # (B, D)

    def item_matrix(self) -> torch.Tensor:
        return self.backbone.item_embedding.weight  # (N + 1, D)


def build_plain(
    backbone: nn.Module,
    *,
    num_users: int,
    num_items: int,
    item_vectors: torch.Tensor | None = None,
    rationale_vectors: torch.Tensor | None = None,
) -> PlainRecommender:
    """Fusion kind ``none``: side information, if any is passed, is ignored."""
    return PlainRecommender(backbone, num_users=num_users, num_items=num_items)
