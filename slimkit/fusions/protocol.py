"""What a fusion head implements: a factory (:class:`FusionHead`) of a :class:`Recommender`.

A fusion head is registered in the ``slimkit.fusions`` group as a ``Component`` whose
implementation is the factory. Subclass :class:`slimkit.fusions.base.Recommender` (it
gives ``hidden_size``, ``score_all`` and an ``add_user`` that raises a clear error) and
implement ``forward`` and ``item_matrix``. torch types are named as strings, so importing
this module imports no torch. ``slimkit.plugins.check_fusion`` checks a head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


@runtime_checkable
class Recommender(Protocol):
    """The model the trainer trains: a backbone inside a fusion head."""

    num_users: int
    num_items: int

    @property
    def hidden_size(self) -> int:
        """Dimension D of user and item representations."""
        ...

    def forward(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """``(B, L)`` items right-padded with 0, ``(B,)`` lengths, ``(B,)`` user indices
        -> ``(B, D)`` user representations."""
        ...

    def item_matrix(self) -> torch.Tensor:
        """``(N + 1, D)`` item representations; row 0 is padding (never scored)."""
        ...

    def score_all(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """``(B, N + 1)`` scores of every item (column 0 is ignored)."""
        ...

    def add_user(self, rationale_vector: torch.Tensor) -> int:
        """Append a user known only by a raw rationale vector ``(E,)`` (tensor or numpy
        array); return their user index.

        Heads with per-user rationale vectors transform it as they transformed the known
        users' rows (a known user's vector gives a user who scores exactly like them);
        heads without per-user features raise :class:`slimkit.errors.SlimkitError`.
        """
        ...


class FusionHead(Protocol):
    """The registered factory: a backbone plus side information -> a :class:`Recommender`.

    ``item_vectors`` is ``(N + 1, E)`` (row 0 padding) and ``rationale_vectors`` ``(U, E)``
    (zero rows: no rationale); each is ``None`` unless the head's Params say
    ``needs_item_text`` / ``needs_rationales``. ``**params`` are the fields of the head's
    Params (a :class:`slimkit.spec.FusionParams` subclass).
    """

    def __call__(
        self,
        backbone: nn.Module,
        *,
        num_users: int,
        num_items: int,
        item_vectors: torch.Tensor | None,
        rationale_vectors: torch.Tensor | None,
        **params: Any,
    ) -> Recommender: ...
