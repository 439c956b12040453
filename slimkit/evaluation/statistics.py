"""Is one row better than another, or inside the noise? A paired bootstrap over test users.

Two models evaluated on the same test users give one metric value per user each; the
difference of the means is the mean of the per-user differences, and resampling users
(with replacement) keeps each user's pair together. With several seeds a user's
difference is first averaged over the seeds both rows ran with (the user is the unit
that is resampled; seeds only lower the training noise inside each user's value). The
interval is scipy's bootstrap (BCa, 95 % by default) of that mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_SEED = 2403
"""Seed of the resampling: the same inputs always give the same interval."""


@dataclass(frozen=True)
class PairedDifference:
    """``diff`` = mean(row) - mean(reference) over the paired users, with its interval."""

    diff: float
    low: float
    high: float
    users: int
    seeds: list[int]
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of zero."""
        return self.low > 0.0 or self.high < 0.0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def bootstrap_mean_ci(
    values: np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its bootstrap confidence interval
    (BCa; percentile when BCa is undefined). Constant values give a zero-width interval."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    mean = float(values.mean())
    if values.size == 1 or np.ptp(values) == 0.0:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    result = bootstrap(
        (values,), np.mean, confidence_level=confidence, n_resamples=resamples,
        method="BCa", random_state=rng, vectorized=True,
    )
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa degenerate: fall back
        result = bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=resamples,
            method="percentile", random_state=np.random.default_rng(seed), vectorized=True,
        )
        low, high = result.confidence_interval
    return mean, float(low), float(high)


def paired_difference(
    row: Mapping[int, np.ndarray],
    reference: Mapping[int, np.ndarray],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> PairedDifference:
    """Per-seed arrays of one metric per test user (``{seed: (U,)}``) for a row and its
    reference; pooled over the seeds both have, then bootstrapped over users."""
    seeds = sorted(set(row) & set(reference))
    if not seeds:
        raise ValueError("the two rows share no seed")
    diffs = []
    for seed in seeds:
        a, b = np.asarray(row[seed], dtype=np.float64), np.asarray(reference[seed], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"seed {seed}: {a.shape[0]} users against {b.shape[0]}")
        diffs.append(a - b)
    per_user = np.mean(diffs, axis=0)
    mean, low, high = bootstrap_mean_ci(per_user, confidence=confidence, resamples=resamples)
    return PairedDifference(mean, low, high, int(per_user.size), seeds, confidence)


def seeds_of(per_user: Mapping[int, Mapping[str, np.ndarray]], metric: str) -> dict[int, np.ndarray]:
    """``{seed: per-user values}`` of one metric from ``{seed: {metric: (U,)}}``."""
    return {seed: values[metric] for seed, values in per_user.items() if metric in values}

