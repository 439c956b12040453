"""What a backbone implements (see the contract in :mod:`slimkit.backbones`).

A backbone class is registered in the ``slimkit.backbones`` group as a ``Component``
whose implementation is the class, built as ``cls(num_items, max_seq_len, **params)``
with the fields of its Params (a :class:`slimkit.spec.BackboneParams` subclass). torch
types are named as strings, so importing this module imports no torch.
``slimkit.plugins.check_backbone`` checks a backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


@runtime_checkable
class Backbone(Protocol):
    """An ``nn.Module``: a sequence of item indices -> one representation per sequence."""

    hidden_size: int
    """Dimension D of its representations."""
    item_embedding: nn.Embedding
    """``nn.Embedding(num_items + 1, hidden_size, padding_idx=0)``; items are 1..N."""

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` long, right-padded with 0; ``(B,)`` real lengths (>= 1) -> ``(B, D)``,
        the state after the last real item. Padded positions never change the output."""
        ...


@runtime_checkable
class EmbeddedInputBackbone(Backbone, Protocol):
    """A backbone that also reads already embedded items (recommended: the ``item-text``
    and ``slim`` heads feed fused item vectors through it, ``text-match`` text vectors)."""

    def encode_embedded(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """``emb`` ``(B, L, D)`` in place of ``item_embedding(item_seq)`` -> ``(B, D)``;
        ``forward(s, n) == encode_embedded(item_embedding(s), s, n)``; vectors at padded
        positions of ``emb`` (``item_seq == 0``) never change the output."""
        ...


@runtime_checkable
class PositionalBackbone(Backbone, Protocol):
    """A causal backbone that also gives its state after every position (optional; the
    causal training mode, ``train.mode: causal``, needs it: one forward per training
    window with a loss at every position). Without it a backbone trains per prefix."""

    def forward_positions(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, L)``, ``(B,)`` as in ``forward`` -> ``(B, L, D)``: the state after each
        position, defined at real positions ``t < lengths[b]``. Causal: position ``t``
        depends on items ``0..t`` only (a later item or any padding never changes it), so
        ``forward_positions(s, n)[b, n[b] - 1] == forward(s, n)[b]``."""
        ...


@runtime_checkable
class EmbeddedPositionalBackbone(PositionalBackbone, EmbeddedInputBackbone, Protocol):
    """Per-position output from already embedded items (heads that feed fused or text
    item vectors train causally through it)."""

    def encode_embedded_positions(
        self, emb: torch.Tensor, item_seq: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """``emb`` ``(B, L, D)`` in place of ``item_embedding(item_seq)`` -> ``(B, L, D)``,
        causal like ``forward_positions``, whose value it equals on ID embeddings."""
        ...


def has_positions(backbone: object, *, embedded: bool = False) -> bool:
    """Whether ``backbone`` gives per-position outputs (``embedded``: from item vectors)."""
    name = "encode_embedded_positions" if embedded else "forward_positions"
    return callable(getattr(backbone, name, None))
