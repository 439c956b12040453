"""Per-user rationale vectors kept by a fusion head, and how a new user joins them.

Heads that represent a user by a rationale vector (``slim``, ``text-match``) keep the
vectors as buffers ``rationale`` (U, E) and ``has_rationale`` (U,), standardised once at
build time. The standardisation (mean and scale of the known users' rows) is kept beside
them, so :meth:`Recommender.add_user` gives a new user's raw vector exactly the transform
the known users' rows got.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.errors import SlimkitError
from slimkit.fusions.item_text import present_rows, row_standardization, standardize_rows


def register_rationales(head: nn.Module, rationale_vectors: torch.Tensor, standardize: bool) -> None:
    """Register ``rationale`` (U, E), ``has_rationale`` (U,) and their standardisation on
    ``head`` (non-persistent buffers: the train stage passes the vectors again on reload)."""
    vectors = rationale_vectors.detach().float()  # (U, E)
    present = present_rows(vectors)  # (U,)
    if standardize:
        table = standardize_rows(vectors, present)  # (U, E), absent rows stay zero
        mean, scale = row_standardization(vectors, present)  # (1, E), ()
    else:
        table = vectors.clone()
        mean, scale = vectors.new_zeros(1, vectors.size(-1)), vectors.new_ones(())
    head.register_buffer("rationale", table, persistent=False)  # (U, E)
    head.register_buffer("has_rationale", present, persistent=False)  # (U,)
    head.register_buffer("rationale_mean", mean, persistent=False)  # (1, E)
    head.register_buffer("rationale_scale", scale, persistent=False)  # ()


def append_rationale(head: nn.Module, rationale_vector) -> int:
    """Append one raw rationale vector (E,) as a new user row of ``head``; its index."""
    table = head.rationale  # (U, E)
    raw = torch.as_tensor(rationale_vector, dtype=torch.float32, device=table.device)
    raw = raw.reshape(1, -1)  # (1, E)
    if raw.size(1) != table.size(1):
        raise SlimkitError(
            f"The new user's rationale vector has dimension {raw.size(1)}, but the model's "
            f"rationale vectors have {table.size(1)}: it comes from another encoder.",
            hint="Encode the rationale with the spec's encoder.",
        )
    present = present_rows(raw)  # (1,)
    row = (raw - head.rationale_mean) / head.rationale_scale if bool(present) else raw * 0
    head.rationale = torch.cat([table, row.to(table.dtype)], dim=0)  # (U + 1, E)
    head.has_rationale = torch.cat([head.has_rationale, present.to(head.has_rationale.device)])
    head.num_users = int(table.size(0)) + 1
    return int(table.size(0))
