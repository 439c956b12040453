"""GRU4Rec (Hidasi et al., ICLR 2016; with Tan et al. 2016's embedding input and data
augmentation), configured like RecBole 1.2.1: embedding dropout, a bias-free GRU, a linear
projection back to the embedding size, xavier initialisation.
"""

from __future__ import annotations

import torch
from torch import nn


def gather_last(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real position: (B, L, D), (B,) -> (B, D)."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, hidden.size(-1))  # (B, 1, D)
    return hidden.gather(1, index).squeeze(1)  # (B, D)


class GRU4Rec(nn.Module):
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
        super().__init__()
        self.num_items = num_items
        self.max_seq_len = max_seq_len
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden_size, gru_size, num_layers=num_layers, bias=False, batch_first=True)
        self.projection = nn.Linear(gru_size, hidden_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()  # padding row
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """(B, L, D) item vectors, (B, L) items, (B,) lengths -> (B, D)."""
        # The GRU runs left to right, so outputs at real positions never see the right padding.
        states, _ = self.gru(self.emb_dropout(emb))  # (B, L, G)
        return self.projection(gather_last(states, lengths))  # (B, D)
