"""Contract checks a component's own tests call: ``check_backbone(MyModel, hidden_size=16)``.

Each check builds the component at tiny sizes, exercises the contract of its kind
(``docs/architecture.md``) and raises :class:`ContractError` (an ``AssertionError``, so
pytest shows it as a failed test) naming what broke and how to fix it. On success a check
returns a small report dict (what was checked, sizes), handy for printing.

* :func:`check_backbone`: construction, ``item_embedding``/``hidden_size``, shapes,
  padding handling (padding columns and padded embeddings never change the output; a row
  alone equals the same row in a batch), ``encode_embedded``, backward, determinism in
  eval mode, save/load round trip through safetensors.
* :func:`check_fusion`: a fusion head's ``build(...)`` around a small backbone: the
  ``Recommender`` shapes, padding, backward, determinism, save/load.
* :func:`check_prompt`: a prompt template validates, renders chat messages holding the
  whole history, and (for teachers) asks for the three steps slimkit parses.
* :func:`check_encoder`: a text encoder returns one finite ``(n, E)`` float row per
  text, deterministically, independent of batch composition.
* :func:`check_teacher`: a teacher's ``teach(jobs, context)`` returns one well-formed
  ``rationales.jsonl`` row per job, in order, with three-step rationales.

torch is imported inside the checks only (``slimkit.runtime.setup_torch``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "ContractError",
    "check_backbone",
    "check_encoder",
    "check_fusion",
    "check_prompt",
    "check_teacher",
    "teacher_jobs",
    "tiny_batch",
    "tiny_dataset",
]

_ATOL = 1e-5
_RELOAD_SEED = 1_000_003  # a reloaded copy is built with another seed than the original


class ContractError(AssertionError):
    """A component breaks the contract of its kind; the message says what and how to fix."""


def _fail(component: str, what: str, fix: str = "") -> ContractError:
    return ContractError(f"{component}: {what}" + (f"\n  fix: {fix}" if fix else ""))


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
def tiny_batch(num_items: int, max_seq_len: int, lengths: Sequence[int], *, seed: int = 0):
    """``(item_seq (B, L), lengths (B,))``: random items 1..num_items, right-padded with 0.

    ``L`` is the longest length; every row holds ``lengths[b]`` real items.
    """
    torch = _torch()
    if not lengths or min(lengths) < 1 or max(lengths) > max_seq_len:
        raise ValueError(f"lengths must be in 1..{max_seq_len}, got {list(lengths)}")
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    item_seq = torch.randint(1, num_items + 1, (len(lengths), width), generator=generator)
    for row, n in enumerate(lengths):
        item_seq[row, n:] = 0  # right padding
    return item_seq, torch.tensor(list(lengths), dtype=torch.long)


def _torch():
    from slimkit.runtime import setup_torch

    return setup_torch()


def _close(a, b, atol: float = _ATOL) -> bool:
    torch = _torch()
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def _max_diff(a, b) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max())


def _roundtrip(module, rebuild: Callable[[int], Any], component: str):
    """A fresh module from ``rebuild()`` with ``module``'s weights, via safetensors bytes."""
    torch = _torch()
    from safetensors.torch import load_model, save_model

    buffer_state = {k: v for k, v in module.state_dict().items()}
    if not buffer_state:
        raise _fail(component, "has no parameters or buffers in its state_dict")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            save_model(module, str(path))
        except Exception as exc:
            raise _fail(
                component,
                f"cannot be saved with safetensors.torch.save_model: {exc}",
                "keep every parameter a plain tensor registered on the module",
            ) from exc
        fresh = rebuild(_RELOAD_SEED)  # another seed: state must come from the file
        with torch.no_grad():  # make sure the load really replaces the weights
            for p in fresh.parameters():
                p.add_(0.5)
        missing, unexpected = load_model(fresh, str(path), strict=False)
        if missing or unexpected:
            raise _fail(
                component,
                f"save/load round trip mismatched keys: missing {missing}, unexpected "
                f"{unexpected}",
                "build every submodule in __init__ from the constructor arguments only",
            )
    # torch.save must work as well (checkpoints of whole training states use it).
    torch.save(module.state_dict(), io.BytesIO())
    return fresh


# ---------------------------------------------------------------------------------------
# Backbones
# ---------------------------------------------------------------------------------------
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
    Raises :class:`ContractError` on the first broken rule.
    """
    torch = _torch()
    nn = torch.nn
    component = f"backbone {_name(cls)}"

    def build(build_seed: int = seed):
        torch.manual_seed(build_seed)
        return cls(num_items, max_seq_len, **params)

    try:
        model = build()
    except TypeError as exc:
        raise _fail(
            component,
            f"cannot be built as cls(num_items, max_seq_len, **params): {exc}",
            "accept (num_items, max_seq_len) positionally and every Params field as a keyword",
        ) from exc
    if not isinstance(model, nn.Module):
        raise _fail(component, f"built a {type(model).__name__}, not a torch.nn.Module")

    hidden = getattr(model, "hidden_size", None)
    if not isinstance(hidden, int) or hidden < 1:
        raise _fail(component, f"hidden_size must be a positive int, got {hidden!r}")
    emb = getattr(model, "item_embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise _fail(
            component,
            "has no item_embedding nn.Embedding",
            "add self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)",
        )
    if (emb.num_embeddings, emb.embedding_dim, emb.padding_idx) != (num_items + 1, hidden, 0):
        raise _fail(
            component,
            f"item_embedding is Embedding({emb.num_embeddings}, {emb.embedding_dim}, "
            f"padding_idx={emb.padding_idx}); expected Embedding({num_items + 1}, {hidden}, "
            "padding_idx=0)",
            "row 0 is padding and rows 1..num_items are the items",
        )

    # Narrower than max_seq_len (so extra padding columns can be added); full-length rows
    # are checked separately below.
    widest = max(1, max_seq_len - 1)
    lengths_list = [1, widest, max(1, widest // 2), min(2, widest)]
    item_seq, lengths = tiny_batch(num_items, max_seq_len, lengths_list, seed=seed + 1)
    batch = len(lengths_list)

    # -- shapes (train mode, then eval) -------------------------------------------------
    model.train()
    out = model(item_seq, lengths)
    if not torch.is_tensor(out) or tuple(out.shape) != (batch, hidden):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise _fail(component, f"forward returned {shape}, expected (B, D) = {(batch, hidden)}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise _fail(component, "forward returned non-finite or non-float values")

    # -- backward -------------------------------------------------------------------------
    targets = torch.randint(1, num_items + 1, (batch,), generator=torch.Generator().manual_seed(7))
    logits = out @ model.item_embedding.weight.T  # (B, N + 1)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not grads or all(g is None for g in grads):
        raise _fail(component, "no parameter received a gradient from a cross-entropy loss")
    if any(g is not None and not torch.isfinite(g).all() for g in grads):
        raise _fail(component, "a gradient is not finite after one backward pass")
    model.zero_grad(set_to_none=True)

    # -- eval: determinism and padding ------------------------------------------------
    model.eval()
    with torch.no_grad():
        first = model(item_seq, lengths)
        second = model(item_seq, lengths)
        if not torch.equal(first, second):
            raise _fail(
                component,
                f"two eval-mode forwards differ (max diff {_max_diff(first, second):.2e})",
                "use randomness (dropout, sampling) only when self.training is True",
            )
        checked = ["construction", "item_embedding", "shapes", "backward", "determinism"]

        # Extra padding columns never change the output.
        width = item_seq.shape[1]
        if width < max_seq_len:
            padded = torch.cat(
                [item_seq, torch.zeros(batch, max_seq_len - width, dtype=item_seq.dtype)], dim=1
            )  # (B, max_seq_len)
            wider = model(padded, lengths)
            if not _close(first, wider):
                raise _fail(
                    component,
                    "extra padding columns changed the output "
                    f"(max diff {_max_diff(first, wider):.2e})",
                    "mask padded positions (key_padding_mask, pack_padded_sequence, or "
                    "gather the last real position with `lengths`)",
                )
        # A row alone equals the same row inside a batch of longer rows.
        for row, n in enumerate(lengths_list):
            alone = model(item_seq[row : row + 1, :n], lengths[row : row + 1])  # (1, D)
            if not _close(first[row : row + 1], alone):
                raise _fail(
                    component,
                    f"row {row} (length {n}) differs alone and in a batch "
                    f"(max diff {_max_diff(first[row:row+1], alone):.2e})",
                    "the output of a row must depend on its own real items only",
                )
        # Full-length rows (length == max_seq_len) beside a short one.
        full_seq, full_lengths = tiny_batch(num_items, max_seq_len, [max_seq_len, 1], seed=seed + 2)
        full = model(full_seq, full_lengths)  # (2, D)
        if tuple(full.shape) != (2, hidden) or not torch.isfinite(full).all():
            raise _fail(component, f"a full-length batch (L = max_seq_len = {max_seq_len}) "
                        "gave a wrong shape or non-finite values")
        for row, n in enumerate([max_seq_len, 1]):
            alone = model(full_seq[row : row + 1, :n], full_lengths[row : row + 1])
            if not _close(full[row : row + 1], alone):
                raise _fail(component, f"row {row} of a full-length batch differs alone "
                            f"(max diff {_max_diff(full[row:row+1], alone):.2e})")
        checked.append("padding")

        # encode_embedded, when offered: same as forward on ID embeddings, and embeddings
        # at padded positions (fusion heads may put non-zero vectors there) are ignored.
        encode_embedded = getattr(model, "encode_embedded", None)
        if encode_embedded is not None:
            embedded = model.item_embedding(item_seq)  # (B, L, D)
            via_embedded = encode_embedded(embedded, item_seq, lengths)
            if tuple(via_embedded.shape) != (batch, hidden):
                raise _fail(
                    component,
                    f"encode_embedded returned {tuple(via_embedded.shape)}, expected "
                    f"{(batch, hidden)}",
                )
            if not _close(first, via_embedded):
                raise _fail(
                    component,
                    "encode_embedded(item_embedding(item_seq), ...) differs from forward "
                    f"(max diff {_max_diff(first, via_embedded):.2e})",
                    "make forward(item_seq, lengths) call encode_embedded(self.item_embedding("
                    "item_seq), item_seq, lengths)",
                )
            noise = torch.randn(embedded.shape, generator=torch.Generator().manual_seed(3))
            is_pad = (item_seq == 0).unsqueeze(-1)  # (B, L, 1)
            dirty = torch.where(is_pad, noise, embedded)  # (B, L, D)
            via_dirty = encode_embedded(dirty, item_seq, lengths)
            if not _close(first, via_dirty):
                raise _fail(
                    component,
                    "encode_embedded's output changed when padded positions held non-zero "
                    f"vectors (max diff {_max_diff(first, via_dirty):.2e})",
                    "zero or mask padded positions of `emb` (item_seq == 0) before using them",
                )
            checked.append("encode_embedded")

    # -- save / load ----------------------------------------------------------------------
    fresh = _roundtrip(model, build, component)
    fresh.eval()
    with torch.no_grad():
        again = fresh(item_seq, lengths)
    if not _close(first, again):
        raise _fail(
            component,
            f"a reloaded copy gives other outputs (max diff {_max_diff(first, again):.2e})",
            "keep all state in parameters or registered buffers",
        )
    checked.append("save/load")
    return {
        "component": component,
        "num_items": num_items,
        "max_seq_len": max_seq_len,
        "hidden_size": hidden,
        "parameters": sum(p.numel() for p in model.parameters()),
        "checked": checked,
    }


class _MeanBackbone:
    """Factory of a tiny reference backbone (mean of item embeddings), used by check_fusion."""

    def __new__(cls, num_items: int, max_seq_len: int, hidden_size: int = 8):
        torch = _torch()
        nn = torch.nn

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


# ---------------------------------------------------------------------------------------
# Fusion heads
# ---------------------------------------------------------------------------------------
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
    torch = _torch()
    component = f"fusion {_name(build_fn)}"
    backbone_cls = backbone or _MeanBackbone
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
        raise _fail(component, f"build returned a {type(model).__name__}, not an nn.Module")
    for method in ("forward", "item_matrix", "score_all"):
        if not callable(getattr(model, method, None)):
            raise _fail(component, f"the Recommender lacks {method}()")

    lengths_list = [1, max_seq_len, 3 if max_seq_len >= 3 else 1]
    item_seq, lengths = tiny_batch(num_items, max_seq_len, lengths_list, seed=seed + 1)
    users = torch.tensor([0, num_users - 1, 1 % num_users])
    batch = len(lengths_list)

    model.train()
    users_out = model(item_seq, lengths, users)
    dim = users_out.shape[-1] if torch.is_tensor(users_out) else None
    if not torch.is_tensor(users_out) or users_out.dim() != 2 or users_out.shape[0] != batch:
        raise _fail(component, "forward(item_seq, lengths, users) must return (B, D)")
    items_out = model.item_matrix()
    if tuple(items_out.shape) != (num_items + 1, dim):
        raise _fail(
            component,
            f"item_matrix() returned {tuple(items_out.shape)}, expected (N + 1, D) = "
            f"{(num_items + 1, dim)}",
        )
    scores = model.score_all(item_seq, lengths, users)
    if tuple(scores.shape) != (batch, num_items + 1):
        raise _fail(
            component,
            f"score_all returned {tuple(scores.shape)}, expected (B, N + 1) = "
            f"{(batch, num_items + 1)}",
        )
    targets = torch.randint(1, num_items + 1, (batch,), generator=torch.Generator().manual_seed(7))
    loss = torch.nn.functional.cross_entropy(scores, targets)
    if not torch.isfinite(loss):
        raise _fail(component, "scores give a non-finite cross-entropy loss")
    loss.backward()
    if all(p.grad is None for p in model.parameters() if p.requires_grad):
        raise _fail(component, "no parameter received a gradient from score_all")
    model.zero_grad(set_to_none=True)

    model.eval()
    with torch.no_grad():
        first = model.score_all(item_seq, lengths, users)
        if not torch.equal(first, model.score_all(item_seq, lengths, users)):
            raise _fail(component, "two eval-mode score_all calls differ")
        for row, n in enumerate(lengths_list):
            alone = model.score_all(item_seq[row : row + 1, :n], lengths[row : row + 1],
                                    users[row : row + 1])  # (1, N + 1)
            if not _close(first[row : row + 1], alone, atol=1e-4):
                raise _fail(
                    component,
                    f"row {row} scores differ alone and in a padded batch "
                    f"(max diff {_max_diff(first[row:row+1], alone):.2e})",
                )
    fresh = _roundtrip(model, build, component)
    fresh.eval()
    with torch.no_grad():
        again = fresh.score_all(item_seq, lengths, users)
    if not _close(first, again, atol=1e-4):
        raise _fail(component, "a reloaded copy scores differently")
    return {
        "component": component,
        "dim": int(dim),
        "checked": ["shapes", "backward", "determinism", "padding", "save/load"],
    }


# ---------------------------------------------------------------------------------------
# Prompt templates
# ---------------------------------------------------------------------------------------
_SAMPLE_HISTORY = [
    "The Legend of Zelda: Breath of the Wild; Games > Switch; Nintendo",
    "Mario Kart 8 Deluxe; Games > Switch; Nintendo",
    "Pro Controller; Accessories > Controllers; Nintendo",
]


def check_prompt(template: Any, *, role: str | None = None) -> dict[str, Any]:
    """Check a prompt template (``slimkit.prompts.PromptTemplate`` or alike).

    ``role`` is ``"teacher"``, ``"student"`` or ``None`` (both). A teacher template must
    ask for "Step 1", "Step 2" and "Step 3": slimkit parses rationales into three steps.
    """
    component = f"prompt template {getattr(template, 'name', template)!r}"
    roles = [role] if role else ["teacher", "student"]
    if not isinstance(getattr(template, "name", None), str) or not template.name:
        raise _fail(component, "has no name")
    for needed in ("render", "validate_for", "variables"):
        if not callable(getattr(template, needed, None)):
            raise _fail(
                component, f"lacks {needed}()", "register a slimkit.prompts.PromptTemplate"
            )
    for each in roles:
        problems = template.validate_for(each)
        if problems:
            raise _fail(component, f"is not valid for the {each}: {'; '.join(problems)}")
    messages = template.render(_SAMPLE_HISTORY)
    if not isinstance(messages, list) or not messages:
        raise _fail(component, "render() must return a non-empty list of chat messages")
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
            or not message["content"].strip()
        ):
            raise _fail(component, f"render() produced a malformed message: {message!r}")
    if messages[-1]["role"] != "user":
        raise _fail(component, "the last rendered message must be the user's")
    text = "\n".join(m["content"] for m in messages)
    for item in _SAMPLE_HISTORY:
        if item not in text:
            raise _fail(component, f"the rendered prompt lacks the history item {item!r}")
    if _SAMPLE_HISTORY[-1] not in text.split(_SAMPLE_HISTORY[0], 1)[-1]:
        raise _fail(component, "history items must appear oldest first, most recent last")
    leftovers = sorted(set(template.variables()) & {"history", "num_items"})
    for var in leftovers:
        if "{" + var + "}" in text:
            raise _fail(component, f"{{{var}}} was not filled in")
    if "teacher" in roles:
        missing = [f"Step {k}" for k in (1, 2, 3) if f"step {k}" not in text.lower()]
        if missing:
            raise _fail(
                component,
                f"a teacher template must ask for the three steps; it never says "
                f"{', '.join(missing)}",
                'ask the model to start lines with "Step 1:", "Step 2:" and "Step 3:"; '
                "slimkit.rationale.parse_steps splits answers on them",
            )
    return {"component": component, "roles": roles, "messages": len(messages)}


# ---------------------------------------------------------------------------------------
# Text encoders
# ---------------------------------------------------------------------------------------
_SAMPLE_TEXTS = [
    "Step 1: The user likes open-world adventure games. Step 2: Nintendo. Step 3: Zelda.",
    "Organic green tea; Grocery > Tea; Yogi",
    "Cast iron skillet 12 inch; Home & Kitchen > Cookware; Lodge",
    "",
]


def _encode(encoder: Any, texts: list[str]):
    import numpy as np

    fn = encoder if callable(encoder) and not hasattr(encoder, "encode") else encoder.encode
    out = fn(texts)
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out)


def check_encoder(encoder: Any, *, texts: Sequence[str] | None = None,
                  atol: float = 1e-4) -> dict[str, Any]:
    """Check a text encoder: ``encoder.encode(texts)`` (or ``encoder(texts)``) -> ``(n, E)``.

    Rows must be finite floats, one per text, identical across calls, and a text's row
    must not depend on which other texts share its batch. Empty texts must work (items
    without metadata have empty text).
    """
    import numpy as np

    component = f"encoder {type(encoder).__name__}"
    texts = list(texts) if texts is not None else list(_SAMPLE_TEXTS)
    vectors = _encode(encoder, texts)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] < 1:
        raise _fail(component, f"encode returned shape {vectors.shape}, expected (n, E) with "
                    f"n = {len(texts)}")
    if not np.issubdtype(vectors.dtype, np.floating) or not np.isfinite(vectors).all():
        raise _fail(component, "encode returned non-finite or non-float values")
    again = _encode(encoder, texts)
    if not np.allclose(vectors, again, atol=atol):
        raise _fail(component, "two encode calls on the same texts differ")
    reversed_rows = _encode(encoder, texts[::-1])[::-1]
    if not np.allclose(vectors, reversed_rows, atol=atol):
        raise _fail(component, "a text's vector depends on its position in the batch")
    single = _encode(encoder, texts[:1])
    if single.shape != (1, vectors.shape[1]) or not np.allclose(single[0], vectors[0], atol=atol):
        raise _fail(component, "a text's vector depends on the other texts in its batch "
                    "(encoding it alone gives another vector)")
    if len(texts) > 1 and np.allclose(vectors[0], vectors[1], atol=atol):
        raise _fail(component, "different texts got the same vector")
    dim = getattr(encoder, "dim", None)
    if isinstance(dim, int) and dim != vectors.shape[1]:
        raise _fail(component, f"dim says {dim} but vectors have {vectors.shape[1]} columns")
    return {"component": component, "dim": int(vectors.shape[1]), "texts": len(texts)}


# ---------------------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------------------
_ROW_FIELDS = {
    "user": str, "user_index": int, "messages": list, "rationale": str, "well_formed": bool,
    "model": str, "prompt_tokens": int, "completion_tokens": int, "latency_s": (int, float),
    "status": str,
}


def tiny_dataset(num_users: int = 6, num_items: int = 12, *, min_len: int = 4,
                 max_len: int = 9, seed: int = 0):
    """A small :class:`~slimkit.data.dataset.PreparedDataset` with item texts (for checks)."""
    import numpy as np

    from slimkit.data.dataset import PreparedDataset

    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=num_users)
    items = np.concatenate(
        [rng.choice(np.arange(1, num_items + 1), size=n, replace=n > num_items) for n in lengths]
    ).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    brands = ["Nintendo", "Yogi", "Lodge", "Sony"]
    titles = [""] + [f"Item {i}" for i in range(1, num_items + 1)]
    texts = [""] + [f"Item {i}; Category {i % 3}; {brands[i % len(brands)]}"
                    for i in range(1, num_items + 1)]
    return PreparedDataset(
        name="tiny",
        user_ids=[f"u{u}" for u in range(num_users)],
        item_ids=[""] + [f"i{i}" for i in range(1, num_items + 1)],
        offsets=offsets,
        items=items,
        timestamps=np.arange(len(items), dtype=np.int64),
        item_text=texts,
        item_titles=titles,
        has_text=np.ones(num_items + 1, dtype=bool),
        max_seq_len=max_len,
    )


def teacher_jobs(dataset: Any, template: Any = None, users: Sequence[int] | None = None):
    """:class:`~slimkit.teachers.base.TeacherJob` per user, from items before the targets."""
    from slimkit.teachers.base import TeacherJob

    if template is None:
        from slimkit.prompts import slim_cot as template
    jobs = []
    for user in users if users is not None else range(dataset.num_users):
        history = tuple(int(i) for i in dataset.train_items(user))
        jobs.append(TeacherJob(
            user_index=int(user),
            user=dataset.user_ids[user],
            messages=template.render([dataset.item_text[i] for i in history]),
            history=history,
        ))
    return jobs


def check_teacher(teacher: Any, *, dataset: Any = None, template: Any = None,
                  min_well_formed: float = 1.0) -> dict[str, Any]:
    """Check a teacher's ``teach(jobs, context) -> rows`` on a tiny dataset.

    One ``rationales.jsonl`` row per job, in order, with the fields docs/architecture.md
    lists; ``steps``/``well_formed`` must agree with :func:`slimkit.rationale.parse_steps`
    of the rationale; at least ``min_well_formed`` of the rows must be well formed.
    """
    from slimkit.rationale import parse_steps
    from slimkit.teachers.base import Progress, TeachContext

    component = f"teacher {type(teacher).__name__}"
    dataset = dataset if dataset is not None else tiny_dataset()
    jobs = teacher_jobs(dataset, template)
    context = TeachContext(dataset=dataset, records=None,
                           progress=Progress(len(jobs), "check", enabled=False))
    rows = list(teacher.teach(jobs, context))
    if len(rows) != len(jobs):
        raise _fail(component, f"returned {len(rows)} rows for {len(jobs)} jobs")
    for job, row in zip(jobs, rows):
        if not isinstance(row, dict):
            raise _fail(component, f"rows must be dicts, got {type(row).__name__}",
                        "build rows with slimkit.teachers.base.make_row")
        for key, kind in _ROW_FIELDS.items():
            if not isinstance(row.get(key), kind):
                raise _fail(component, f"row for user {job.user} has {key}={row.get(key)!r}",
                            "build rows with slimkit.teachers.base.make_row")
        if (row["user_index"], row["user"]) != (job.user_index, job.user):
            raise _fail(component, "rows must come back in the order of the jobs")
        if row["status"] not in ("done", "failed"):
            raise _fail(component, f"status must be done or failed, got {row['status']!r}")
        steps = parse_steps(row["rationale"]) if row["status"] == "done" else None
        if row["well_formed"] != (steps is not None):
            raise _fail(component, f"well_formed={row['well_formed']} disagrees with "
                        f"parse_steps for {row['rationale'][:120]!r}")
    share = sum(bool(r["well_formed"]) for r in rows) / len(rows)
    if share < min_well_formed:
        bad = next(r for r in rows if not r["well_formed"])
        raise _fail(
            component,
            f"only {share:.0%} of rationales have three steps (need {min_well_formed:.0%}); "
            f"e.g. {bad['rationale'][:200]!r}",
            'answer with lines starting "Step 1:", "Step 2:", "Step 3:"',
        )
    return {"component": component, "rows": len(rows), "well_formed": share}
