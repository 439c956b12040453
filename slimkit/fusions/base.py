"""The model the trainer trains: a backbone plus a fusion head, as one ``Recommender``.

Contract (trainer <-> fusion heads, see docs/architecture.md):

* ``forward(item_seq (B, L), lengths (B,), users (B,)) -> (B, D)``: user representations.
  ``item_seq`` is right-padded with 0, ``lengths >= 1``, ``users`` are user indices
  ``0..U-1`` (for heads that look up per-user side information such as rationale vectors);
* ``item_matrix() -> (N + 1, D)``: item representations, row 0 is padding (never scored);
* ``score_all(item_seq, lengths, users) -> (B, N + 1)``: a score for every item; the
  default is ``forward(...) @ item_matrix().T``. Column 0 is ignored by the trainer;
* ``forward_positions(item_seq, lengths, users) -> (B, L, D)`` (optional, with
  ``supports_positions() -> True``): the user representation after every position of a
  causal backbone; position ``lengths - 1`` equals ``forward``. The causal training mode
  (one forward per training window, a loss at every position) needs it; a head whose
  ``supports_positions()`` is False trains per prefix. A user-level vector (a rationale)
  is the same at every position of a row, except that during causal training under a
  leakage-free ``prompt.rationale_cut`` ``users`` is ``(B, L)``: the per-user table row
  each position reads (its own rationale, or a row without one before the user's cut;
  see :class:`~slimkit.training.samples.RationaleRows`). Heads that look rationales up
  by ``users`` (``table[users]``) get this for free;
* ``score_positions(item_seq, lengths, users, where (B, L) bool) -> (P, N + 1)``: scores
  of every item at the ``P`` positions where ``where`` is True (default:
  ``forward_positions(...)[where] @ item_matrix().T``);
* ``score_candidates(item_seq, lengths, users, candidates (C,), where=None) -> (R, C)``:
  scores of the candidate items only, for every row (``where`` None: R = B) or every
  position where ``where`` (B, L) holds (R = P); the sampled and in-batch losses use it
  so no (rows x catalogue) matrix is built. Default: the user vectors (``forward`` or
  ``forward_positions(...)[where]``) against ``item_matrix()[candidates]``; heads that
  compute their item matrix once for inputs and scores override it likewise;
* ``add_user(rationale_vector (E,)) -> int``: a new user known only by a rationale vector
  (``slimkit recommend --history``) joins the per-user table; the returned index works in
  ``forward``/``score_all``. Heads without per-user features keep this base's version,
  which raises a clear :class:`~slimkit.errors.SlimkitError`.

A fusion implementation is a factory
``build(backbone, *, num_users, num_items, item_vectors, rationale_vectors, **params)``
returning a ``Recommender``; ``item_vectors`` is ``(N + 1, E)`` and ``rationale_vectors``
``(U, E)`` (float tensors, or ``None`` when the head does not need them); ``num_users``
is the number of rows of that table, which under a leakage-free ``prompt.rationale_cut``
holds training-only rows after the ``U`` users' own (a rationale from the cut, and one
all-zero row), so users ``0..U-1`` keep their indices. Register side
information as buffers (``persistent=False`` keeps it out of ``model.safetensors``; the
train stage passes it again when it rebuilds a saved model).

The trainer only uses the methods above but ``add_user``, ``train()``/``eval()``,
``parameters()`` and
``state_dict()``, so a head is free in everything else.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.errors import SlimkitError


class Recommender(nn.Module):
    """Base class: holds ``backbone``, ``num_users``, ``num_items``; subclasses fuse side info."""

    def __init__(self, backbone: nn.Module, *, num_users: int, num_items: int):
        super().__init__()
        self.backbone = backbone
        self.num_users = int(num_users)
        self.num_items = int(num_items)

    @property
    def hidden_size(self) -> int:
        """Dimension D of user and item representations (the backbone's by default)."""
        return int(self.backbone.hidden_size)

    def forward(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """(B, L) items, (B,) lengths, (B,) users -> (B, D) user representations."""
        raise NotImplementedError

    def item_matrix(self) -> torch.Tensor:
        """(N + 1, D) item representations; row 0 is padding."""
        raise NotImplementedError

    def score_all(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """(B, N + 1) scores of every item for each row (column 0 is padding, ignored)."""
        return self(item_seq, lengths, users) @ self.item_matrix().T  # (B, D) @ (D, N+1)

    def supports_positions(self) -> bool:
        """Whether :meth:`forward_positions` works (the causal training mode needs it)."""
        return False

    def forward_positions(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor
    ) -> torch.Tensor:
        """(B, L) items, (B,) lengths, (B,) users -> (B, L, D): the user representation
        after each position (real positions only are defined)."""
        raise SlimkitError(
            f"The fusion head {type(self).__name__} gives no per-position outputs, so it "
            "cannot train in causal mode.",
            hint="Set train.mode=per-prefix (or auto).",
        )

    def score_positions(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor,
        where: torch.Tensor,
    ) -> torch.Tensor:
        """(P, N + 1) scores of every item at the P positions where ``where`` (B, L) holds."""
        return self.forward_positions(item_seq, lengths, users)[where] @ self.item_matrix().T

    def score_candidates(
        self, item_seq: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor,
        candidates: torch.Tensor, where: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(R, C) scores of the items ``candidates`` (C,) for each row (R = B), or for each
        of the P positions where ``where`` (B, L) holds (R = P)."""
        if where is None:
            user = self(item_seq, lengths, users)  # (B, D)
        else:
            user = self.forward_positions(item_seq, lengths, users)[where]  # (P, D)
        return user @ self.item_matrix()[candidates].T  # (R, D) @ (D, C)

    def add_user(self, rationale_vector: torch.Tensor) -> int:
        """Add a user known only by their rationale vector; return their user index.

        ``rationale_vector`` is ``(E,)`` (a tensor or a numpy array), raw from the
        encoder like a row of the ``rationale_vectors`` given to ``build`` (all zeros: no
        rationale). A head applies the transform its known users' rows got (e.g.
        standardisation) and appends the row, so ``forward``/``score_all`` accept the
        returned index; a new user given a known user's vector scores exactly like that
        user. This base version is for heads
        without per-user features: it raises :class:`~slimkit.errors.SlimkitError`.
        """
        raise SlimkitError(
            f"The fusion head {type(self).__name__} keeps no per-user rationale vectors, so "
            "it cannot score a new user from a rationale.",
            hint="Use a fusion head with rationale vectors (slim or text-match) to recommend "
            "for a new user.",
        )
