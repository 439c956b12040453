"""Rationale heads read a per-position table row in causal training under a leakage-free
``prompt.rationale_cut``: ``users`` (B, L) instead of (B,)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fusions.test_fusions import (
    NUM_ITEMS,
    NUM_USERS,
    TEXT_DIM,
    batch,
    make_backbone,
    side_info,
)

from slimkit.components import implementation, params_model

HEADS = [("slim", {}), ("text-match", {}), ("text-match", {"use_history": True})]


def table_with_missing_row():
    """(U + 1, E): every user's rationale, then an all-zero row (no rationale)."""
    _, rationales = side_info()
    return torch.cat([rationales, torch.zeros(1, TEXT_DIM)])


@pytest.mark.parametrize(("name", "params"), HEADS)
def test_per_position_rows_read_their_own_row(name, params):
    torch.manual_seed(0)
    items, _ = side_info()
    table = table_with_missing_row()
    kwargs = params_model("fusions", name)(kind=name, **params).model_dump(exclude={"kind"})
    head = implementation("fusions", name)(  # num_users: the rows of the table
        make_backbone(), num_users=table.size(0), num_items=NUM_ITEMS, item_vectors=items,
        rationale_vectors=table, **kwargs).eval()
    with torch.no_grad():  # off the initial state, where slim's g_f ignores the rationale
        for weight in head.parameters():
            weight.add_(0.1 * torch.randn_like(weight))
    item_seq, lengths, users = batch()
    missing = NUM_USERS  # the zero row
    with torch.no_grad():
        per_row = head.forward_positions(item_seq, lengths, users)  # (B, L, D)
        same = head.forward_positions(item_seq, lengths, users.unsqueeze(1).expand_as(item_seq))
        none = head.forward_positions(item_seq, lengths, torch.full_like(users, missing))
        # Positions before 2 read no rationale, from 2 on their user's row.
        steps = torch.arange(item_seq.size(1))
        mixed_users = torch.where(steps >= 2, users.unsqueeze(1), torch.full_like(item_seq, missing))
        mixed = head.forward_positions(item_seq, lengths, mixed_users)
        where = torch.ones_like(item_seq, dtype=torch.bool)
        scores = head.score_positions(item_seq, lengths, mixed_users, where)  # (B * L, N + 1)
    torch.testing.assert_close(same, per_row)
    torch.testing.assert_close(mixed[:, 2:], per_row[:, 2:])
    torch.testing.assert_close(mixed[:, :2], none[:, :2])
    assert not torch.allclose(per_row[:, :2], none[:, :2])
    torch.testing.assert_close(scores, mixed[where] @ head.item_matrix().T)
