"""Full ranking chunk by chunk (a large catalogue's evaluation): the same metrics and top-10
lists as scoring the whole catalogue at once, with and without history masking."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_causal import FUSIONS, build_any
from test_trainer import FixedScores, cyclic_dataset, make_dataset

from slimkit.evaluation.metrics import RunningRank, rank_counts
from slimkit.training import EvalOptions, Trainer, TrainOptions
from slimkit.training.options import ITEM_CHUNK, WHOLE_CATALOGUE


@pytest.mark.parametrize("chunk", [1, 3, 7, 30])
def test_running_rank_equals_rank_counts_with_many_ties(chunk):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40, 31), generator=gen).float()  # ties everywhere
    scores[:5, 3] = -torch.inf  # masked columns, one a target below
    targets = torch.randint(1, 31, (40,), generator=gen)
    targets[0] = 3
    rank = RunningRank(scores.gather(1, targets.view(-1, 1)).squeeze(1), targets, top=10)
    for first in range(0, 31, chunk):
        rank.add(scores[:, first : first + chunk], first)
    greater, ties = rank.counts()
    expected = rank_counts(scores, targets)
    assert greater.tolist() == expected[0].tolist() and ties.tolist() == expected[1].tolist()
    # The top-10 holds the 10 best scores (which of equal columns may differ).
    best = scores.topk(10, dim=1).values
    assert torch.equal(scores.gather(1, torch.as_tensor(rank.top_items())), best)


def evaluate_both(model, ds, chunk, **options):
    whole = Trainer(model, ds, TrainOptions(max_seq_len=10), EvalOptions(**options))
    chunked = Trainer(model, ds, TrainOptions(max_seq_len=10), EvalOptions(item_chunk=chunk, **options))
    return whole.evaluate("test"), chunked.evaluate("test")


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("chunk", [2, 3, 5])
def test_chunked_ranking_equals_the_whole_catalogue_on_fixed_scores(mask, chunk):
    # Targets: user 0 -> 4 (unseen), user 1 -> 6, user 2 -> 2, which repeats its history
    # (masked: ranks below every unmasked item).
    ds = make_dataset([[1, 2, 3, 4], [2, 5, 1, 6], [3, 2, 5, 2]], num_items=9)
    model = FixedScores([100.0, 6, 5, 4, 3, 2, 1, 8, 0.5, 7])
    whole, chunked = evaluate_both(model, ds, chunk, ks=(1, 3, 5), mask_history=mask)
    for name, values in whole.per_user.items():
        assert chunked.per_user[name].tolist() == values.tolist(), name
    assert chunked.metrics == whole.metrics
    # Top-10 lists agree on every unmasked item (the order among masked, -inf, items is
    # arbitrary in both).
    for user in range(ds.num_users):
        masked = {0} | (set(ds.sequence(user)[:-1].tolist()) if mask else set())
        kept_chunked = [i for i in chunked.top_items[user].tolist() if i not in masked]
        assert kept_chunked == [i for i in whole.top_items[user].tolist() if i not in masked]
        assert chunked.top_items[user][0] not in masked


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_chunked_ranking_equals_the_whole_catalogue_for_every_head(fusion, mask):
    ds = cyclic_dataset(num_users=40)
    model = build_any("sasrec", fusion, ds)
    whole, chunked = evaluate_both(model, ds, 6, ks=(5, 10, 20), mask_history=mask)
    for name, values in whole.per_user.items():
        assert chunked.per_user[name] == pytest.approx(values, abs=1e-9), name
    # The same top-10 scores (which of equal items may differ: text-match scores every item
    # 0 for its user without a rationale).
    model.eval()
    with torch.no_grad():
        items = model.item_matrix()  # (N + 1, D)
    for user in range(ds.num_users):
        history = torch.as_tensor(ds.sequence(user)[:-1][-10:]).view(1, -1)
        with torch.no_grad():
            vec = model(history, torch.tensor([history.size(1)]), torch.tensor([user]))[0]
        top_w = items[torch.as_tensor(whole.top_items[user])] @ vec
        top_c = items[torch.as_tensor(chunked.top_items[user])] @ vec
        assert torch.allclose(top_c, top_w, atol=1e-5)


def test_large_catalogues_are_chunked_by_default():
    opts = EvalOptions()
    assert opts.items_per_chunk(1_682) == 1_683
    assert opts.items_per_chunk(WHOLE_CATALOGUE - 1) == WHOLE_CATALOGUE
    assert opts.items_per_chunk(1_000_000) == ITEM_CHUNK
    assert EvalOptions(item_chunk=100).items_per_chunk(50) == 51
