"""Fusion ``none``: the backbone alone, no side information; items are its ID embeddings.

One name throughout: registry ``none``, :class:`~slimkit.fusions.NoFusionParams`,
:class:`NoFusionRecommender`, :func:`build_no_fusion` (``slimkit compare`` calls this row
"plain", the paper's name for a backbone without features).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.backbones.protocol import has_positions
from slimkit.fusions.base import Recommender


class NoFusionRecommender(Recommender):
    """User = backbone(sequence); item = the backbone's item ID embedding."""

    def forward(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        return self.backbone(item_seq, lengths)  # (B, D)

    def supports_positions(self) -> bool:
        return has_positions(self.backbone)

    def forward_positions(self, item_seq, lengths, users) -> torch.Tensor:
        if not self.supports_positions():
            return super().forward_positions(item_seq, lengths, users)
        return self.backbone.forward_positions(item_seq, lengths)  # (B, L, D)

    def item_matrix(self) -> torch.Tensor:
        return self.backbone.item_embedding.weight  # (N + 1, D)


def build_no_fusion(
    backbone: nn.Module,
    *,
    num_users: int,
    num_items: int,
    item_vectors: torch.Tensor | None = None,
    rationale_vectors: torch.Tensor | None = None,
) -> NoFusionRecommender:
    """Fusion kind ``none``: side information, if any is passed, is ignored."""
    return NoFusionRecommender(backbone, num_users=num_users, num_items=num_items)
