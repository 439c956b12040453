"""Softmax losses for large catalogues: sampled negatives or in-batch negatives, with the
log-frequency (logQ) correction, never a (batch x catalogue) score matrix.

Full cross-entropy normalises the target's score over every item:
``loss = -s_t + log sum_j exp(s_j)``. Both losses here estimate the sum over the items
other than the target, ``Z_t = sum_{j != t} exp(s_j)``, by importance sampling from
``K`` items drawn with replacement from a proposal ``Q``: each draw ``j`` counts
``exp(s_j) / (K Q(j))``, i.e. its logit is corrected by ``-log(K Q(j))`` (its expected
count among the draws), and draws equal to the row's target ("accidental hits") are
left out. The target's own logit enters once, uncorrected:

    loss = -s_t + log(exp(s_t) + sum_k [j_k != t] exp(s_{j_k} - log(K Q(j_k))))

The estimate of ``Z_t`` is unbiased, so the loss tends to full cross-entropy as ``K``
grows (with every item drawn exactly once and ``Q = 1 / K`` it *is* full cross-entropy).
Without the correction a popularity proposal over-counts popular items and the model
learns to under-rank them.

* ``sampled``: ``K`` items per batch, shared by its rows, from a uniform proposal or from
  training popularity ``(count + 1) ** 0.75`` (word2vec's smoothing: every item can be
  drawn, popular items more often);
* ``in-batch``: the batch's own targets are the draws (``K`` = rows), so ``Q`` is each
  item's share of the training targets; no extra item is scored, but items never seen
  as a target are never pushed down.

Scores come from the model's ``score_candidates`` (rows x candidates, see
:class:`~slimkit.fusions.base.Recommender`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from slimkit.data.dataset import TARGET_FROM_END
from slimkit.errors import SlimkitError

SAMPLED_LOSSES = ("sampled", "in-batch")
"""``train.loss`` values computed here (``ce`` and ``bce`` stay in the fit loop)."""

NEGATIVE_SAMPLERS = ("popularity", "uniform")

POPULARITY_POWER = 0.75
"""Exponent of the smoothed popularity proposal ``(count + 1) ** POPULARITY_POWER``."""


def training_target_counts(offsets: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """``(N + 1,)`` how often each item is a training target (positions ``1 .. n-3`` of
    every user's sequence, as :func:`~slimkit.training.samples.training_samples`); row 0
    (padding) is 0."""
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items)
    n = np.diff(offsets)  # (U,)
    position = np.arange(len(items)) - np.repeat(offsets[:-1], n)  # (E,) position in its user
    end = np.repeat(n - TARGET_FROM_END["valid"], n)  # (E,) length of the training part
    target = (position >= 1) & (position < end)
    counts = np.bincount(items[target], minlength=num_items + 1).astype(np.int64)
    counts[0] = 0
    return counts


def proposal(counts: np.ndarray, sampler: str) -> np.ndarray:
    """``(N + 1,)`` float64 sampling probabilities of a proposal (row 0 is 0)."""
    if sampler not in NEGATIVE_SAMPLERS:
        raise SlimkitError(
            f"train.negative_sampler must be one of {', '.join(NEGATIVE_SAMPLERS)}, got {sampler!r}."
        )
    weights = np.ones(len(counts), dtype=np.float64)
    if sampler == "popularity":
        weights = (np.asarray(counts, dtype=np.float64) + 1.0) ** POPULARITY_POWER
    weights[0] = 0.0
    return weights / weights.sum()


def corrected_softmax_loss(
    scores: torch.Tensor,
    positive: torch.Tensor,
    targets: torch.Tensor,
    candidates: torch.Tensor,
    log_expected: torch.Tensor,
) -> torch.Tensor:
    """Mean loss over rows from the scores of sampled candidates.

    ``scores`` ``(R, K)`` of the candidates (draws) ``candidates`` ``(K,)``,
    ``positive`` ``(R,)`` each row's target score, ``targets`` ``(R,)`` its item,
    ``log_expected`` ``(K,)`` ``log(K Q(j))`` of each draw. See the module docstring.
    """
    negatives = scores.float() - log_expected.unsqueeze(0)  # (R, K) logQ-corrected
    hits = candidates.unsqueeze(0) == targets.unsqueeze(1)  # (R, K) draws of the target
    negatives = negatives.masked_fill(hits, -math.inf)
    logits = torch.cat([positive.float().unsqueeze(1), negatives], dim=1)  # (R, 1 + K)
    return (torch.logsumexp(logits, dim=1) - positive.float()).mean()


class CandidateLoss:
    """``train.loss: sampled`` or ``in-batch`` for one training set.

    ``counts`` ``(N + 1,)`` are the training target counts
    (:func:`training_target_counts`); ``num_negatives`` is K for ``sampled``.
    """

    def __init__(
        self,
        kind: str,
        counts: np.ndarray,
        *,
        num_negatives: int = 1024,
        sampler: str = "popularity",
        device: torch.device | str = "cpu",
    ):
        if kind not in SAMPLED_LOSSES:
            raise SlimkitError(f"No candidate loss {kind!r}; one of {', '.join(SAMPLED_LOSSES)}.")
        self.kind = kind
        self.num_negatives = int(num_negatives)
        self.device = torch.device(device)
        self.num_items = len(counts) - 1
        if kind == "sampled":
            q = proposal(counts, sampler)  # (N + 1,)
            self.cdf = torch.as_tensor(np.cumsum(q), device=self.device)  # (N + 1,) float64
            self.log_q = torch.as_tensor(np.log(np.maximum(q, 1e-300)), device=self.device)
        else:
            total = max(int(np.sum(counts)), 1)
            with np.errstate(divide="ignore"):
                log_q = np.log(np.asarray(counts, dtype=np.float64) / total)  # -inf: never a target
            self.log_q = torch.as_tensor(log_q, device=self.device)  # (N + 1,)

    def draw(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(count,)`` items drawn with replacement from the sampled proposal."""
        u = torch.rand(count, dtype=torch.float64, device=self.device, generator=generator)
        u = u * self.cdf[-1]
        items = torch.searchsorted(self.cdf, u, right=True)  # (K,) first cdf > u
        return items.clamp_(1, self.num_items)

    def __call__(self, model, seq, lengths, users, targets, where=None) -> torch.Tensor:
        """Mean loss of a batch (arguments as :meth:`Trainer._loss`): per prefix
        ``targets`` (B,); causal ``targets`` (B, L) with a loss where ``where`` holds."""
        if not callable(getattr(model, "score_candidates", None)):
            raise SlimkitError(
                f"train.loss is {self.kind}, but {type(model).__name__} has no "
                "score_candidates(item_seq, lengths, users, candidates, where).",
                hint="Subclass slimkit.fusions.base.Recommender (it provides one), or set "
                "train.loss=ce.",
            )
        if where is not None:
            targets = targets[where]  # (P,)
        rows = len(targets)
        if self.kind == "in-batch":
            draws = targets  # (R,) the batch's targets are the draws
            scores = model.score_candidates(seq, lengths, users, targets, where)  # (R, R)
            negative_scores = scores
        else:
            draws = self.draw(self.num_negatives)  # (K,)
            both = torch.cat([targets, draws])  # (R + K,) the targets' own columns first
            scores = model.score_candidates(seq, lengths, users, both, where)  # (R, R + K)
            negative_scores = scores[:, rows:]  # (R, K)
        positive = scores[:, :rows].diagonal()  # (R,) s_t
        log_expected = math.log(len(draws)) + self.log_q[draws]  # (K,) log(K Q(j))
        return corrected_softmax_loss(
            negative_scores, positive, targets, draws, log_expected.to(scores.dtype)
        )
