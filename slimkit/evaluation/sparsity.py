"""Metrics by user-sparsity group (the SLIM paper's sparsity analysis).

Users are sorted by training history length (``len(sequence[:-2])``, stable by user
index) and cut into ``groups`` groups of equal size (sizes differ by at most one); group 1
holds the sparsest users.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def sparsity_groups(
    history_lengths: np.ndarray, per_user: Mapping[str, np.ndarray], groups: int = 5
) -> list[dict[str, float]]:
    """One dict per group: ``group``, ``users``, ``min_length``, ``max_length`` and the mean
    of every per-user metric in ``per_user`` (e.g. ``ndcg@10``) over the group's users."""
    lengths = np.asarray(history_lengths)
    order = np.argsort(lengths, kind="stable")
    out = []
    for g, members in enumerate(np.array_split(order, min(groups, max(len(order), 1))), start=1):
        if not len(members):
            continue
        row: dict[str, float] = {
            "group": g,
            "users": int(len(members)),
            "min_length": int(lengths[members].min()),
            "max_length": int(lengths[members].max()),
        }
        for name, values in per_user.items():
            row[name] = float(np.asarray(values)[members].mean())
        out.append(row)
    return out
