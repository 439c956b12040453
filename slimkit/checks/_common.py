"""What every contract check shares: the error, tolerances, tiny inputs, a save/load trip.

torch is imported inside the functions only, so importing a check module stays light.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ATOL = 1e-5
RELOAD_SEED = 1_000_003  # a reloaded copy is built with another seed than the original


class ContractError(AssertionError):
    """A component breaks the contract of its kind; the message says what and how to fix."""


def fail(component: str, what: str, fix: str = "") -> ContractError:
    """The error to raise: ``"<component>: <what>"`` plus a ``fix:`` line when given."""
    return ContractError(f"{component}: {what}" + (f"\n  fix: {fix}" if fix else ""))


def name_of(obj: Any) -> str:
    """A readable name of a class, function or object for error messages."""
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def torch_module():
    """torch, set up the slimkit way (threads, quiet logs), imported on first use."""
    from slimkit.runtime import setup_torch

    return setup_torch()


def close(a, b, atol: float = ATOL) -> bool:
    """Same shape and equal within ``atol`` (and a small relative tolerance)."""
    torch = torch_module()
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def max_diff(a, b) -> float:
    """Largest absolute difference (inf when the shapes differ), for error messages."""
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max())


def roundtrip(module, rebuild: Callable[[int], Any], component: str):
    """A fresh module from ``rebuild(seed)`` holding ``module``'s weights, via safetensors."""
    torch = torch_module()
    from safetensors.torch import load_model, save_model

    if not module.state_dict():
        raise fail(component, "has no parameters or buffers in its state_dict")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            save_model(module, str(path))
        except Exception as exc:
            raise fail(
                component,
                f"cannot be saved with safetensors.torch.save_model: {exc}",
                "keep every parameter a plain tensor registered on the module",
            ) from exc
        fresh = rebuild(RELOAD_SEED)  # another seed: state must come from the file
        with torch.no_grad():  # make sure the load really replaces the weights
            for p in fresh.parameters():
                p.add_(0.5)
        missing, unexpected = load_model(fresh, str(path), strict=False)
        if missing or unexpected:
            raise fail(
                component,
                f"save/load round trip mismatched keys: missing {missing}, unexpected "
                f"{unexpected}",
                "build every submodule in __init__ from the constructor arguments only",
            )
    # torch.save must work as well (checkpoints of whole training states use it).
    torch.save(module.state_dict(), io.BytesIO())
    return fresh


# ---------------------------------------------------------------------------------------
# Tiny inputs
# ---------------------------------------------------------------------------------------
def tiny_batch(num_items: int, max_seq_len: int, lengths: Sequence[int], *, seed: int = 0):
    """``(item_seq (B, L), lengths (B,))``: random items 1..num_items, right-padded with 0.

    ``L`` is the longest length; every row holds ``lengths[b]`` real items.
    """
    torch = torch_module()
    if not lengths or min(lengths) < 1 or max(lengths) > max_seq_len:
        raise ValueError(f"lengths must be in 1..{max_seq_len}, got {list(lengths)}")
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    item_seq = torch.randint(1, num_items + 1, (len(lengths), width), generator=generator)
    for row, n in enumerate(lengths):
        item_seq[row, n:] = 0  # right padding
    return item_seq, torch.tensor(list(lengths), dtype=torch.long)


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
