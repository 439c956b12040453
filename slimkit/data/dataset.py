"""The prepared dataset every stage after ``data`` reads.

Users are indexed ``0..U-1`` and items ``1..N`` (``0`` is padding). Each user's events are
in chronological order (stable on equal timestamps). The chronological leave-one-out
split is positional (:data:`TARGET_FROM_END`):

* ``train_items(u)``  = ``sequence[:-2]``  (also the only history a rationale may see)
* ``valid_target(u)`` = ``sequence[-2]``   (input: ``sequence[:-2]``)
* ``test_target(u)``  = ``sequence[-1]``   (input: ``sequence[:-1]``)

Every user has at least 3 events. The trainer's samples (:mod:`slimkit.training.samples`)
take their targets and inputs from the same positions, for all users at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FROM_END = {"valid": 2, "test": 1}
"""Where each held-out target sits, counted from the end of a user's sequence; the items
before the validation target are the training part."""


@dataclass
class PreparedDataset:
    name: str
    user_ids: list[str]  # user index -> raw id
    item_ids: list[str]  # item index -> raw id; item_ids[0] == "" (padding)
    offsets: np.ndarray  # (U + 1,) int64: user u's events are [offsets[u], offsets[u+1])
    items: np.ndarray  # (E,) int64 item index per event, chronological per user
    timestamps: np.ndarray  # (E,) int64 seconds since the epoch (or the source's order)
    item_text: list[str]  # item index -> text fed to encoders and prompts; [0] == ""
    item_titles: list[str]  # item index -> short display title; [0] == ""
    has_text: np.ndarray  # (N + 1,) bool: item had metadata (False: placeholder text)
    max_seq_len: int = 50
    info: dict[str, Any] = field(default_factory=dict)  # provenance, skipped lines, ...

    # -- sizes ------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        """Number of real items N (item indices run 1..N)."""
        return len(self.item_ids) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.items.shape[0])

    # -- per user -----------------------------------------------------------------------
    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def sequence_timestamps(self, user: int) -> np.ndarray:
        return self.timestamps[self.offsets[user] : self.offsets[user + 1]]

    def train_items(self, user: int) -> np.ndarray:
        """Items before the validation and test targets: all a rationale may see."""
        return self.sequence(user)[: -TARGET_FROM_END["valid"]]

    def valid_target(self, user: int) -> int:
        return int(self.sequence(user)[-TARGET_FROM_END["valid"]])

    def test_target(self, user: int) -> int:
        return int(self.sequence(user)[-TARGET_FROM_END["test"]])

    def user_index(self, raw_id: str) -> int:
        """Index of a raw user id; raises KeyError when unknown."""
        if not hasattr(self, "_user_lookup"):
            self._user_lookup = {u: i for i, u in enumerate(self.user_ids)}
        return self._user_lookup[str(raw_id)]

    def item_index(self, raw_id: str) -> int:
        if not hasattr(self, "_item_lookup"):
            self._item_lookup = {it: i for i, it in enumerate(self.item_ids) if i > 0}
        return self._item_lookup[str(raw_id)]

    # -- storage ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "interactions.npz",
            offsets=self.offsets,
            items=self.items,
            timestamps=self.timestamps,
            has_text=self.has_text,
        )
        meta = {
            "name": self.name,
            "max_seq_len": self.max_seq_len,
            "info": self.info,
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "item_text": self.item_text,
            "item_titles": self.item_titles,
        }
        (folder / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> PreparedDataset:
        folder = Path(folder)
        arrays = np.load(folder / "interactions.npz")
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        return cls(
            name=meta["name"],
            user_ids=meta["user_ids"],
            item_ids=meta["item_ids"],
            offsets=arrays["offsets"],
            items=arrays["items"],
            timestamps=arrays["timestamps"],
            item_text=meta["item_text"],
            item_titles=meta["item_titles"],
            has_text=arrays["has_text"],
            max_seq_len=meta["max_seq_len"],
            info=meta["info"],
        )
