"""Evaluation of a Recommender on the validation or test targets, as RecBole does it.

One target per user (``sequence[-2]`` for ``valid``, ``sequence[-1]`` for ``test``), the
input truncated to the last ``max_seq_len`` items before it. Full ranking over the whole
catalogue, or the target among ``num_negatives`` sampled items (the paper's protocol);
items already in the history are masked unless ``mask_history`` is off. Metrics come from
one comparison of every score against the target's.

Full ranking of a large catalogue (more than
:data:`~slimkit.training.options.WHOLE_CATALOGUE` items, or ``item_chunk`` set) never
holds a (users x catalogue) score matrix: the users' vectors (``forward``) meet the item
matrix (``item_matrix()``, computed once per evaluation) one chunk of items at a time,
keeping the target's rank counts and a running top-10
(:class:`~slimkit.evaluation.metrics.RunningRank`); the metrics are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimkit.errors import SlimkitError
from slimkit.evaluation.metrics import (
    RunningRank,
    mask_history,
    mean_metrics,
    rank_counts,
    ranking_metrics,
    sample_negatives,
)
from slimkit.training.options import EvalOptions
from slimkit.training.samples import Samples, evaluation_samples, history_pairs, sample_batch

NEGATIVES_SEED = 2024
"""Seed of the sampled-protocol candidates: fixed, so every model and seed ranks the same."""


@dataclass
class EvalResult:
    """Metrics of one split plus what popularity and sparsity analyses need."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    top_items: np.ndarray  # (U, 10) full-ranking top-10 after masking
    targets: np.ndarray  # (U,)


class Evaluator:
    """Scores a model's held-out targets on one dataset; the samples, histories and
    sampled negatives of each split are built once and reused every epoch."""

    def __init__(
        self,
        events: torch.Tensor,
        offsets: np.ndarray,
        items: np.ndarray,
        num_items: int,
        max_seq_len: int,
        options: EvalOptions,
    ):
        self.events = events  # (E,) on the model's device
        self.offsets = offsets  # (U + 1,)
        self.items = items  # (E,)
        self.num_items = num_items
        self.max_seq_len = max_seq_len
        self.options = options
        self._cache: dict[str, tuple[Samples, tuple, np.ndarray | None]] = {}

    def split_data(self, split: str) -> tuple[Samples, tuple, np.ndarray | None]:
        """(samples, history pairs for masking, sampled negatives or None) of ``split``."""
        if split not in self._cache:
            samples = evaluation_samples(self.offsets, self.items, self.max_seq_len, split)
            history = history_pairs(self.offsets, self.items, split)
            negatives = None
            if self.options.protocol == "sampled":
                try:
                    negatives = sample_negatives(
                        self.offsets,
                        self.items,
                        self.num_items,
                        self.options.num_negatives,
                        NEGATIVES_SEED,
                    )
                except ValueError as exc:
                    raise SlimkitError(f"protocol: sampled: {exc}") from exc
            self._cache[split] = (samples, history, negatives)
        return self._cache[split]

    @torch.no_grad()
    def evaluate(self, model: Any, split: str, *, with_lists: bool = True) -> EvalResult:
        """Metrics of ``model`` on ``valid`` or ``test``; ``with_lists`` keeps each user's
        top-10 (for the popularity analysis)."""
        model.eval()
        samples, (hist_rows, hist_items, pointer), negatives = self.split_data(split)
        opts = self.options
        if negatives is None and opts.items_per_chunk(self.num_items) < self.num_items + 1:
            return self._evaluate_chunked(model, split, with_lists=with_lists)
        rows = opts.rows_per_batch(self.num_items)
        greater_all, ties_all, tops = [], [], []
        for begin in range(0, len(samples), rows):
            end = min(begin + rows, len(samples))
            index = np.arange(begin, end)
            seq, lengths, users, targets = sample_batch(self.events, samples, index)
            scores = model.score_all(seq, lengths, users).float()  # (B, N + 1)
            if opts.mask_history:
                lo, hi = pointer[begin], pointer[end]
                mask_history(scores, hist_rows[lo:hi] - begin, hist_items[lo:hi])
            else:
                scores[:, 0] = -torch.inf
            if negatives is not None:
                cand = torch.cat(
                    [
                        targets.unsqueeze(1),
                        torch.as_tensor(negatives[begin:end], device=self.events.device),
                    ],
                    dim=1,
                )  # (B, 1 + M): the target first
                greater, ties = rank_counts(scores.gather(1, cand), torch.zeros_like(targets))
            else:
                greater, ties = rank_counts(scores, targets)
            greater_all.append(greater)
            ties_all.append(ties)
            if with_lists:
                tops.append(scores.topk(min(10, self.num_items), dim=1).indices.cpu().numpy())
        return _result(greater_all, ties_all, tops, samples.targets, opts.ks)

    def _evaluate_chunked(self, model: Any, split: str, *, with_lists: bool) -> EvalResult:
        """Full ranking, one chunk of items at a time (see the module docstring)."""
        samples, (hist_rows, hist_items, pointer), _ = self.split_data(split)
        opts = self.options
        chunk = opts.items_per_chunk(self.num_items)
        rows = opts.batch_size or int(max(64, min(4096, 2**25 // chunk)))
        device = self.events.device
        items = model.item_matrix().float()  # (N + 1, D), once
        greater_all, ties_all, tops = [], [], []
        for begin in range(0, len(samples), rows):
            end = min(begin + rows, len(samples))
            seq, lengths, users, targets = sample_batch(self.events, samples, np.arange(begin, end))
            user = model(seq, lengths, users).float()  # (B, D)
            target_scores = (user * items[targets]).sum(-1)  # (B,)
            lo, hi = pointer[begin], pointer[end]
            h_rows = torch.as_tensor(hist_rows[lo:hi] - begin, device=device)  # (H,)
            h_items = torch.as_tensor(hist_items[lo:hi], device=device)  # (H,)
            if opts.mask_history:
                seen = h_items == targets[h_rows]  # (H,) the target is in its history
                target_scores[h_rows[seen]] = -torch.inf
            rank = RunningRank(target_scores, targets, top=min(10, self.num_items) if with_lists else 0)
            for first in range(0, self.num_items + 1, chunk):
                last = min(first + chunk, self.num_items + 1)
                scores = user @ items[first:last].T  # (B, C)
                if first == 0:
                    scores[:, 0] = -torch.inf  # padding
                if opts.mask_history:
                    inside = (h_items >= first) & (h_items < last)  # (H,)
                    scores[h_rows[inside], h_items[inside] - first] = -torch.inf
                rank.add(scores, first)
            greater, ties = rank.counts()
            greater_all.append(greater)
            ties_all.append(ties)
            if with_lists:
                tops.append(rank.top_items())
        return _result(greater_all, ties_all, tops, samples.targets, opts.ks)


def _result(greater: list, ties: list, tops: list, targets: np.ndarray, ks: Any) -> EvalResult:
    """The split's metrics from per-batch rank counts and top-10 lists."""
    per_user = ranking_metrics(np.concatenate(greater), np.concatenate(ties), ks)
    return EvalResult(
        metrics=mean_metrics(per_user),
        per_user=per_user,
        top_items=np.concatenate(tops) if tops else np.zeros((0, 10), dtype=np.int64),
        targets=targets,
    )
