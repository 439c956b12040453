"""Evaluation of a Recommender on the validation or test targets, as RecBole does it.

One target per user (``sequence[-2]`` for ``valid``, ``sequence[-1]`` for ``test``), the
input truncated to the last ``max_seq_len`` items before it. Full ranking over the whole
catalogue, or the target among ``num_negatives`` sampled items (the paper's protocol);
items already in the history are masked unless ``mask_history`` is off. Metrics come from
one comparison of every score against the target's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimkit.errors import SlimkitError
from slimkit.evaluation.metrics import (
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
        per_user = ranking_metrics(np.concatenate(greater_all), np.concatenate(ties_all), opts.ks)
        return EvalResult(
            metrics=mean_metrics(per_user),
            per_user=per_user,
            top_items=np.concatenate(tops) if tops else np.zeros((0, 10), dtype=np.int64),
            targets=samples.targets,
        )
