"""Built-in sequential recommender backbones (light descriptors; torch imports on use).

Backbone contract (what a plugin implements): an ``nn.Module`` constructed as
``Backbone(num_items, max_seq_len, **params)`` with

* ``item_embedding``: ``nn.Embedding(num_items + 1, hidden_size, padding_idx=0)``;
* ``hidden_size``: the dimension D of its representations;
* ``forward(item_seq, lengths) -> (B, D)``: ``item_seq`` is ``(B, L)`` long, right-padded
  with 0, ``lengths`` ``(B,)`` the number of real items; returns one sequence
  representation per row;
* optionally ``encode_embedded(emb, item_seq, lengths) -> (B, D)`` taking already embedded
  items ``(B, L, D)``, used by fusion heads that replace ID embeddings.

Items are scored by dot product with item representations unless a fusion head says otherwise.
"""

from __future__ import annotations

from pydantic import Field

from slimkit.components import Component
from slimkit.spec import BackboneParams


class SASRecParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Embedding and model dimension.")
    num_layers: int = Field(2, ge=1, description="Self-attention blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads (must divide hidden_size).")
    inner_size: int = Field(256, ge=1, description="Feed-forward inner dimension.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout (hidden and attention).")


sasrec = Component(
    params=SASRecParams,
    impl="slimkit.backbones.sasrec:SASRec",
    help="Self-attentive sequential recommendation (Kang & McAuley 2018).",
)


class GRU4RecParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Item embedding dimension.")
    gru_size: int = Field(128, ge=1, description="GRU hidden state size.")
    num_layers: int = Field(1, ge=1, description="GRU layers.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Embedding dropout.")


gru4rec = Component(
    params=GRU4RecParams,
    impl="slimkit.backbones.gru4rec:GRU4Rec",
    help="GRU over the item sequence (Hidasi et al. 2016; Tan et al. 2016).",
)


class SRGNNParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Embedding dimension.")
    steps: int = Field(1, ge=1, description="Gated GNN propagation steps.")


srgnn = Component(
    params=SRGNNParams,
    impl="slimkit.backbones.srgnn:SRGNN",
    help="Session graph + gated GNN with soft attention (Wu et al. 2019).",
)
