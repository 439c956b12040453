"""Fusion ``slim``: the paper's ID-based fusion of rationale vectors (section 2.3.1).

* user = g_f([g_l(rationale vector); sequence encoder output]);
* item = g_f([g_l(item text vector); item ID embedding]) (``use_item_text``), as in the
  ``item-text`` head, so ``slim`` minus ``item-text`` measures what the rationale adds;
* score = user . item.

g_l and g_f are linear; ``mode`` picks concat (the paper), add or a gate. With
``rationale_source: teacher`` only the users the teacher saw have a rationale; the others
(zero rows) get a learned "missing" vector instead of g_l(rationale).

Rationale vectors are standardised like item text vectors, and g_f starts as the identity
on the sequence / ID part, so training starts from the plain backbone (see item_text.py).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.backbones.protocol import has_positions
from slimkit.fusions.base import Recommender
from slimkit.fusions.item_text import (
    ENCODE_HINT,
    ItemSide,
    TextFusion,
    check_side_info,
    encode_sequence,
    require_encode_embedded,
)
from slimkit.fusions.user_rationales import append_rationale, register_rationales


class SlimRecommender(Recommender):
    """Sequence representation fused with the user's projected rationale vector."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_users: int,
        num_items: int,
        item_vectors: torch.Tensor | None,
        rationale_vectors: torch.Tensor,
        mode: str,
        dropout: float,
        standardize: bool,
        fuse_inputs: bool,
        rationale_dropout: float,
    ):
        super().__init__(backbone, num_users=num_users, num_items=num_items)
        self.fuse_inputs = fuse_inputs and item_vectors is not None
        if self.fuse_inputs:
            require_encode_embedded(backbone, "fusion.fuse_inputs")
        self.items = ItemSide(backbone, item_vectors, mode, dropout, standardize)
        register_rationales(self, rationale_vectors, standardize)  # rationale (U, E), ...
        self.user_fusion = TextFusion(self.rationale.size(1), self.hidden_size, mode, dropout)
        self.rationale_dropout = rationale_dropout

    def item_matrix(self) -> torch.Tensor:
        return self.items.matrix(self.backbone.item_embedding.weight)  # (N+1, D)

    def _user(self, item_seq, lengths, users, matrix=None, per_position=False) -> torch.Tensor:
        """(B, D) user vectors, or (B, L, D) after each position when ``per_position``."""
        if self.fuse_inputs:
            matrix = self.item_matrix() if matrix is None else matrix  # (N+1, D)
        else:
            matrix = None
        seq = encode_sequence(self.backbone, item_seq, lengths, matrix, per_position)
        # seq: (B, D), or (B, L, D) per position
        text = self.rationale[users]  # (B, E); (B, L, E) for per-position rows
        present = self.has_rationale[users]  # (B,) or (B, L)
        if self.training and self.rationale_dropout > 0:
            # Whole-rationale dropout: some rows train as "no rationale", so the sequence
            # path keeps carrying the signal instead of leaning on the rationale alone.
            keep = torch.rand(present.shape, device=present.device) >= self.rationale_dropout
            present = present & keep
        rationale = self.user_fusion.projected(text, present)  # (B, D) or (B, L, D)
        if per_position and rationale.dim() == 2:
            # One user-level vector (and dropout mask) shared by every position of a row.
            rationale = rationale.unsqueeze(1).expand_as(seq)  # (B, L, D)
        return self.user_fusion.fuse_projected(seq, rationale)  # (B, D) or (B, L, D)

    def forward(self, item_seq, lengths, users):
        return self._user(item_seq, lengths, users)

    def supports_positions(self) -> bool:
        return has_positions(self.backbone, embedded=self.fuse_inputs)

    def forward_positions(self, item_seq, lengths, users):
        if not self.supports_positions():
            return super().forward_positions(item_seq, lengths, users)
        return self._user(item_seq, lengths, users, per_position=True)  # (B, L, D)

    def score_positions(self, item_seq, lengths, users, where):
        if not self.supports_positions():
            return super().score_positions(item_seq, lengths, users, where)
        matrix = self.item_matrix()  # (N+1, D), once for inputs and scores
        user = self._user(item_seq, lengths, users, matrix, per_position=True)  # (B, L, D)
        return user[where] @ matrix.T  # (P, N+1)

    def score_candidates(self, item_seq, lengths, users, candidates, where=None):
        matrix = self.item_matrix()  # (N+1, D), once for inputs and scores
        if where is None:
            user = self._user(item_seq, lengths, users, matrix)  # (B, D)
        else:
            user = self._user(item_seq, lengths, users, matrix, per_position=True)[where]
        return user @ matrix[candidates].T  # (R, C)

    def add_user(self, rationale_vector: torch.Tensor) -> int:
        """Append a user from a raw rationale vector (E,), standardised like the others."""
        return append_rationale(self, rationale_vector)

    def score_all(self, item_seq, lengths, users):
        matrix = self.item_matrix()  # (N+1, D), once for inputs and scores
        return self._user(item_seq, lengths, users, matrix) @ matrix.T  # (B, N+1)


def build_slim(
    backbone: nn.Module,
    *,
    num_users: int,
    num_items: int,
    item_vectors: torch.Tensor | None,
    rationale_vectors: torch.Tensor | None,
    mode: str = "concat",
    rationale_source: str = "student",
    use_item_text: bool = True,
    dropout: float = 0.1,
    standardize: bool = True,
    fuse_inputs: bool = True,
    rationale_dropout: float = 0.0,
) -> SlimRecommender:
    """Fusion kind ``slim``. ``rationale_source`` is resolved by the train stage (which
    rationale vectors it passes); it is accepted here so Params unpack as they are."""
    rationale_vectors = check_side_info(
        "rationale vectors", rationale_vectors, num_users, "users", ENCODE_HINT
    )
    if use_item_text:
        item_vectors = check_side_info(
            "item text vectors", item_vectors, num_items + 1, "items (+ padding)", ENCODE_HINT
        )
    else:
        item_vectors = None
    return SlimRecommender(
        backbone,
        num_users=num_users,
        num_items=num_items,
        item_vectors=item_vectors,
        rationale_vectors=rationale_vectors,
        mode=mode,
        dropout=dropout,
        standardize=standardize,
        fuse_inputs=fuse_inputs,
        rationale_dropout=rationale_dropout,
    )
