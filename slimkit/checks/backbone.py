"""``check_backbone``: a backbone class against slimkit's backbone contract, at tiny sizes.

The contract (``slimkit.plugins.Backbone``): ``cls(num_items, max_seq_len, **params)``
builds an ``nn.Module`` with ``item_embedding`` (``nn.Embedding(num_items + 1,
hidden_size, padding_idx=0)``), ``hidden_size`` and ``forward(item_seq (B, L), lengths
(B,)) -> (B, hidden_size)``; optionally ``encode_embedded(emb (B, L, D), item_seq,
lengths) -> (B, D)`` and, for the causal training mode, ``forward_positions(item_seq,
lengths) -> (B, L, D)`` (+ ``encode_embedded_positions``). Each rule is one sub-check
below, run in order by :func:`check_backbone`.
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

__all__ = ["check_backbone"]


def check_backbone(
    cls: Callable[..., Any],
    *,
    num_items: int = 23,
    max_seq_len: int = 8,
    seed: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Check a backbone class against slimkit's backbone contract at tiny sizes.

    ``cls(num_items, max_seq_len, **params)`` must build an ``nn.Module`` with
    ``item_embedding`` (``nn.Embedding(num_items + 1, hidden_size, padding_idx=0)``),
    ``hidden_size`` and ``forward(item_seq (B, L), lengths (B,)) -> (B, hidden_size)``.
    A backbone with ``forward_positions`` (per-position output, for ``train.mode:
    causal``) is also checked for causality (a later item never changes an earlier
    position), padding independence and last position == ``forward``; with
    ``encode_embedded_positions`` too, that it equals ``forward_positions`` on ID
    embeddings and ignores vectors at padded positions.
    Raises :class:`ContractError` on the first broken rule; returns a report dict.
    """
    torch = torch_module()
    component = f"backbone {name_of(cls)}"

    def build(build_seed: int = seed):
        torch.manual_seed(build_seed)
        return cls(num_items, max_seq_len, **params)

    model = _construction(build, component)
    hidden = _embedding_and_size(model, component, num_items)

    # Narrower than max_seq_len (so extra padding columns can be added); full-length rows
    # are checked separately.
    widest = max(1, max_seq_len - 1)
    lengths_list = [1, widest, max(1, widest // 2), min(2, widest)]
    item_seq, lengths = tiny_batch(num_items, max_seq_len, lengths_list, seed=seed + 1)

    model.train()
    out = _shapes(model, component, item_seq, lengths, hidden)
    _backward(model, component, out, num_items)
    checked = ["construction", "item_embedding", "shapes", "backward", "determinism"]
    model.eval()
    with torch.no_grad():
        first = _determinism(model, component, item_seq, lengths)
        _padding_columns(model, component, item_seq, lengths, first, max_seq_len)
        _rows_alone(model, component, item_seq, lengths, first, lengths_list)
        _full_length_rows(model, component, num_items, max_seq_len, hidden, seed)
        checked.append("padding")
        if getattr(model, "encode_embedded", None) is not None:
            _encode_embedded(model, component, item_seq, lengths, first, hidden)
            checked.append("encode_embedded")
        if getattr(model, "forward_positions", None) is not None:
            _positions(model, component, item_seq, lengths, first, hidden, max_seq_len, num_items)
            checked.append("forward_positions")
            if getattr(model, "encode_embedded_positions", None) is not None:
                _embedded_positions(model, component, item_seq, lengths)
                checked.append("encode_embedded_positions")
    _save_load(model, build, component, item_seq, lengths, first)
    checked.append("save/load")
    return {
        "component": component,
        "num_items": num_items,
        "max_seq_len": max_seq_len,
        "hidden_size": hidden,
        "parameters": sum(p.numel() for p in model.parameters()),
        "checked": checked,
    }


def _construction(build: Callable[[], Any], component: str):
    """``cls(num_items, max_seq_len, **params)`` builds an ``nn.Module``."""
    torch = torch_module()
    try:
        model = build()
    except TypeError as exc:
        raise fail(
            component,
            f"cannot be built as cls(num_items, max_seq_len, **params): {exc}",
            "accept (num_items, max_seq_len) positionally and every Params field as a keyword",
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise fail(component, f"built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _embedding_and_size(model, component: str, num_items: int) -> int:
    """A positive ``hidden_size`` and ``item_embedding = Embedding(N + 1, D, padding_idx=0)``."""
    nn = torch_module().nn
    hidden = getattr(model, "hidden_size", None)
    if not isinstance(hidden, int) or hidden < 1:
        raise fail(component, f"hidden_size must be a positive int, got {hidden!r}")
    emb = getattr(model, "item_embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise fail(
            component,
            "has no item_embedding nn.Embedding",
            "add self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)",
        )
    if (emb.num_embeddings, emb.embedding_dim, emb.padding_idx) != (num_items + 1, hidden, 0):
        raise fail(
            component,
            f"item_embedding is Embedding({emb.num_embeddings}, {emb.embedding_dim}, "
            f"padding_idx={emb.padding_idx}); expected Embedding({num_items + 1}, {hidden}, "
            "padding_idx=0)",
            "row 0 is padding and rows 1..num_items are the items",
        )
    return hidden


def _shapes(model, component: str, item_seq, lengths, hidden: int):
    """``forward`` returns finite floats of shape ``(B, D)`` (train mode); returns them."""
    torch = torch_module()
    batch = item_seq.shape[0]
    out = model(item_seq, lengths)
    if not torch.is_tensor(out) or tuple(out.shape) != (batch, hidden):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise fail(component, f"forward returned {shape}, expected (B, D) = {(batch, hidden)}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise fail(component, "forward returned non-finite or non-float values")
    return out


def _backward(model, component: str, out, num_items: int) -> None:
    """A cross-entropy loss of ``out`` (B, D) over item embeddings gives finite gradients."""
    torch = torch_module()
    batch = out.shape[0]
    targets = torch.randint(1, num_items + 1, (batch,), generator=torch.Generator().manual_seed(7))
    logits = out @ model.item_embedding.weight.T  # (B, N + 1)
    torch.nn.functional.cross_entropy(logits, targets).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not grads or all(g is None for g in grads):
        raise fail(component, "no parameter received a gradient from a cross-entropy loss")
    if any(g is not None and not torch.isfinite(g).all() for g in grads):
        raise fail(component, "a gradient is not finite after one backward pass")
    model.zero_grad(set_to_none=True)


def _determinism(model, component: str, item_seq, lengths):
    """Two eval-mode forwards are equal; returns the output ``(B, D)``."""
    torch = torch_module()
    first = model(item_seq, lengths)
    second = model(item_seq, lengths)
    if not torch.equal(first, second):
        raise fail(
            component,
            f"two eval-mode forwards differ (max diff {max_diff(first, second):.2e})",
            "use randomness (dropout, sampling) only when self.training is True",
        )
    return first


def _padding_columns(model, component: str, item_seq, lengths, first, max_seq_len: int) -> None:
    """Extra padding columns never change the output."""
    torch = torch_module()
    batch, width = item_seq.shape
    if width >= max_seq_len:
        return
    padded = torch.cat(
        [item_seq, torch.zeros(batch, max_seq_len - width, dtype=item_seq.dtype)], dim=1
    )  # (B, max_seq_len)
    wider = model(padded, lengths)
    if not close(first, wider):
        raise fail(
            component,
            f"extra padding columns changed the output (max diff {max_diff(first, wider):.2e})",
            "mask padded positions (key_padding_mask, pack_padded_sequence, or "
            "gather the last real position with `lengths`)",
        )


def _rows_alone(model, component: str, item_seq, lengths, first, lengths_list) -> None:
    """A row alone equals the same row inside a batch of longer rows."""
    for row, n in enumerate(lengths_list):
        alone = model(item_seq[row : row + 1, :n], lengths[row : row + 1])  # (1, D)
        if not close(first[row : row + 1], alone):
            raise fail(
                component,
                f"row {row} (length {n}) differs alone and in a batch "
                f"(max diff {max_diff(first[row:row+1], alone):.2e})",
                "the output of a row must depend on its own real items only",
            )


def _full_length_rows(model, component: str, num_items: int, max_seq_len: int, hidden: int,
                      seed: int) -> None:
    """Rows of length ``max_seq_len`` beside a short one: right shape, same alone."""
    torch = torch_module()
    full_seq, full_lengths = tiny_batch(num_items, max_seq_len, [max_seq_len, 1], seed=seed + 2)
    full = model(full_seq, full_lengths)  # (2, D)
    if tuple(full.shape) != (2, hidden) or not torch.isfinite(full).all():
        raise fail(component, f"a full-length batch (L = max_seq_len = {max_seq_len}) "
                   "gave a wrong shape or non-finite values")
    for row, n in enumerate([max_seq_len, 1]):
        alone = model(full_seq[row : row + 1, :n], full_lengths[row : row + 1])
        if not close(full[row : row + 1], alone):
            raise fail(component, f"row {row} of a full-length batch differs alone "
                       f"(max diff {max_diff(full[row:row+1], alone):.2e})")


def _encode_embedded(model, component: str, item_seq, lengths, first, hidden: int) -> None:
    """``encode_embedded`` equals ``forward`` on ID embeddings and ignores vectors at padded
    positions (fusion heads may put non-zero vectors there)."""
    torch = torch_module()
    batch = item_seq.shape[0]
    embedded = model.item_embedding(item_seq)  # (B, L, D)
    via_embedded = model.encode_embedded(embedded, item_seq, lengths)
    if tuple(via_embedded.shape) != (batch, hidden):
        raise fail(
            component,
            f"encode_embedded returned {tuple(via_embedded.shape)}, expected {(batch, hidden)}",
        )
    if not close(first, via_embedded):
        raise fail(
            component,
            "encode_embedded(item_embedding(item_seq), ...) differs from forward "
            f"(max diff {max_diff(first, via_embedded):.2e})",
            "make forward(item_seq, lengths) call encode_embedded(self.item_embedding("
            "item_seq), item_seq, lengths)",
        )
    noise = torch.randn(embedded.shape, generator=torch.Generator().manual_seed(3))
    is_pad = (item_seq == 0).unsqueeze(-1)  # (B, L, 1)
    dirty = torch.where(is_pad, noise, embedded)  # (B, L, D)
    via_dirty = model.encode_embedded(dirty, item_seq, lengths)
    if not close(first, via_dirty):
        raise fail(
            component,
            "encode_embedded's output changed when padded positions held non-zero "
            f"vectors (max diff {max_diff(first, via_dirty):.2e})",
            "zero or mask padded positions of `emb` (item_seq == 0) before using them",
        )


def _real_positions(lengths, width: int):
    """(B, L) bool: positions holding real items."""
    torch = torch_module()
    return torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)


def _positions(model, component: str, item_seq, lengths, first, hidden: int, max_seq_len: int,
               num_items: int) -> None:
    """``forward_positions``: shape (B, L, D); the last real position equals ``forward``;
    extra padding columns change no real position; causality (changing the item at
    position p changes no position before p)."""
    torch = torch_module()
    batch, width = item_seq.shape
    out = model.forward_positions(item_seq, lengths)
    if not torch.is_tensor(out) or tuple(out.shape) != (batch, width, hidden):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise fail(component, f"forward_positions returned {shape}, expected (B, L, D) = "
                   f"{(batch, width, hidden)}")
    real = _real_positions(lengths, width)  # (B, L)
    if not torch.isfinite(out[real]).all():
        raise fail(component, "forward_positions returned non-finite values at real positions")
    last = out[torch.arange(batch), lengths - 1]  # (B, D)
    if not close(first, last):
        raise fail(
            component,
            "forward_positions at each row's last real position differs from forward "
            f"(max diff {max_diff(first, last):.2e})",
            "forward(s, n) must be the per-position output at position n - 1 (gather it)",
        )
    if width < max_seq_len:
        padded = torch.cat(
            [item_seq, torch.zeros(batch, max_seq_len - width, dtype=item_seq.dtype)], dim=1
        )  # (B, max_seq_len)
        wider = model.forward_positions(padded, lengths)[:, :width]  # (B, L, D)
        if not close(out[real], wider[real]):
            raise fail(
                component,
                "extra padding columns changed forward_positions at real positions "
                f"(max diff {max_diff(out[real], wider[real]):.2e})",
                "position t must depend on items 0..t only (causal attention / a left-to-"
                "right RNN), never on padding",
            )
    # Causality: replace the item at position p of every row long enough; positions < p
    # must not move, and the items at positions >= p are free to change.
    for p in range(1, width):
        rows = lengths > p  # (B,) rows with a real item at p
        if not bool(rows.any()):
            continue
        changed = item_seq.clone()
        changed[rows, p] = item_seq[rows, p] % num_items + 1  # another real item
        after = model.forward_positions(changed, lengths)
        before_p = real.clone()
        before_p[:, p:] = False  # (B, L) real positions before p
        if not close(out[before_p], after[before_p]):
            raise fail(
                component,
                f"changing the item at position {p} changed an earlier position's output "
                f"(max diff {max_diff(out[before_p], after[before_p]):.2e}): not causal",
                "use a causal attention mask (is_causal=True) or a left-to-right RNN; a "
                "bidirectional backbone must not define forward_positions (it trains per "
                "prefix)",
            )


def _embedded_positions(model, component: str, item_seq, lengths) -> None:
    """``encode_embedded_positions`` equals ``forward_positions`` on ID embeddings and
    ignores vectors at padded positions."""
    torch = torch_module()
    real = _real_positions(lengths, item_seq.shape[1])  # (B, L)
    out = model.forward_positions(item_seq, lengths)
    embedded = model.item_embedding(item_seq)  # (B, L, D)
    via = model.encode_embedded_positions(embedded, item_seq, lengths)
    if tuple(via.shape) != tuple(out.shape) or not close(out[real], via[real]):
        raise fail(
            component,
            "encode_embedded_positions(item_embedding(item_seq), ...) differs from "
            "forward_positions",
            "make forward_positions call encode_embedded_positions(self.item_embedding("
            "item_seq), item_seq, lengths)",
        )
    noise = torch.randn(embedded.shape, generator=torch.Generator().manual_seed(5))
    dirty = torch.where((item_seq == 0).unsqueeze(-1), noise, embedded)  # (B, L, D)
    via_dirty = model.encode_embedded_positions(dirty, item_seq, lengths)
    if not close(out[real], via_dirty[real]):
        raise fail(
            component,
            "encode_embedded_positions changed at real positions when padded positions "
            f"held non-zero vectors (max diff {max_diff(out[real], via_dirty[real]):.2e})",
            "zero or mask padded positions of `emb` before using them",
        )


def _save_load(model, build, component: str, item_seq, lengths, first) -> None:
    """A copy built with another seed and loaded from safetensors gives the same outputs."""
    torch = torch_module()
    fresh = roundtrip(model, build, component)
    fresh.eval()
    with torch.no_grad():
        again = fresh(item_seq, lengths)
    if not close(first, again):
        raise fail(
            component,
            f"a reloaded copy gives other outputs (max diff {max_diff(first, again):.2e})",
            "keep all state in parameters or registered buffers",
        )
