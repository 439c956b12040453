"""``check_fusion``: a fusion head's ``build(...)`` and the ``Recommender`` it returns.

The contract (``slimkit.plugins.FusionHead`` and ``Recommender``): ``build(backbone, *,
num_users, num_items, item_vectors, rationale_vectors, **params)`` returns an
``nn.Module`` with ``forward -> (B, D)``, ``item_matrix() -> (N + 1, D)``, ``score_all ->
(B, N + 1)`` and ``add_user(rationale_vector) -> int``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slimkit.checks._common import (
    close,
    fail,
    max_diff,
    name_of,
    roundtrip,
    tiny_batch,
    torch_module,
)

__all__ = ["check_fusion"]


def _mean_backbone(num_items: int, max_seq_len: int, hidden_size: int = 8):
    """A tiny reference backbone (mean of item embeddings, then a linear layer)."""
    nn = torch_module().nn

    class MeanBackbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_size = hidden_size
            self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
            self.out = nn.Linear(hidden_size, hidden_size)

        def encode_embedded(self, emb, item_seq, lengths):
            keep = (item_seq > 0).unsqueeze(-1).to(emb.dtype)  # (B, L, 1)
            summed = (emb * keep).sum(dim=1)  # (B, D)
            return self.out(summed / lengths.clamp(min=1).unsqueeze(-1).to(emb.dtype))

        def forward(self, item_seq, lengths):
            return self.encode_embedded(self.item_embedding(item_seq), item_seq, lengths)

    return MeanBackbone()


def check_fusion(
    build_fn: Callable[..., Any],
    *,
    backbone: Callable[..., Any] | None = None,
    num_users: int = 6,
    num_items: int = 23,
    max_seq_len: int = 8,
    text_dim: int = 12,
    with_item_vectors: bool = True,
    with_rationale_vectors: bool = True,
    seed: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Check a fusion head's ``build(backbone, *, num_users, num_items, item_vectors,
    rationale_vectors, **params) -> Recommender`` at tiny sizes.

    ``backbone`` is a backbone class (default: a small mean-pooling reference backbone);
    it is built as ``backbone(num_items, max_seq_len)``.
    """
    torch = torch_module()
    component = f"fusion {name_of(build_fn)}"
    backbone_cls = backbone or _mean_backbone
    generator = torch.Generator().manual_seed(seed)
    item_vectors = torch.randn(num_items + 1, text_dim, generator=generator)  # (N + 1, E)
    item_vectors[0] = 0
    rationale_vectors = torch.randn(num_users, text_dim, generator=generator)  # (U, E)

    def build(build_seed: int = seed):
        torch.manual_seed(build_seed)
        return build_fn(
            backbone_cls(num_items, max_seq_len),
            num_users=num_users,
            num_items=num_items,
            item_vectors=item_vectors if with_item_vectors else None,
            rationale_vectors=rationale_vectors if with_rationale_vectors else None,
            **params,
        )

    model = build()
    if not isinstance(model, torch.nn.Module):
        raise fail(component, f"build returned a {type(model).__name__}, not an nn.Module")
    for method in ("forward", "item_matrix", "score_all", "add_user"):
        if not callable(getattr(model, method, None)):
            raise fail(component, f"the Recommender lacks {method}()",
                       "subclass slimkit.fusions.base.Recommender")

    lengths_list = [1, max_seq_len, 3 if max_seq_len >= 3 else 1]
    item_seq, lengths = tiny_batch(num_items, max_seq_len, lengths_list, seed=seed + 1)
    users = torch.tensor([0, num_users - 1, 1 % num_users])

    model.train()
    _shapes_and_backward(model, component, item_seq, lengths, users, num_items)
    model.eval()
    with torch.no_grad():
        first = _determinism_and_padding(model, component, item_seq, lengths, users,
                                         lengths_list)
    fresh = roundtrip(model, build, component)
    fresh.eval()
    with torch.no_grad():
        again = fresh.score_all(item_seq, lengths, users)
    if not close(first, again, atol=1e-4):
        raise fail(component, "a reloaded copy scores differently")
    checked = ["shapes", "backward", "determinism", "padding", "save/load"]
    supports = getattr(model, "supports_positions", None)
    if callable(supports) and supports():
        with torch.no_grad():
            _positions(model, component, item_seq, lengths, users, first)
        checked.append("forward_positions")
    with torch.no_grad():
        if _new_user(model, component, item_seq, lengths, users, text_dim, rationale_vectors):
            checked.append("add_user")
    return {"component": component, "dim": int(model.item_matrix().shape[-1]),
            "checked": checked}


def _shapes_and_backward(model, component: str, item_seq, lengths, users, num_items: int):
    """Shapes of ``forward``, ``item_matrix`` and ``score_all``; a finite loss and a gradient."""
    torch = torch_module()
    batch = item_seq.shape[0]
    users_out = model(item_seq, lengths, users)
    if not torch.is_tensor(users_out) or users_out.dim() != 2 or users_out.shape[0] != batch:
        raise fail(component, "forward(item_seq, lengths, users) must return (B, D)")
    dim = users_out.shape[-1]
    items_out = model.item_matrix()
    if tuple(items_out.shape) != (num_items + 1, dim):
        raise fail(
            component,
            f"item_matrix() returned {tuple(items_out.shape)}, expected (N + 1, D) = "
            f"{(num_items + 1, dim)}",
        )
    scores = model.score_all(item_seq, lengths, users)
    if tuple(scores.shape) != (batch, num_items + 1):
        raise fail(
            component,
            f"score_all returned {tuple(scores.shape)}, expected (B, N + 1) = "
            f"{(batch, num_items + 1)}",
        )
    targets = torch.randint(1, num_items + 1, (batch,), generator=torch.Generator().manual_seed(7))
    loss = torch.nn.functional.cross_entropy(scores, targets)
    if not torch.isfinite(loss):
        raise fail(component, "scores give a non-finite cross-entropy loss")
    loss.backward()
    if all(p.grad is None for p in model.parameters() if p.requires_grad):
        raise fail(component, "no parameter received a gradient from score_all")
    model.zero_grad(set_to_none=True)


def _determinism_and_padding(model, component: str, item_seq, lengths, users, lengths_list):
    """Eval-mode scores repeat exactly, and a row scores the same alone; returns the scores."""
    torch = torch_module()
    first = model.score_all(item_seq, lengths, users)
    if not torch.equal(first, model.score_all(item_seq, lengths, users)):
        raise fail(component, "two eval-mode score_all calls differ")
    for row, n in enumerate(lengths_list):
        alone = model.score_all(item_seq[row : row + 1, :n], lengths[row : row + 1],
                                users[row : row + 1])  # (1, N + 1)
        if not close(first[row : row + 1], alone, atol=1e-4):
            raise fail(
                component,
                f"row {row} scores differ alone and in a padded batch "
                f"(max diff {max_diff(first[row:row+1], alone):.2e})",
            )
    return first


def _positions(model, component: str, item_seq, lengths, users, first) -> None:
    """For the causal training mode: ``forward_positions`` is (B, L, D) and equals
    ``forward`` at each row's last real position; ``score_positions`` there equals
    ``score_all``."""
    torch = torch_module()
    batch, width = item_seq.shape
    whole = model(item_seq, lengths, users)  # (B, D)
    out = model.forward_positions(item_seq, lengths, users)
    if not torch.is_tensor(out) or tuple(out.shape) != (batch, width, whole.shape[-1]):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise fail(component, f"forward_positions returned {shape}, expected (B, L, D) = "
                   f"{(batch, width, whole.shape[-1])}")
    last = out[torch.arange(batch), lengths - 1]  # (B, D)
    if not close(whole, last, atol=1e-4):
        raise fail(
            component,
            "forward_positions at each row's last real position differs from forward "
            f"(max diff {max_diff(whole, last):.2e})",
            "build the per-position user vectors from the backbone's forward_positions and "
            "share user-level vectors (rationales) across positions",
        )
    where = torch.zeros(batch, width, dtype=torch.bool)
    where[torch.arange(batch), lengths - 1] = True  # (B, L): the last real positions
    scores = model.score_positions(item_seq, lengths, users, where)  # (B, N + 1)
    if not close(first, scores, atol=1e-4):
        raise fail(component, "score_positions at the last real positions differs from "
                   f"score_all (max diff {max_diff(first, scores):.2e})")
    # Leakage-free rationales (prompt.rationale_cut) pass users as (B, L): the table row
    # each position may read. Every row repeated along L must give the (B,) result.
    rows = users.unsqueeze(1).expand(batch, width)  # (B, L)
    hint = ("with prompt.rationale_cut, training passes users as (B, L), one table row per "
            "position: index user-level tables with users of either shape (see "
            "slimkit.fusions.slim)")
    try:
        per_row = model.forward_positions(item_seq, lengths, rows)
        per_row_scores = model.score_positions(item_seq, lengths, rows, where)
    except Exception as exc:  # a plugin's own error, reported as a check
        raise fail(component, f"forward_positions / score_positions with users of shape "
                   f"(B, L) raised {type(exc).__name__}: {exc}", hint) from exc
    if tuple(per_row.shape) != tuple(out.shape) or not close(out, per_row, atol=1e-4):
        raise fail(component, "forward_positions with users (B, L), each row's user repeated, "
                   "differs from users (B,)", hint)
    if not close(scores, per_row_scores, atol=1e-4):
        raise fail(component, "score_positions with users (B, L) differs from users (B,)", hint)


def _new_user(model, component: str, item_seq, lengths, users, text_dim: int,
              rationale_vectors) -> bool:
    """``add_user``: a new user with a known user's vector scores exactly like that user.

    A head whose scores do not depend on the user may refuse with a SlimkitError (then
    returns False); a head that uses per-user features must support it.
    """
    torch = torch_module()
    from slimkit.errors import SlimkitError

    known = int(users[1])
    row = slice(1, 2)
    before = model.score_all(item_seq[row], lengths[row], users[row])  # (1, N + 1)
    try:
        index = model.add_user(rationale_vectors[known].clone())
    except SlimkitError:
        other = torch.full_like(users[row], int(users[0]))
        if not torch.equal(before, model.score_all(item_seq[row], lengths[row], other)):
            raise fail(
                component,
                "scores depend on the user, but add_user raises: a new user cannot be "
                "scored (slimkit recommend --history)",
                "implement add_user(rationale_vector) -> int: transform the vector as the "
                "known users' rows and append it to the per-user table",
            ) from None
        return False
    if not isinstance(index, int) or index < 0:
        raise fail(component, f"add_user returned {index!r}, expected the new user's index")
    new = model.score_all(item_seq[row], lengths[row], torch.tensor([index]))
    if not close(before, new, atol=1e-5):
        raise fail(
            component,
            "a new user added with a known user's rationale vector scores differently "
            f"from that user (max diff {max_diff(before, new):.2e})",
            "apply to the new vector exactly the transform (e.g. standardisation with the "
            "known users' mean and scale) the known users' rows got",
        )
    still = model.score_all(item_seq[row], lengths[row], users[row])
    if not torch.equal(before, still):
        raise fail(component, "add_user changed the scores of a known user")
    return True
