"""What the built-in backbones share: item embeddings with a zero padding row, ``forward``
as ``encode_embedded`` over them, and reading the state at each row's last real item.
Causal backbones (SASRec, GRU4Rec) also give the state after every position
(:class:`CausalSequenceBackbone`), which the causal training mode reads.

Plugins need not use it: the contract is in :mod:`slimkit.backbones.protocol`.
"""

from __future__ import annotations

import torch
from torch import nn


def gather_last(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real position: (B, L, D), (B,) -> (B, D)."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, hidden.size(-1))  # (B, 1, D)
    return hidden.gather(1, index).squeeze(1)  # (B, D)


class ItemSequenceBackbone(nn.Module):
    """Base of the built-in backbones; subclasses implement :meth:`encode_embedded`.

    ``item_embedding`` is built first, before any layer of the subclass, so every
    backbone draws its initial weights in the same order as when each built its own.
    """

    def __init__(self, num_items: int, max_seq_len: int, hidden_size: int):
        super().__init__()
        self.num_items = num_items
        self.max_seq_len = max_seq_len
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)

    def _zero_padding_row(self) -> None:
        """Zero row 0 again after a subclass re-initialised ``item_embedding``."""
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()  # padding row

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) items right-padded with 0, (B,) lengths -> (B, D)."""
        return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """(B, L, D) item vectors, (B, L) items, (B,) lengths -> (B, D)."""
        raise NotImplementedError


class CausalSequenceBackbone(ItemSequenceBackbone):
    """A backbone whose output at position ``t`` depends on positions ``<= t`` only.

    Subclasses implement :meth:`encode_embedded_positions`; the per-sequence outputs
    (``forward``, ``encode_embedded``) are its value at each row's last real position, so
    both modes of training read one computation.
    """

    def forward_positions(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) items right-padded with 0, (B,) lengths -> (B, L, D): the state after
        each position (defined at real positions ``t < lengths``)."""
        return self.encode_embedded_positions(self.item_embedding(item_seq), item_seq, lengths)

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        return gather_last(self.encode_embedded_positions(emb, item_seq, lengths), lengths)

    def encode_embedded_positions(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """(B, L, D) item vectors, (B, L) items, (B,) lengths -> (B, L, D) per position."""
        raise NotImplementedError
