"""GRU4Rec (Hidasi et al., ICLR 2016; with Tan et al. 2016's embedding input and data
augmentation), configured like RecBole 1.2.1: embedding dropout, a bias-free GRU, a linear
projection back to the embedding size, xavier initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.backbones.base import CausalSequenceBackbone


class GRU4Rec(CausalSequenceBackbone):
    """Embedding dropout -> GRU -> linear; the state after the last real item represents the user."""

    def __init__(
        self,
        num_items: int,
        max_seq_len: int,
        hidden_size: int = 64,
        gru_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.3,
    ):
        super().__init__(num_items, max_seq_len, hidden_size)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden_size, gru_size, num_layers=num_layers, bias=False, batch_first=True)
        self.projection = nn.Linear(gru_size, hidden_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        self._zero_padding_row()
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)

    def encode_embedded_positions(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        # The GRU runs left to right: the state at t never sees later items or the padding.
        states, _ = self.gru(self.emb_dropout(emb))  # (B, L, G)
        return self.projection(states)  # (B, L, D)
