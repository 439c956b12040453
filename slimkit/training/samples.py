"""Training and evaluation samples as views into the flat event array.

This is slimkit's chronological leave-one-out split, for all users at once: targets sit
at :data:`~slimkit.data.dataset.TARGET_FROM_END` (validation ``sequence[-2]``, test
``sequence[-1]``); training samples predict each item of ``sequence[:-2]`` from the
items before it.

A sample is ``(user, start, length, target)``: its input is
``items[start : start + length]`` (at most ``max_seq_len`` most recent items before the
target), right-padded into a batch by :func:`gather_batch`. Nothing is copied per sample,
so memory is O(samples), not O(samples x max_seq_len).

The causal training mode reads the same targets through :func:`training_windows`: a
window is ``(user, start, length, first_loss)``, its inputs ``items[start : start +
length]``, the target at window position ``j`` the next item ``items[start + j + 1]``,
with a loss at positions ``first_loss <= j < length`` (the targets no earlier window of
the user holds). See :func:`training_windows` for how long sequences are cut.

Under a leakage-free ``prompt.rationale_cut`` (:mod:`slimkit.data.rationale_cut`) a
training target reads the rationale row :class:`RationaleRows` gives it: per sample in
the per-prefix mode (:func:`with_rationale_rows`), per window position in the causal
mode (:class:`WindowRows`, a ``(B, L)`` ``users`` tensor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimkit.data.dataset import TARGET_FROM_END
from slimkit.errors import DataError


@dataclass
class Samples:
    """Parallel int64 arrays, one row per sample."""

    users: np.ndarray  # (S,) user index
    starts: np.ndarray  # (S,) index into the event array of the first input item
    lengths: np.ndarray  # (S,) number of input items, 1..max_seq_len
    targets: np.ndarray  # (S,) item to predict

    def __len__(self) -> int:
        return int(self.users.shape[0])


def _samples_at(offsets, items, users, positions, max_seq_len) -> Samples:
    """Samples predicting ``sequence(u)[t]`` from the items before it, for (u, t) pairs."""
    begin = offsets[users] + np.maximum(positions - max_seq_len, 0)
    return Samples(
        users=users.astype(np.int64),
        starts=begin.astype(np.int64),
        lengths=np.minimum(positions, max_seq_len).astype(np.int64),
        targets=items[offsets[users] + positions].astype(np.int64),
    )


def training_samples(offsets: np.ndarray, items: np.ndarray, max_seq_len: int) -> Samples:
    """One sample per prefix of each user's training part ``sequence[:-2]`` (as RecBole):
    targets are positions ``1 .. n-3``, inputs everything before them (last ``max_seq_len``)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    train_len = np.diff(offsets) - TARGET_FROM_END["valid"]  # (U,) length of sequence[:-2]
    per_user = np.maximum(train_len - 1, 0)  # (U,) samples per user
    total = int(per_user.sum())
    if total == 0:
        raise DataError(
            "The dataset is too small to train on: no user has 2 or more training items "
            "(each user needs at least 4 interactions: 2 to train, 1 to validate, 1 to test).",
            hint="Use a larger dataset or relax dataset.min_user_interactions filtering.",
        )
    users = np.repeat(np.arange(len(per_user)), per_user)  # (S,)
    first_sample = np.repeat(np.cumsum(per_user) - per_user, per_user)  # (S,)
    positions = np.arange(total) - first_sample + 1  # (S,) 1 .. n-3
    return _samples_at(offsets, items, users, positions, max_seq_len)


@dataclass
class Windows:
    """Parallel int64 arrays, one row per causal training window."""

    users: np.ndarray  # (W,) user index
    starts: np.ndarray  # (W,) index into the event array of the first input item
    lengths: np.ndarray  # (W,) number of input items, 1..max_seq_len
    first_loss: np.ndarray  # (W,) first window position with a loss (targets before it
    # belong to an earlier window of the same user)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def num_targets(self) -> int:
        """Targets (losses) over all windows: the number of per-prefix samples."""
        return int((self.lengths - self.first_loss).sum())


def default_stride(max_seq_len: int) -> int:
    """Windows of a long sequence overlap by half by default: every target keeps at least
    ``max_seq_len // 2 + 1`` items of context for twice the windows of no overlap."""
    return max(1, (max_seq_len + 1) // 2)


def training_windows(
    offsets: np.ndarray, items: np.ndarray, max_seq_len: int, stride: int | None = None
) -> Windows:
    """Causal training windows holding exactly the targets of :func:`training_samples`.

    A user's training part ``sequence[:-2]`` of ``T`` items has targets at positions
    ``1 .. T-1``. If ``T - 1 <= max_seq_len`` one window holds them all (inputs ``0 ..
    T-2``), each target with its whole history as context, as per prefix. A longer part is
    cut into windows of ``max_seq_len`` inputs starting at ``0, stride, 2*stride, ...``
    plus one ending at the last target; each target is predicted in the first window that
    holds it, so targets ``1 .. max_seq_len`` keep their whole history and a later target
    keeps at least ``max_seq_len - stride + 1`` of the ``max_seq_len`` items the per-prefix
    mode gives it (``stride`` 1: exactly per-prefix's context, at per-prefix cost). No
    validation or test item is ever an input or a target.
    """
    stride = default_stride(max_seq_len) if stride is None else int(stride)
    if not 1 <= stride <= max_seq_len:
        raise ValueError(f"stride must be in 1..max_seq_len ({max_seq_len}), got {stride}")
    offsets = np.asarray(offsets, dtype=np.int64)
    train_len = np.diff(offsets) - TARGET_FROM_END["valid"]  # (U,) T, length of sequence[:-2]
    targets = np.maximum(train_len - 1, 0)  # (U,) targets per user
    if int(targets.sum()) == 0:
        training_samples(offsets, items, max_seq_len)  # raises the too-small DataError
    extra = np.maximum(targets - max_seq_len, 0)  # (U,) targets beyond the first window
    per_user = np.where(targets > 0, 1 + -(-extra // stride), 0)  # (U,) windows, ceil division
    users = np.repeat(np.arange(len(targets)), per_user)  # (W,)
    first_window = np.repeat(np.cumsum(per_user) - per_user, per_user)  # (W,)
    k = np.arange(len(users)) - first_window  # (W,) window number within its user
    last = k == per_user[users] - 1  # (W,) the window ending at the last target
    begin = np.where(last, extra[users], k * stride)  # (W,) first input position
    # Targets up to position begin(k-1) + max_seq_len belong to the window before.
    previous_end = np.where(k > 0, (k - 1) * stride + max_seq_len, 0)  # (W,)
    first_loss = np.maximum(previous_end - begin, 0)  # (W,)
    return Windows(
        users=users.astype(np.int64),
        starts=(offsets[users] + begin).astype(np.int64),
        lengths=np.minimum(targets[users], max_seq_len).astype(np.int64),
        first_loss=first_loss.astype(np.int64),
    )


def window_batch(events, windows: Windows, index):
    """Tensors of the windows at ``index`` on the device of ``events`` ``(E,)``:
    ``(seq (B, W) right-padded, lengths (B,), users (B,), targets (B, W), loss (B, W) bool)``;
    ``targets[b, j]`` is the item after ``seq[b, j]``, ``loss`` marks the positions whose
    target this window holds."""
    import torch

    idx = torch.as_tensor(index)
    device = events.device
    starts = torch.as_tensor(windows.starts)[idx].to(device)
    lengths = torch.as_tensor(windows.lengths)[idx].to(device)
    users = torch.as_tensor(windows.users)[idx].to(device)
    first_loss = torch.as_tensor(windows.first_loss)[idx].to(device)
    seq = gather_batch(events, starts, lengths)  # (B, W)
    targets = gather_batch(events, starts + 1, lengths)  # (B, W): the next items
    steps = torch.arange(seq.size(1), device=device)  # (W,)
    loss = (steps >= first_loss.unsqueeze(1)) & (steps < lengths.unsqueeze(1))  # (B, W)
    return seq, lengths, users, targets, loss


@dataclass
class RationaleRows:
    """Which row of a fusion head's per-user table each training target reads, so that no
    target reads a rationale written from a history that holds it
    (:mod:`slimkit.data.rationale_cut`).

    A training target at position ``t`` of user ``u``'s sequence reads row ``rows[u]`` when
    ``t >= cut[u]`` (a rationale written from ``sequence[:cut[u]]``), else row ``missing``
    (an all-zero row: the head's "no rationale" vector). Validation and test read row
    ``u`` as before.
    """

    cut: np.ndarray  # (U,) position of the first target after the cut
    rows: np.ndarray  # (U,) table row of the rationale from the cut
    missing: int  # a table row without a rationale

    def for_targets(self, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``(S,)`` table rows of the targets at ``positions`` of ``users`` (both ``(S,)``)."""
        users = np.asarray(users, dtype=np.int64)
        after = np.asarray(positions) >= self.cut[users]  # (S,)
        return np.where(after, self.rows[users], self.missing).astype(np.int64)


def target_positions(offsets: np.ndarray, samples: Samples) -> np.ndarray:
    """``(S,)`` position of each sample's target in its user's sequence."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return samples.starts - offsets[samples.users] + samples.lengths


def with_rationale_rows(offsets: np.ndarray, samples: Samples, rationale: RationaleRows) -> Samples:
    """Per-prefix samples whose ``users`` are the table rows their targets may read."""
    rows = rationale.for_targets(samples.users, target_positions(offsets, samples))
    return Samples(users=rows, starts=samples.starts, lengths=samples.lengths,
                   targets=samples.targets)


@dataclass
class WindowRows:
    """Causal mode: per window, the first window position whose target may read the
    rationale from the cut, that rationale's row, and the row without one."""

    first: np.ndarray  # (W,) window position j of the first target at or after the cut
    rows: np.ndarray  # (W,) table row of the rationale from the cut
    missing: int

    @classmethod
    def of(cls, offsets: np.ndarray, windows: Windows, rationale: RationaleRows) -> WindowRows:
        offsets = np.asarray(offsets, dtype=np.int64)
        begin = windows.starts - offsets[windows.users]  # (W,) position of input 0
        # The target at window position j sits at sequence position begin + j + 1.
        first = rationale.cut[windows.users] - begin - 1  # (W,)
        return cls(first=first.astype(np.int64), rows=rationale.rows[windows.users].astype(np.int64),
                   missing=int(rationale.missing))

    def batch(self, index, width: int, device):
        """``(B, width)`` long tensor: the table row each position of the windows at
        ``index`` reads (the head's ``users`` argument, per position)."""
        import torch

        idx = torch.as_tensor(index)
        first = torch.as_tensor(self.first)[idx].to(device)  # (B,)
        rows = torch.as_tensor(self.rows)[idx].to(device)  # (B,)
        steps = torch.arange(width, device=device)  # (W,)
        after = steps.unsqueeze(0) >= first.unsqueeze(1)  # (B, W)
        return torch.where(after, rows.unsqueeze(1), torch.full_like(rows, self.missing).unsqueeze(1))


def evaluation_samples(
    offsets: np.ndarray, items: np.ndarray, max_seq_len: int, split: str
) -> Samples:
    """One sample per user: ``valid`` predicts ``sequence[-2]``, ``test`` ``sequence[-1]``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = np.diff(offsets)
    if (n < 3).any():
        raise DataError(
            f"{int((n < 3).sum())} users have fewer than 3 interactions; leave-one-out needs 3.",
            hint="The data stage drops such users; prepare the dataset with slimkit's data stage.",
        )
    users = np.arange(len(n))
    return _samples_at(offsets, items, users, n - TARGET_FROM_END[split], max_seq_len)


def history_pairs(offsets: np.ndarray, items: np.ndarray, split: str):
    """(row, item) pairs of every user's full input history for ``split`` (for masking),
    plus ``pointer`` ``(U + 1,)``: user u's pairs are ``[pointer[u], pointer[u+1])``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = np.diff(offsets)
    keep = n - TARGET_FROM_END[split]  # history length per user
    users = np.repeat(np.arange(len(n)), n)
    position = np.arange(len(items)) - np.repeat(offsets[:-1], n)
    mask = position < np.repeat(keep, n)
    pointer = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    return users[mask].astype(np.int64), np.asarray(items)[mask].astype(np.int64), pointer


def sample_batch(events, samples: Samples, index):
    """Tensors of the samples at ``index`` on the device of ``events`` ``(E,)``:
    ``(seq (B, W) right-padded, lengths (B,), users (B,), targets (B,))``."""
    import torch

    idx = torch.as_tensor(index)
    device = events.device
    starts = torch.as_tensor(samples.starts)[idx].to(device)
    lengths = torch.as_tensor(samples.lengths)[idx].to(device)
    users = torch.as_tensor(samples.users)[idx].to(device)
    targets = torch.as_tensor(samples.targets)[idx].to(device)
    seq = gather_batch(events, starts, lengths)  # (B, W)
    return seq, lengths, users, targets


def gather_batch(events, starts, lengths):
    """Right-padded ``(B, max(lengths))`` item tensor from an event tensor ``(E,)``."""
    import torch

    width = int(lengths.max())
    steps = torch.arange(width, device=events.device)  # (W,)
    index = starts.unsqueeze(1) + steps  # (B, W)
    real = steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, W)
    index = torch.where(real, index, torch.zeros_like(index))
    return torch.where(real, events[index], torch.zeros_like(index))  # (B, W)
