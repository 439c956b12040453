"""Ranking, popularity and sparsity metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slimkit.evaluation.metrics import mean_std, ranking_metrics, sample_negatives
from slimkit.evaluation.popularity import item_popularity, popularity_metrics, tail_items
from slimkit.evaluation.sparsity import sparsity_groups


def test_ranks_without_ties():
    # Target ranked 1st, 4th and 12th.
    m = ranking_metrics(np.array([0, 3, 11]), np.array([0, 0, 0]), [5, 10])
    assert m["hit@5"].tolist() == [1.0, 1.0, 0.0]
    assert m["hit@10"].tolist() == [1.0, 1.0, 0.0]
    assert m["ndcg@10"] == pytest.approx([1.0, 1 / math.log2(5), 0.0])
    assert m["mrr@10"] == pytest.approx([1.0, 0.25, 0.0])


def test_ties_are_broken_uniformly_in_expectation():
    # 1 item above, the target tied with 3 others: rank uniform over 2..5.
    m = ranking_metrics(np.array([1]), np.array([3]), [3, 10])
    assert m["hit@3"][0] == pytest.approx(2 / 4)  # ranks 2 and 3 of 2..5
    assert m["hit@10"][0] == pytest.approx(1.0)
    assert m["ndcg@3"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 4)
    assert m["mrr@10"][0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4)


def test_constant_scores_give_chance_level_not_perfect():
    torch = pytest.importorskip("torch")
    from slimkit.evaluation.metrics import rank_counts

    scores = torch.zeros(2, 101)
    greater, ties = rank_counts(scores, torch.tensor([0, 50]))
    assert greater.tolist() == [0, 0] and ties.tolist() == [100, 100]
    m = ranking_metrics(greater, ties, [10])
    assert m["hit@10"] == pytest.approx([10 / 101, 10 / 101])


def test_rank_counts_and_history_masking():
    torch = pytest.importorskip("torch")
    from slimkit.evaluation.metrics import mask_history, rank_counts

    # items 0..5; item 0 is padding. Target 3 for both rows.
    scores = torch.tensor([[9.0, 1.0, 5.0, 4.0, 4.0, 0.5], [9.0, 8.0, 7.0, 4.0, 1.0, 6.0]])
    targets = torch.tensor([3, 3])
    greater, ties = rank_counts(scores.clone(), targets)
    assert greater.tolist() == [2, 4] and ties.tolist() == [1, 0]  # padding 9.0 counts unmasked
    # Mask padding, row 0's history {2}, row 1's history {1, 5}.
    masked = scores.clone()
    mask_history(masked, np.array([0, 1, 1]), np.array([2, 1, 5]))
    greater, ties = rank_counts(masked, targets)
    assert greater.tolist() == [0, 1]  # row 0: nothing above 4; row 1: item 2 (7.0) above
    assert ties.tolist() == [1, 0]
    # A target that is itself in the history ranks below every unmasked item.
    masked = scores.clone()
    mask_history(masked, np.array([0]), np.array([3]))
    greater, _ = rank_counts(masked, targets)
    m = ranking_metrics(greater, np.array([3, 0]), [3])  # 4 unmasked items above it
    assert greater[0] == 4 and m["hit@3"][0] == 0.0


def test_sample_negatives_excludes_seen_items_and_is_seeded():
    offsets = np.array([0, 3, 6])
    items = np.array([1, 2, 3, 4, 5, 6])
    a = sample_negatives(offsets, items, num_items=20, num_negatives=10, seed=7)
    b = sample_negatives(offsets, items, num_items=20, num_negatives=10, seed=7)
    assert np.array_equal(a, b)
    assert a.shape == (2, 10)
    assert not set(a[0]) & {1, 2, 3} and not set(a[1]) & {4, 5, 6}
    assert all(len(set(row)) == 10 for row in a)  # without replacement
    # A user who saw almost everything: drawn from the complement.
    dense = sample_negatives(np.array([0, 17]), np.arange(1, 18), 20, 3, seed=1)
    assert sorted(dense[0]) == [18, 19, 20]
    with pytest.raises(ValueError):
        sample_negatives(np.array([0, 18]), np.arange(1, 19), 20, 3, seed=1)


def test_item_popularity_counts_training_part_only():
    # user 0: 1 2 1 | 3 4 ; user 1: 2 | 5 6 (the last two are valid/test)
    offsets = np.array([0, 5, 8])
    items = np.array([1, 2, 1, 3, 4, 2, 5, 6])
    counts = item_popularity(offsets, items, num_items=6)
    assert counts.tolist() == [0, 1, 2, 0, 0, 0, 0]  # distinct users, train part only


def test_tail_items_bottom_share():
    counts = np.array([0, 50, 1, 30, 2, 2, 9, 0, 4, 5, 3])  # 10 items
    tail = tail_items(counts, 0.8)
    assert tail[0] == False  # noqa: E712 - padding is neither head nor tail
    assert sorted(np.flatnonzero(~tail[1:]) + 1) == [1, 3]  # the 2 most popular are head


def test_efd_epc_hand_computed():
    counts = np.array([0, 8, 4, 2, 2])  # items 1..4, 16 interactions, 10 users
    top = np.array([[1, 3], [2, 4], [4, 1]])
    targets = np.array([3, 1, 4])  # hit at rank 2, miss, hit at rank 1
    hits = np.array([1.0, 0.0, 1.0])
    out = popularity_metrics(top, targets, hits, counts, num_train_users=10, k=2)
    disc = np.array([1.0, 1 / math.log2(3)])
    norm = disc.sum()
    nov3, nov4 = -math.log2(2 / 16), -math.log2(2 / 16)
    assert out["efd@2"] == pytest.approx((disc[1] * nov3 / norm + 0 + disc[0] * nov4 / norm) / 3)
    assert out["epc@2"] == pytest.approx((disc[1] * 0.8 / norm + disc[0] * 0.8 / norm) / 3)
    assert out["coverage@2"] == pytest.approx(4 / 4)
    # tail_share 0.8 of 4 items: head = ceil(0.8) = 1 item (item 1).
    assert out["tail_share@2"] == pytest.approx(4 / 6)  # item 1 listed twice
    assert out["tail_targets"] == pytest.approx(2 / 3)
    assert out["hit@2_head"] == 0.0 and out["hit@2_tail"] == 1.0


def test_sparsity_groups_split_users_by_history_length():
    lengths = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    per_user = {"ndcg@10": lengths / 10.0}
    groups = sparsity_groups(lengths, per_user, groups=5)
    assert [g["users"] for g in groups] == [2] * 5
    assert [(g["min_length"], g["max_length"]) for g in groups] == [
        (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)
    ]
    assert groups[0]["ndcg@10"] == pytest.approx(0.15)


def test_mean_std_over_seeds():
    mean, std = mean_std([{"ndcg@10": 0.2}, {"ndcg@10": 0.4}])
    # The sample sd (ddof=1) over seeds: sqrt(((0.1)^2 + (0.1)^2) / 1).
    assert mean["ndcg@10"] == pytest.approx(0.3) and std["ndcg@10"] == pytest.approx(0.02 ** 0.5)
    mean, std = mean_std([{"ndcg@10": 0.2}])
    assert mean == {"ndcg@10": 0.2} and std == {}  # one run: no spread, never "± 0"


def test_recommendation_curve_bins_items_by_popularity():
    from slimkit.evaluation.popularity import recommendation_curve

    counts = np.array([0, 50, 40, 30, 20, 10, 5])  # items 1..6, most popular first
    # Two seeds' top-2 lists: 6 of 8 slots go to the two most popular items.
    lists = [np.array([[1, 2], [1, 6]]), np.array([[2, 1], [1, 5]])]
    curve = recommendation_curve(lists, counts, bins=3)
    assert [g["items"] for g in curve] == [2, 2, 2]
    assert [g["share"] for g in curve] == pytest.approx([6 / 8, 0.0, 2 / 8])
    assert [g["mean_popularity"] for g in curve] == pytest.approx([45, 25, 7.5])
    assert sum(g["item_share"] for g in curve) == pytest.approx(1.0)
