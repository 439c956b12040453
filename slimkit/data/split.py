"""The chronological leave-one-out split, as arrays for trainers and evaluators.

Per user (events in time order): the last item is the test target, the one before it the
validation target, everything earlier is training. A rationale, the teacher's or the
student's, is written from the training part only, so neither target leaks into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimkit.data.dataset import PreparedDataset


@dataclass
class LeaveOneOutSplit:
    """Training sequences (flattened, with offsets) and the two targets of every user."""

    train_offsets: np.ndarray  # (U + 1,) int64: user u's training items are [o[u], o[u+1])
    train_items: np.ndarray  # (E - 2U,) int64
    valid_targets: np.ndarray  # (U,) int64: sequence[-2]
    test_targets: np.ndarray  # (U,) int64: sequence[-1]

    def train_sequence(self, user: int) -> np.ndarray:
        return self.train_items[self.train_offsets[user] : self.train_offsets[user + 1]]


def leave_one_out_split(dataset: PreparedDataset) -> LeaveOneOutSplit:
    """Split every user's sequence into training part, validation and test target."""
    ends = dataset.offsets[1:]  # (U,) one past each user's last event
    lengths = np.diff(dataset.offsets)
    if lengths.size and lengths.min() < 3:
        raise ValueError("every user needs at least 3 events for leave-one-out")
    test_targets = dataset.items[ends - 1]
    valid_targets = dataset.items[ends - 2]
    in_train = np.ones(dataset.items.shape[0], dtype=bool)
    in_train[ends - 1] = False
    in_train[ends - 2] = False
    train_offsets = np.zeros_like(dataset.offsets)
    np.cumsum(lengths - 2, out=train_offsets[1:])
    return LeaveOneOutSplit(
        train_offsets=train_offsets,
        train_items=dataset.items[in_train],
        valid_targets=valid_targets.astype(np.int64),
        test_targets=test_targets.astype(np.int64),
    )
