"""Ranking metrics for one held-out target per user (leave-one-out).

A target's rank is described by ``greater`` (items scored strictly higher) and ``ties``
(other items with exactly its score). With ties, the rank is uniform over
``greater + 1 .. greater + ties + 1``; every metric is its exact expectation over that
range, so a model that scores everything equal gets chance-level metrics, never perfect
ones, and the result does not depend on how a sort orders equal scores.

Masked items (history, padding) score ``-inf``; a target that is itself masked (a repeat
of a history item while history is masked) therefore ranks below every unmasked item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

METRIC_NAMES = ("hit", "ndcg", "mrr")


def rank_counts(scores, targets):
    """``(greater, ties)`` per row: items scored above the target, other items tied with it.

    ``scores`` is a torch tensor ``(B, C)``, ``targets`` ``(B,)`` column indices of the
    targets in ``scores``. Returns two int64 numpy arrays ``(B,)``.
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (B, 1)
    greater, ties = compare_counts(scores, target_scores)  # (B,), (B,)
    ties = ties - 1  # the target itself excluded
    return greater.cpu().numpy().astype(np.int64), ties.cpu().numpy().astype(np.int64)


def compare_counts(scores, thresholds):
    """``(greater, equal)`` int64 torch ``(B,)``: per row, the scores ``(B, C)`` above and
    equal to its threshold ``(B, 1)``.

    On CPU through NumPy's ``count_nonzero``: torch's sum of a bool matrix is ~10x slower
    there (512 x 65,536 scores: 412 ms against 42 ms, measured on the 2-core machine)."""
    import torch

    if scores.device.type == "cpu":
        s = scores.detach().numpy()  # (B, C), no copy
        t = thresholds.detach().numpy()  # (B, 1)
        greater = np.count_nonzero(s > t, axis=1).astype(np.int64)
        equal = np.count_nonzero(s == t, axis=1).astype(np.int64)
        return torch.from_numpy(greater), torch.from_numpy(equal)
    return (scores > thresholds).sum(1), (scores == thresholds).sum(1)


class RunningRank:
    """The target's rank counts and a running top-``top`` list, fed one chunk of item
    columns at a time, so a (rows x catalogue) score matrix is never held.

    ``target_scores`` ``(B,)`` are the targets' scores (``-inf`` where the target is
    masked), ``targets`` ``(B,)`` their item columns. After every chunk has gone through
    :meth:`add`, :meth:`counts` equals :func:`rank_counts` over the whole score matrix and
    :meth:`top_items` its ``topk(top)`` columns (up to the order of equal scores).
    """

    def __init__(self, target_scores, targets, top: int = 0):
        import torch

        self.target_scores = target_scores.unsqueeze(1)  # (B, 1)
        self.targets = targets  # (B,)
        self.top = int(top)
        self.greater = torch.zeros(len(targets), dtype=torch.int64, device=targets.device)
        self.ties = torch.zeros_like(self.greater)
        self.top_values = self.top_columns = None  # (B, <= top)

    def add(self, scores, first: int) -> None:
        """Count the chunk ``scores`` ``(B, C)`` of columns ``first .. first + C - 1``
        (masked columns already ``-inf``)."""
        import torch

        greater, equal = compare_counts(scores, self.target_scores)  # (B,), (B,)
        self.greater += greater.to(self.greater.device)
        self.ties += equal.to(self.ties.device)
        # The target's own column counts in neither.
        own = torch.nonzero(
            (self.targets >= first) & (self.targets < first + scores.size(1))
        ).squeeze(1)  # (O,) rows whose target is in this chunk
        if len(own):
            mine = scores[own, self.targets[own] - first]  # (O,)
            target = self.target_scores[own, 0]
            self.greater[own] -= (mine > target).long()
            self.ties[own] -= (mine == target).long()
        if self.top:
            values, columns = scores.topk(min(self.top, scores.size(1)), dim=1)  # (B, k)
            columns = columns + first
            if self.top_values is not None:
                values = torch.cat([self.top_values, values], dim=1)
                columns = torch.cat([self.top_columns, columns], dim=1)
                values, keep = values.topk(min(self.top, values.size(1)), dim=1)
                columns = columns.gather(1, keep)
            self.top_values, self.top_columns = values, columns

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """``(greater, ties)`` per row, as :func:`rank_counts`."""
        return self.greater.cpu().numpy(), self.ties.cpu().numpy()

    def top_items(self) -> np.ndarray:
        """``(B, top)`` best columns, best first."""
        return self.top_columns.cpu().numpy()


def _cumulative(gains: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(gains)])


def ranking_metrics(
    greater: np.ndarray, ties: np.ndarray, ks: Iterable[int]
) -> dict[str, np.ndarray]:
    """Per-row ``hit@K``, ``ndcg@K``, ``mrr@K`` (expected over random tie-breaking)."""
    greater = np.asarray(greater, dtype=np.int64)
    n = np.asarray(ties, dtype=np.int64) + 1  # number of equally likely ranks
    ks = sorted(set(int(k) for k in ks))
    top = max(ks)
    ranks = np.arange(1, top + 1, dtype=np.float64)
    dcg = _cumulative(1.0 / np.log2(ranks + 1))  # dcg[m] = sum_{r<=m} 1/log2(r+1)
    rr = _cumulative(1.0 / ranks)  # rr[m] = sum_{r<=m} 1/r
    out: dict[str, np.ndarray] = {}
    for k in ks:
        lo = np.minimum(greater, k)  # ranks 1..lo are taken by better items
        hi = np.minimum(greater + n, k)  # the target's possible ranks within the top k
        out[f"hit@{k}"] = (hi - lo) / n
        out[f"ndcg@{k}"] = (dcg[hi] - dcg[lo]) / n
        out[f"mrr@{k}"] = (rr[hi] - rr[lo]) / n
    return out


def mean_metrics(per_row: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Average every per-row metric, ordered hit, ndcg, mrr by K."""
    def order(name: str) -> tuple[int, int]:
        kind, _, k = name.partition("@")
        return (int(k), METRIC_NAMES.index(kind) if kind in METRIC_NAMES else 9)

    return {
        name: float(np.mean(values)) if len(values) else 0.0
        for name, values in sorted(per_row.items(), key=lambda kv: order(kv[0]))
    }


def mask_history(scores, rows: np.ndarray, items: np.ndarray) -> None:
    """Set ``scores[rows, items] = -inf`` in place (torch ``(B, N + 1)``), plus column 0."""
    import torch

    scores[:, 0] = -torch.inf
    if len(rows):
        r = torch.as_tensor(rows, device=scores.device)
        c = torch.as_tensor(items, device=scores.device)
        scores[r, c] = -torch.inf


def mean_std(runs: list[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (``ddof=1``) of each metric over runs (seeds).

    With fewer than two runs there is no spread to report: ``std`` is empty (shown as
    ``n=1``, never as ``± 0``)."""
    names = list(runs[0]) if runs else []
    mean = {n: float(np.mean([r[n] for r in runs])) for n in names}
    if len(runs) < 2:
        return mean, {}
    std = {n: float(np.std([r[n] for r in runs], ddof=1)) for n in names}
    return mean, std


def sample_negatives(
    offsets: np.ndarray,
    items: np.ndarray,
    num_items: int,
    num_negatives: int,
    seed: int,
) -> np.ndarray:
    """``(U, num_negatives)`` items per user drawn uniformly, without replacement, from the
    items the user never interacted with (Kang & McAuley 2018's sampled protocol).

    ``offsets`` ``(U + 1,)`` and ``items`` ``(E,)`` hold each user's whole sequence (as in
    :class:`~slimkit.data.dataset.PreparedDataset`). Seeded, so every model sees the same
    candidates. Raises ``ValueError`` when a user has fewer unseen items than requested.
    """
    rng = np.random.default_rng(seed)
    num_users = len(offsets) - 1
    width = num_items + 1
    user_of_event = np.repeat(np.arange(num_users), np.diff(offsets))
    seen = np.unique(user_of_event.astype(np.int64) * width + items)  # sorted (user, item) keys
    out = np.zeros((num_users, num_negatives), dtype=np.int64)
    draw = num_negatives * 2 + 16
    pending = np.arange(num_users)
    for _ in range(8):  # vectorised rounds; rows that need more draws go round again
        if not len(pending):
            break
        cand = rng.integers(1, num_items + 1, size=(len(pending), draw))  # (P, draw)
        keys = pending[:, None].astype(np.int64) * width + cand
        ok = ~np.isin(keys, seen)
        # Drop repeats within a row: keep the first occurrence of each item.
        order = np.argsort(cand, axis=1, kind="stable")
        sorted_cand = np.take_along_axis(cand, order, 1)
        dup_sorted = np.zeros_like(ok)
        dup_sorted[:, 1:] = sorted_cand[:, 1:] == sorted_cand[:, :-1]
        dup = np.zeros_like(ok)
        np.put_along_axis(dup, order, dup_sorted, 1)
        ok &= ~dup
        enough = ok.sum(1) >= num_negatives
        for row in np.flatnonzero(enough):
            out[pending[row]] = cand[row][ok[row]][:num_negatives]
        pending = pending[~enough]
    for user in pending:  # users who saw most of the catalogue: draw from the complement
        unseen = np.setdiff1d(np.arange(1, num_items + 1), items[offsets[user] : offsets[user + 1]])
        if len(unseen) < num_negatives:
            raise ValueError(
                f"user {user} has only {len(unseen)} unseen items; cannot sample "
                f"{num_negatives} negatives"
            )
        out[user] = rng.choice(unseen, size=num_negatives, replace=False)
    return out
