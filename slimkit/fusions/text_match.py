"""Fusion ``text-match``: the paper's ID-agnostic recommendation (section 2.3.2).

No item ID embedding is used anywhere:

* item = g_t(item text vector);
* user = g_t(rationale vector) (the paper's row), or, with ``use_history`` (a hybrid of
  slimkit's own), combined with the history encoded from item text vectors (g_t(text)
  of each history item) through the backbone's ``encode_embedded``; the combination
  g_u([g_t(rationale); history]) starts as their sum;
* score = cosine(user, item) / temperature.

g_t is one linear map shared by items and rationales (both live in the text encoder's
space), so an item that never occurs in training is scored from its text alone. ``step``
(1, 2, 3) is resolved by the train stage, which passes that step's rationale vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.backbones.protocol import has_positions
from slimkit.errors import SlimkitError
from slimkit.fusions.base import Recommender
from slimkit.fusions.item_text import (
    ENCODE_HINT,
    check_side_info,
    encode_sequence,
    present_rows,
    require_encode_embedded,
    standardize_rows,
)
from slimkit.fusions.user_rationales import append_rationale, register_rationales


class TextMatchRecommender(Recommender):
    """Users (rationale [+ text-encoded history]) and items (text) in one space."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_users: int,
        num_items: int,
        item_vectors: torch.Tensor,
        rationale_vectors: torch.Tensor,
        hidden_size: int,
        use_history: bool,
        temperature: float,
        standardize: bool,
        dropout: float,
    ):
        super().__init__(backbone, num_users=num_users, num_items=num_items)
        self._hidden = hidden_size
        self.use_history = use_history
        self.temperature = temperature
        item_present = present_rows(item_vectors)
        item_present[0] = False
        if standardize:
            item_vectors = standardize_rows(item_vectors, item_present)
        self.register_buffer("item_text", item_vectors.float(), persistent=False)  # (N+1, E)
        self.register_buffer("item_present", item_present, persistent=False)  # (N+1,)
        register_rationales(self, rationale_vectors, standardize)  # rationale (U, E), ...
        self.transform = nn.Linear(item_vectors.size(1), hidden_size)  # g_t: E -> H
        self.missing = nn.Parameter(torch.zeros(hidden_size))  # users without a rationale
        self.dropout = nn.Dropout(dropout)
        if use_history:
            self.combine = nn.Linear(2 * hidden_size, hidden_size)  # g_u: 2H -> H
            with torch.no_grad():
                eye = torch.eye(hidden_size)
                self.combine.weight.copy_(torch.cat([eye, eye], dim=1))
                self.combine.bias.zero_()

    @property
    def hidden_size(self) -> int:
        return self._hidden

    def _items(self) -> torch.Tensor:
        """(N + 1, H) transformed item texts (not normalised), row 0 zeros."""
        items = self.transform(self.item_text)  # (N+1, H)
        return items * self.item_present.unsqueeze(-1).to(items.dtype)

    def item_matrix(self) -> torch.Tensor:
        return F.normalize(self._items(), dim=-1)  # (N+1, H); row 0 stays zero

    def _user(self, item_seq, lengths, users, items=None, per_position=False) -> torch.Tensor:
        """(B, H) user vectors, or (B, L, H) after each position when ``per_position``."""
        rationale = self.transform(self.rationale[users])  # (B, H); (B, L, H) per-position rows
        present = self.has_rationale[users].unsqueeze(-1)  # (B, 1) or (B, L, 1)
        user = torch.where(present, rationale, self.missing.expand_as(rationale))  # (B, [L,] H)
        user = self.dropout(user)
        if per_position and user.dim() == 2:
            # One user-level vector (and dropout mask) shared by every position of a row.
            user = user.unsqueeze(1).expand(-1, item_seq.size(1), -1)  # (B, L, H)
        if self.use_history:
            items = self._items() if items is None else items  # (N+1, H)
            history = encode_sequence(self.backbone, item_seq, lengths, items, per_position)
            # history: (B, H), or (B, L, H) per position
            user = self.combine(torch.cat([F.normalize(user, dim=-1), F.normalize(history, dim=-1)], -1))
        return F.normalize(user, dim=-1) / self.temperature  # (B, H) or (B, L, H)

    def forward(self, item_seq, lengths, users):
        return self._user(item_seq, lengths, users)

    def supports_positions(self) -> bool:
        # Without the history, a user is their rationale alone: the same at every position.
        return not self.use_history or has_positions(self.backbone, embedded=True)

    def forward_positions(self, item_seq, lengths, users):
        if not self.supports_positions():
            return super().forward_positions(item_seq, lengths, users)
        return self._user(item_seq, lengths, users, per_position=True)  # (B, L, H)

    def score_positions(self, item_seq, lengths, users, where):
        if not self.supports_positions():
            return super().score_positions(item_seq, lengths, users, where)
        items = self._items()  # (N+1, H), once for the history and the scores
        user = self._user(item_seq, lengths, users, items, per_position=True)  # (B, L, H)
        return user[where] @ F.normalize(items, dim=-1).T  # (P, N+1)

    def score_candidates(self, item_seq, lengths, users, candidates, where=None):
        if self.use_history:
            items = self._items()  # (N+1, H), once for the history and the scores
            chosen = items[candidates]  # (C, H)
        else:  # the candidates alone are transformed: O(C), not O(N)
            items = None
            present = self.item_present[candidates].unsqueeze(-1)  # (C, 1)
            chosen = self.transform(self.item_text[candidates]) * present.to(self.item_text.dtype)
        if where is None:
            user = self._user(item_seq, lengths, users, items)  # (B, H)
        else:
            user = self._user(item_seq, lengths, users, items, per_position=True)[where]
        return user @ F.normalize(chosen, dim=-1).T  # (R, C)

    def add_user(self, rationale_vector: torch.Tensor) -> int:
        """Append a user from a raw rationale vector (E,), standardised like the others."""
        return append_rationale(self, rationale_vector)

    def score_all(self, item_seq, lengths, users):
        items = self._items()  # (N+1, H), once for the history and the scores
        return self._user(item_seq, lengths, users, items) @ F.normalize(items, dim=-1).T


def build_text_match(
    backbone: nn.Module,
    *,
    num_users: int,
    num_items: int,
    item_vectors: torch.Tensor | None,
    rationale_vectors: torch.Tensor | None,
    step: int | None = None,
    rationale_source: str = "student",
    hidden_size: int | None = None,
    use_history: bool = False,
    temperature: float = 0.07,
    standardize: bool = True,
    dropout: float = 0.1,
) -> TextMatchRecommender:
    """Fusion kind ``text-match``. ``step`` and ``rationale_source`` are resolved by the
    train stage (which rationale vectors it passes); accepted here so Params unpack."""
    item_vectors = check_side_info(
        "item text vectors", item_vectors, num_items + 1, "items (+ padding)", ENCODE_HINT
    )
    rationale_vectors = check_side_info(
        "rationale vectors", rationale_vectors, num_users, "users", ENCODE_HINT
    )
    if item_vectors.size(1) != rationale_vectors.size(1):
        raise SlimkitError(
            f"Item text vectors have dimension {item_vectors.size(1)} but rationale vectors "
            f"{rationale_vectors.size(1)}: they come from different encoders.",
            hint=ENCODE_HINT,
        )
    backbone_size = int(getattr(backbone, "hidden_size", 0) or 0)
    size = hidden_size or backbone_size
    if use_history:
        require_encode_embedded(backbone, "fusion.use_history")
        if hidden_size is not None and hidden_size != backbone_size:
            raise SlimkitError(
                f"fusion.hidden_size is {hidden_size} but the backbone's hidden_size is "
                f"{backbone_size}; with fusion.use_history the history is encoded by the "
                "backbone, so both must match.",
                hint=f"Set fusion.hidden_size={backbone_size} (or leave it empty), or "
                f"backbone.hidden_size={hidden_size}, or fusion.use_history=false.",
            )
    if size < 1:
        raise SlimkitError("fusion.hidden_size: give the size of the matching space.")
    return TextMatchRecommender(
        backbone,
        num_users=num_users,
        num_items=num_items,
        item_vectors=item_vectors,
        rationale_vectors=rationale_vectors,
        hidden_size=size,
        use_history=use_history,
        temperature=temperature,
        standardize=standardize,
        dropout=dropout,
    )
