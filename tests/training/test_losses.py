"""Sampled and in-batch softmax losses (training/losses.py): equal to full cross-entropy
when every item is a candidate once, tending to it as the sample grows (only with the
logQ correction), the correction computed from the known proposal, every fusion head
scoring candidates as it scores the whole catalogue, and training in both modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F
from test_causal import BACKBONES, FUSIONS, build_any
from test_trainer import cyclic_dataset, plain

from slimkit.spec import load_spec
from slimkit.training import EvalOptions, Trainer, TrainOptions, train_and_evaluate
from slimkit.training.losses import (
    POPULARITY_POWER,
    CandidateLoss,
    corrected_softmax_loss,
    proposal,
    training_target_counts,
)
from slimkit.training.samples import sample_batch, training_samples, window_batch


def full_ce(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over items 1..N of ``scores`` (R, N + 1)."""
    return F.cross_entropy(scores[:, 1:], targets - 1)


# -- the estimator ------------------------------------------------------------------------
def test_every_item_drawn_once_is_exactly_full_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(7, 31, generator=gen) * 3  # (R, N + 1), N = 30
    targets = torch.randint(1, 31, (7,), generator=gen)
    every = torch.arange(1, 31)  # each item once: K Q(j) = 1, no correction
    loss = corrected_softmax_loss(
        scores[:, every], scores.gather(1, targets.view(-1, 1)).squeeze(1), targets, every,
        torch.zeros(30),
    )
    assert float(loss) == pytest.approx(float(full_ce(scores, targets)), rel=1e-6)


def skewed_case(seed=0, items=60, rows=16):
    """Scores that favour popular items, a popularity proposal, and targets."""
    gen = torch.Generator().manual_seed(seed)
    counts = np.zeros(items + 1, dtype=np.int64)
    counts[1:] = (1000 / np.arange(1, items + 1) ** 1.2).astype(np.int64)  # Zipf-like
    popularity = torch.as_tensor(np.log1p(counts), dtype=torch.float32)  # (N + 1,)
    scores = popularity.unsqueeze(0) + 0.5 * torch.randn(rows, items + 1, generator=gen)
    targets = torch.randint(1, items + 1, (rows,), generator=gen)
    return counts, scores, targets


class FixedCandidates(torch.nn.Module):
    """Candidate scores read from a fixed (R, N + 1) table (the estimator alone)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def score_candidates(self, seq, lengths, users, candidates, where=None):
        return self.scores[:, candidates]


@pytest.mark.parametrize("sampler", ["popularity", "uniform"])
def test_a_large_sample_approaches_full_cross_entropy_only_with_the_correction(sampler):
    counts, scores, targets = skewed_case()
    exact = float(full_ce(scores, targets))
    torch.manual_seed(1)
    loss = CandidateLoss("sampled", counts, num_negatives=40_000, sampler=sampler)
    estimate = float(loss(FixedCandidates(scores), None, None, None, targets))
    assert estimate == pytest.approx(exact, rel=0.02)
    if sampler == "popularity":
        # The same draws counted as if uniform (no logQ correction) over-count the popular,
        # high-scoring items: far from the full loss.
        torch.manual_seed(1)
        draws = loss.draw(40_000)
        uncorrected = corrected_softmax_loss(
            scores[:, draws], scores.gather(1, targets.view(-1, 1)).squeeze(1), targets, draws,
            torch.full((40_000,), math.log(40_000 / 60)),
        )
        assert abs(float(uncorrected) - exact) > 0.2


def test_the_correction_is_log_of_the_expected_count_under_the_known_proposal(monkeypatch):
    counts = np.array([0, 9, 2, 0, 5])  # items 1..4
    q = proposal(counts, "popularity")
    weights = (counts[1:] + 1.0) ** POPULARITY_POWER
    assert q[1:] == pytest.approx(weights / weights.sum()) and q[0] == 0
    loss = CandidateLoss("sampled", counts, num_negatives=3, sampler="popularity")
    draws = torch.tensor([2, 3, 2])
    monkeypatch.setattr(loss, "draw", lambda k: draws)
    scores = torch.tensor([[0.0, 1.0, 0.5, -0.3, 2.0], [0.0, 0.2, 0.1, 0.4, -1.0]])
    targets = torch.tensor([1, 2])
    got = float(loss(FixedCandidates(scores), None, None, None, targets))
    expected = []
    for row, t in enumerate(targets.tolist()):
        s = scores[row].double()
        z = math.exp(s[t])
        for j in draws.tolist():
            if j != t:  # accidental hits left out
                z += math.exp(s[j]) / (3 * q[j])
        expected.append(-s[t] + math.log(z))
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_in_batch_draws_are_the_targets_corrected_by_their_training_frequency():
    counts = np.array([0, 6, 3, 1])  # 10 training targets
    loss = CandidateLoss("in-batch", counts)
    scores = torch.tensor([[0.0, 1.0, 0.5, -0.3], [0.0, 0.2, 0.1, 0.4], [0.0, -1.0, 2.0, 0.3]])
    targets = torch.tensor([1, 3, 1])
    got = float(loss(FixedCandidates(scores), None, None, None, targets))
    expected = []
    for row, t in enumerate(targets.tolist()):
        s = scores[row].double()
        z = math.exp(s[t])
        for j in targets.tolist():
            if j != t:
                z += math.exp(s[j]) / (3 * counts[j] / 10)
        expected.append(-s[t] + math.log(z))
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_draws_follow_the_proposal():
    counts = np.array([0, 100, 10, 0, 1000])
    loss = CandidateLoss("sampled", counts, sampler="popularity")
    torch.manual_seed(0)
    draws = loss.draw(200_000).numpy()
    assert draws.min() >= 1 and draws.max() <= 4
    freq = np.bincount(draws, minlength=5) / len(draws)
    assert freq == pytest.approx(proposal(counts, "popularity"), abs=0.005)


def test_target_counts_are_the_training_targets():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 9, size=int(n)) for n in rng.integers(3, 12, size=20)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    items = np.concatenate(seqs)
    expected = np.bincount(training_samples(offsets, items, 5).targets, minlength=9)
    assert training_target_counts(offsets, items, 8).tolist() == expected.tolist()


# -- every fusion head: candidates scored as the whole catalogue ---------------------------
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("mode", ["per-prefix", "causal"])
def test_all_items_as_candidates_equals_full_ce_for_every_head(fusion, mode):
    ds = cyclic_dataset(num_users=12)
    model = build_any("sasrec", fusion, ds).eval()  # no dropout: both paths see one model
    trainer = Trainer(model, ds, TrainOptions(max_seq_len=10, mode=mode), EvalOptions(ks=(5,)))
    rows = np.arange(min(20, trainer.num_rows))
    every = torch.arange(1, ds.num_items + 1)
    with torch.no_grad():
        if mode == "causal":
            seq, lengths, users, targets, where = window_batch(trainer.events, trainer.train_windows, rows)
            full = model.score_positions(seq, lengths, users, where)  # (P, N + 1)
            targets = targets[where]
        else:
            seq, lengths, users, targets = sample_batch(trainer.events, trainer.train_samples, rows)
            where = None
            full = model.score_all(seq, lengths, users)  # (B, N + 1)
        some = model.score_candidates(seq, lengths, users, every, where)
    assert torch.allclose(some, full[:, 1:], atol=1e-5)
    positive = full.gather(1, targets.view(-1, 1)).squeeze(1)
    loss = corrected_softmax_loss(some, positive, targets, every, torch.zeros(len(every)))
    assert float(loss) == pytest.approx(float(full_ce(full, targets)), rel=1e-5)


@pytest.mark.parametrize("loss", ["sampled", "in-batch"])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_and_fusion_trains_with_the_candidate_losses(backbone, fusion, loss):
    """One epoch in auto mode (causal or per prefix), never scoring the whole catalogue."""
    ds = cyclic_dataset(num_users=30)
    model = build_any(backbone, fusion, ds)

    def refuse(*args, **kwargs):
        raise AssertionError("the candidate loss scored the whole catalogue")

    model.score_all = refuse
    model.score_positions = refuse
    opts = TrainOptions(epochs=1, batch_size=32, max_seq_len=10, loss=loss, sampled_negatives=8)
    trainer = Trainer(model, ds, opts, EvalOptions(ks=(5, 10), item_chunk=7))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit = trainer.fit()
    assert np.isfinite(fit.history[0]["loss"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("loss", ["sampled", "in-batch"])
@pytest.mark.parametrize("mode", ["causal", "per-prefix"])
def test_the_candidate_losses_learn_a_simple_pattern(mode, loss):
    ds = cyclic_dataset()
    result = train_and_evaluate(
        lambda: plain("gru4rec", ds, hidden_size=32),
        ds,
        TrainOptions(epochs=6, batch_size=64, lr=5e-3, max_seq_len=10, patience=3, loss=loss,
                     sampled_negatives=16, mode=mode),
        EvalOptions(ks=(1, 10)),
    )
    assert result.report["train_mode"] == mode
    assert result.report["test"]["hit@10"] > 0.8, result.report["test"]  # chance: 10/40


def test_the_spec_fields_reach_the_trainer():
    from slimkit.stages.train import options_from_spec

    spec = load_spec(None, ["train.loss=sampled", "train.sampled_negatives=64",
                            "train.negative_sampler=uniform"])
    train, _ = options_from_spec(spec, "cpu", 10)
    assert (train.loss, train.sampled_negatives, train.negative_sampler) == ("sampled", 64, "uniform")
    assert load_spec(None, ["train.loss=in-batch"]).train.loss == "in-batch"
