"""Popularity bias of top-K lists, as the SLIM paper reports it.

Item popularity is counted on the training part (``sequence[:-2]``) as the number of
distinct users who interacted with the item. With one relevant item per user (the
target), for a top-K list ``i_1..i_K`` and discount ``disc(r) = 1 / log2(r + 1)``:

* ``efd@K`` (expected free discovery, Vargas & Castells 2011, as Elliot computes it):
  ``sum_r rel(i_r) disc(r) (-log2(count(i_r) / sum_j count(j))) / sum_r disc(r)``; items
  never seen in training get the largest novelty of a seen item;
* ``epc@K`` (expected popularity complement): the same with novelty
  ``1 - count(i) / number of training users``;
* ``tail_share@K``: share of recommended items from the tail (the bottom ``tail_share`` of
  items by training popularity; the top rest is the head);
* ``coverage@K``: distinct recommended items over the catalogue size;
* ``hit@K_head`` / ``hit@K_tail``: hit rate for users whose target is a head / tail item;
* ``avg_popularity@K`` versus ``avg_popularity_train``: mean training count of recommended
  items versus of interacted training items (the paper's frequency comparison).

Each per-user value is averaged over users.
"""

from __future__ import annotations

import math

import numpy as np


def item_popularity(offsets: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """``(N + 1,)`` number of distinct users with the item in their training part."""
    num_users = len(offsets) - 1
    lengths = np.diff(offsets)
    users = np.repeat(np.arange(num_users), lengths)
    position = np.arange(len(items)) - np.repeat(offsets[:-1], lengths)
    train = position < np.repeat(lengths - 2, lengths)  # sequence[:-2]
    pairs = np.unique(users[train].astype(np.int64) * (num_items + 1) + items[train])
    return np.bincount(pairs % (num_items + 1), minlength=num_items + 1).astype(np.int64)


def tail_items(counts: np.ndarray, tail_share: float = 0.8) -> np.ndarray:
    """``(N + 1,)`` bool: the bottom ``tail_share`` of items 1..N by popularity.

    The head is the ``ceil((1 - tail_share) * N)`` most popular items, ties broken by
    lower item index first; row 0 (padding) is neither.
    """
    n = len(counts) - 1
    head_size = int(math.ceil((1.0 - tail_share) * n - 1e-9))
    order = np.lexsort((np.arange(1, n + 1), -counts[1:])) + 1  # most popular first
    is_tail = np.ones(n + 1, dtype=bool)
    is_tail[0] = False
    is_tail[order[:head_size]] = False
    return is_tail


def popularity_metrics(
    top_items: np.ndarray,
    targets: np.ndarray,
    hits: np.ndarray,
    counts: np.ndarray,
    num_train_users: int,
    tail_share: float = 0.8,
    k: int = 10,
) -> dict[str, float]:
    """Popularity metrics of top-``k`` lists ``(U, >=k)`` for targets ``(U,)``.

    ``hits`` ``(U,)`` is each user's hit@k (from the rank, so ties count as in
    :func:`slimkit.evaluation.metrics.ranking_metrics`); ``counts`` comes from
    :func:`item_popularity`.
    """
    top = np.asarray(top_items)[:, :k]  # (U, k)
    targets = np.asarray(targets)
    hits = np.asarray(hits, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts) - 1
    seen = counts[1:] > 0
    total = counts[1:].sum()
    if seen.any() and total > 0:
        novelty = np.zeros(n + 1)
        novelty[1:][seen] = -np.log2(counts[1:][seen] / total)
        novelty[1:][~seen] = novelty[1:][seen].max()
    else:
        novelty = np.zeros(n + 1)
    complement = 1.0 - counts / max(num_train_users, 1)
    disc = 1.0 / np.log2(np.arange(k) + 2.0)  # (k,)
    relevant = top == targets[:, None]  # (U, k)
    efd = (relevant * disc * novelty[top]).sum(1) / disc.sum()
    epc = (relevant * disc * complement[top]).sum(1) / disc.sum()
    is_tail = tail_items(counts.astype(np.int64), tail_share)
    tail_target = is_tail[targets]
    interacted = counts[1:].sum()
    return {
        f"efd@{k}": float(efd.mean()) if len(efd) else 0.0,
        f"epc@{k}": float(epc.mean()) if len(epc) else 0.0,
        f"tail_share@{k}": float(is_tail[top].mean()) if top.size else 0.0,
        f"coverage@{k}": float(len(np.unique(top)) / max(n, 1)),
        f"hit@{k}_head": float(hits[~tail_target].mean()) if (~tail_target).any() else 0.0,
        f"hit@{k}_tail": float(hits[tail_target].mean()) if tail_target.any() else 0.0,
        "tail_targets": float(tail_target.mean()) if len(targets) else 0.0,
        f"avg_popularity@{k}": float(counts[top].mean()) if top.size else 0.0,
        "avg_popularity_train": float((counts[1:] ** 2).sum() / interacted) if interacted else 0.0,
    }


def recommendation_curve(
    top_lists: list[np.ndarray], counts: np.ndarray, bins: int = 10
) -> list[dict[str, float]]:
    """The paper's per-item popularity curve, binned: items 1..N sorted from most to least
    popular in training (ties by lower index) and cut into ``bins`` groups of equal size;
    per group, ``share``: the share of all recommended slots (over every list in
    ``top_lists``, e.g. each seed's ``(U, K)`` top-K) that went to its items, next to
    ``items``, ``mean_popularity`` and ``item_share`` (its share of the catalogue: the
    share a popularity-blind recommender would give it)."""
    n = len(counts) - 1
    order = np.lexsort((np.arange(1, n + 1), -counts[1:])) + 1  # most popular first
    recommended = np.zeros(n + 1, dtype=np.int64)
    for lists in top_lists:
        recommended += np.bincount(np.asarray(lists).ravel(), minlength=n + 1)[: n + 1]
    recommended[0] = 0
    total = max(int(recommended.sum()), 1)
    out = []
    for group, members in enumerate(np.array_split(order, min(bins, max(n, 1))), start=1):
        out.append({
            "group": group,
            "items": int(len(members)),
            "mean_popularity": float(counts[members].mean()),
            "item_share": float(len(members) / n),
            "share": float(recommended[members].sum() / total),
        })
    return out
