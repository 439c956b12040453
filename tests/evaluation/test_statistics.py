"""The paired bootstrap behind compare's "Δ vs plain" column, on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.evaluation.statistics import bootstrap_mean_ci, paired_difference


def test_interval_matches_the_normal_theory_interval_for_a_large_sample():
    rng = np.random.default_rng(0)
    values = rng.normal(0.3, 1.0, size=4000)
    mean, low, high = bootstrap_mean_ci(values)
    half = 1.959964 * values.std(ddof=1) / np.sqrt(values.size)
    assert mean == pytest.approx(values.mean())
    assert low == pytest.approx(mean - half, abs=0.15 * half)
    assert high == pytest.approx(mean + half, abs=0.15 * half)


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    # Per-user NDCG differences are skewed and mostly zero: draw something like them.
    # E[values] = (-0.5 + 0.6) / 5 = 0.02.
    true_mean, trials, covered = 0.02, 200, 0
    for _ in range(trials):
        values = rng.choice([-0.5, 0.0, 0.0, 0.0, 0.6], size=300) + rng.normal(0, 0.05, 300)
        _, low, high = bootstrap_mean_ci(values, resamples=1000)
        covered += low <= true_mean <= high
    assert 0.90 <= covered / trials <= 0.99


def test_constant_values_give_a_zero_width_interval():
    assert bootstrap_mean_ci(np.full(50, 0.25)) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError):
        bootstrap_mean_ci(np.array([]))


def test_pairing_removes_the_spread_between_users():
    rng = np.random.default_rng(2)
    reference = {42: rng.normal(0.0, 1.0, 500), 7: rng.normal(0.0, 1.0, 500)}
    row = {seed: values + 0.1 + rng.normal(0, 0.01, 500) for seed, values in reference.items()}
    row[99] = np.zeros(500)  # a seed the reference lacks is not paired
    diff = paired_difference(row, reference)
    assert diff.seeds == [7, 42] and diff.users == 500
    assert diff.diff == pytest.approx(0.1, abs=0.002)
    assert diff.high - diff.low < 0.01  # unpaired, the spread of 1.0 would give ~0.12
    assert diff.excludes_zero and diff.to_json()["excludes_zero"] is True


def test_a_difference_inside_the_noise_is_not_flagged():
    rng = np.random.default_rng(3)
    # The same hits spread over other users: the means are equal, the users differ.
    reference = {1: rng.binomial(1, 0.1, 800).astype(float)}
    row = {1: rng.permutation(reference[1])}
    diff = paired_difference(row, reference)
    assert diff.diff == 0.0
    assert diff.low < 0.0 < diff.high and not diff.excludes_zero


def test_rows_must_share_seeds_and_users():
    with pytest.raises(ValueError, match="no seed"):
        paired_difference({1: np.zeros(3)}, {2: np.zeros(3)})
    with pytest.raises(ValueError, match="users"):
        paired_difference({1: np.zeros(3)}, {1: np.zeros(4)})
