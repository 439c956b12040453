"""BERT4Rec (Sun et al., CIKM 2019) implementing slimkit's backbone contract.

slimkit trains every backbone for next-item prediction: cross-entropy over the whole
catalogue from one sequence representation. BERT4Rec fits that as follows: a learned
[MASK] vector is appended after the last real item, the sequence goes through
bidirectional (unmasked, non-causal) self-attention blocks, and the output at the [MASK]
position is the representation. This is how BERT4Rec predicts at test time; its Cloze
pre-training (random masks inside the sequence, loss at each) is not used, because the
trainer owns the objective. Positions count back from the [MASK] (0 = [MASK], 1 = most
recent item), which equals the original's left-padded layout on right-padded input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BidirectionalBlock(nn.Module):
    """Post-norm transformer block (as in BERT) without a causal mask."""

    def __init__(self, hidden_size: int, num_heads: int, inner_size: int, dropout: float,
                 attention_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attention_out = nn.Linear(hidden_size, hidden_size)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, inner_size), nn.GELU(), nn.Linear(inner_size, hidden_size)
        )
        self.output_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D); attend: (B, T) bool, True where a key may be attended to
        batch, steps, dim = x.shape
        head_dim = dim // self.num_heads
        qkv = self.qkv(x).view(batch, steps, 3, self.num_heads, head_dim)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        key_mask = attend[:, None, None, :]  # (B, 1, 1, T): every query sees all real keys
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )  # (B, H, T, Dh)
        attended = attended.transpose(1, 2).reshape(batch, steps, dim)  # (B, T, D)
        x = self.attention_norm(x + self.dropout(self.attention_out(attended)))
        return self.output_norm(x + self.dropout(self.feed_forward(x)))  # (B, T, D)


class BERT4Rec(nn.Module):
    """Bidirectional transformer over the history plus an appended [MASK]; returns (B, D)."""

    def __init__(
        self,
        num_items: int,
        max_seq_len: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 2,
        inner_size: int = 256,
        dropout: float = 0.2,
        attention_dropout: float = 0.2,
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide hidden_size ({hidden_size})")
        self.num_items = num_items
        self.max_seq_len = max_seq_len
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.mask_embedding = nn.Parameter(torch.zeros(hidden_size))  # the [MASK] token, (D,)
        # Position 0 is the [MASK], 1 the most recent item, ..., max_seq_len the oldest.
        self.position_embedding = nn.Embedding(max_seq_len + 1, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            BidirectionalBlock(hidden_size, num_heads, inner_size, dropout, attention_dropout)
            for _ in range(num_layers)
        )
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_embedding, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # BERT's initialisation: N(0, 0.02) weights, zero biases, padding row zero.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Representation at the [MASK] appended after ``lengths`` items of ``emb`` (B, L, D)."""
        batch, width, dim = emb.shape
        if width > self.max_seq_len:
            raise ValueError(
                f"item_seq has {width} positions but this model was built for max_seq_len "
                f"{self.max_seq_len}"
            )
        lengths = lengths.to(emb.device)
        rows = torch.arange(batch, device=emb.device)  # (B,)
        steps = torch.arange(width + 1, device=emb.device)  # (T,), T = L + 1
        real = (item_seq > 0).unsqueeze(-1).to(emb.dtype)  # (B, L, 1)
        tokens = torch.cat([emb * real, emb.new_zeros(batch, 1, dim)], dim=1)  # (B, T, D)
        at_mask = (steps.unsqueeze(0) == lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
        tokens = torch.where(at_mask, self.mask_embedding.to(emb.dtype), tokens)  # (B, T, D)
        recency = (lengths.unsqueeze(1) - steps.unsqueeze(0)).clamp(min=0)  # (B, T)
        x = self.input_dropout(self.input_norm(tokens + self.position_embedding(recency)))
        attend = steps.unsqueeze(0) <= lengths.unsqueeze(1)  # (B, T): items and [MASK]
        for block in self.blocks:
            x = block(x, attend)  # (B, T, D)
        return x[rows, lengths]  # (B, D): output at the [MASK]

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # item_seq: (B, L) right-padded with 0; lengths: (B,)
        return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)  # (B, D)
