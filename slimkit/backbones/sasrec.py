"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Post-layer-norm Transformer blocks with causal attention over learned absolute positions,
configured like RecBole 1.2.1's SASRec (GELU, dropout 0.5, layer norm eps 1e-12, normal
init with std 0.02, no sqrt(D) embedding scale). Attention runs through
``F.scaled_dot_product_attention`` with ``is_causal=True``: with right-padded input a real
position only ever attends to earlier real positions, so no padding mask is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.backbones.base import CausalSequenceBackbone


class SelfAttentionBlock(nn.Module):
    """Multi-head causal self-attention + feed-forward, each with residual and post-LN."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        inner_size: int,
        dropout: float,
        attn_dropout: float,
        hidden_act: str,
        layer_norm_eps: float,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ff_in = nn.Linear(hidden_size, inner_size)
        self.ff_out = nn.Linear(inner_size, hidden_size)
        self.ff_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.GELU() if hidden_act == "gelu" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).view(b, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, H, L, D/H)
        context = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_dropout if self.training else 0.0, is_causal=True
        )  # (B, H, L, D/H)
        context = context.transpose(1, 2).reshape(b, length, d)  # (B, L, D)
        x = self.attn_norm(x + self.dropout(self.attn_out(context)))  # (B, L, D)
        ff = self.ff_out(self.act(self.ff_in(x)))  # (B, L, D) via (B, L, inner)
        return self.ff_norm(x + self.dropout(ff))  # (B, L, D)


class SASRec(CausalSequenceBackbone):
    """Causal Transformer over item + position embeddings; the last position represents the user."""

    def __init__(
        self,
        num_items: int,
        max_seq_len: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 2,
        inner_size: int = 256,
        dropout: float = 0.5,
        attn_dropout: float = 0.5,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
    ):
        if hidden_size % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide hidden_size ({hidden_size})")
        super().__init__(num_items, max_seq_len, hidden_size)
        self.position_embedding = nn.Embedding(max_seq_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(
                hidden_size, num_heads, inner_size, dropout, attn_dropout, hidden_act, layer_norm_eps
            )
            for _ in range(num_layers)
        )
        self._init_weights(initializer_range)

    def _init_weights(self, std: float) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self._zero_padding_row()

    def encode_embedded_positions(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        length = emb.size(1)
        if length > self.max_seq_len:
            raise ValueError(f"sequence length {length} exceeds max_seq_len {self.max_seq_len}")
        positions = self.position_embedding.weight[:length].unsqueeze(0)  # (1, L, D)
        x = self.input_dropout(self.input_norm(emb + positions))  # (B, L, D)
        for block in self.blocks:
            x = block(x)  # (B, L, D)
        return x  # (B, L, D): causal attention, position t sees positions <= t only
