"""Built-in sequential recommender backbones (light descriptors; torch imports on use).

Backbone contract (what a plugin implements): an ``nn.Module`` constructed as
``Backbone(num_items, max_seq_len, **params)`` with

* ``item_embedding``: ``nn.Embedding(num_items + 1, hidden_size, padding_idx=0)``;
  item indices run ``1..num_items``; row 0 is padding and stays zero;
* ``hidden_size``: the dimension D of its representations;
* ``forward(item_seq, lengths) -> (B, D)``: ``item_seq`` is ``(B, L)`` long, right-padded
  with 0 (real items first, ``L <= max_seq_len``, ``L`` may vary between batches),
  ``lengths`` ``(B,)`` the number of real items (>= 1); returns one sequence
  representation per row, the state after the last real item;
* ``encode_embedded(emb, item_seq, lengths) -> (B, D)``: the same, taking already
  embedded items ``emb`` ``(B, L, D)`` instead of looking up ``item_embedding``, so a
  fusion head can feed text-derived item vectors (ID-agnostic) or fused ID+text vectors.
  ``forward(s, n) == encode_embedded(item_embedding(s), s, n)`` for every built-in.
  ``item_seq`` is still passed for padding masks and item identity (SR-GNN builds its
  session graph from it); a head with no item IDs may pass any tensor whose zeros mark
  padding and whose equal values mark equal items.
* optionally ``forward_positions(item_seq, lengths) -> (B, L, D)`` (and
  ``encode_embedded_positions(emb, item_seq, lengths) -> (B, L, D)``): the state after
  every position, causal (position t reads items 0..t only), whose value at
  ``lengths - 1`` is ``forward``'s. The causal training mode (``train.mode``) needs it;
  SASRec and GRU4Rec have it, SR-GNN (one graph per whole sequence) does not and trains
  per prefix.

Items are scored by dot product with item representations (``item_embedding.weight``)
unless a fusion head says otherwise. Parameters are validated by the Params models below
(strict, with the defaults of the papers / RecBole 1.2.1), so nonsensical sizes are spec
errors before anything is built. ``tests/backbones/test_backbones.py`` checks the contract
(forward, backward, save, load) for every registered backbone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from slimkit.components import Component
from slimkit.spec import BackboneParams


class SASRecParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Embedding and model dimension.")
    num_layers: int = Field(2, ge=1, description="Self-attention blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads (must divide hidden_size).")
    inner_size: int = Field(256, ge=1, description="Feed-forward inner dimension.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on embeddings and block outputs.")
    attn_dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on attention weights.")
    hidden_act: Literal["gelu", "relu"] = Field("gelu", description="Feed-forward activation.")
    layer_norm_eps: float = Field(1e-12, gt=0, description="Layer norm epsilon (RecBole: 1e-12).")
    initializer_range: float = Field(
        0.02, gt=0, description="Std of the normal initialisation of weights."
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecParams:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size}); "
                f"e.g. num_heads: {max(h for h in (1, 2, 4, 8) if self.hidden_size % h == 0)}"
            )
        return self


SASREC = Component(
    params=SASRecParams,
    impl="slimkit.backbones.sasrec:SASRec",
    help="Self-attentive sequential recommendation (Kang & McAuley 2018).",
)


class GRU4RecParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Item embedding dimension.")
    gru_size: int = Field(128, ge=1, description="GRU hidden state size.")
    num_layers: int = Field(1, ge=1, description="GRU layers.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Embedding dropout.")


GRU4REC = Component(
    params=GRU4RecParams,
    impl="slimkit.backbones.gru4rec:GRU4Rec",
    help="GRU over the item sequence (Hidasi et al. 2016; Tan et al. 2016).",
)


class SRGNNParams(BackboneParams):
    hidden_size: int = Field(64, ge=1, description="Embedding dimension.")
    steps: int = Field(1, ge=1, le=16, description="Gated GNN propagation steps.")


SRGNN = Component(
    params=SRGNNParams,
    impl="slimkit.backbones.srgnn:SRGNN",
    help="Session graph + gated GNN with soft attention (Wu et al. 2019).",
)
