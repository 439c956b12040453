"""Trainer, samples and the train stage on tiny synthetic datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from slimkit.data.dataset import PreparedDataset
from slimkit.errors import DataError, SlimkitError
from slimkit.pipeline import Pipeline
from slimkit.training.samples import (
    evaluation_samples,
    gather_batch,
    history_pairs,
    training_samples,
)


def make_dataset(sequences: list[list[int]], num_items: int, max_seq_len: int = 10):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    return PreparedDataset(
        name="toy",
        user_ids=[f"u{u}" for u in range(len(sequences))],
        item_ids=[""] + [f"i{i}" for i in range(1, num_items + 1)],
        offsets=offsets,
        items=items,
        timestamps=np.arange(len(items), dtype=np.int64),
        item_text=[""] + [f"item {i}" for i in range(1, num_items + 1)],
        item_titles=[""] + [f"item {i}" for i in range(1, num_items + 1)],
        has_text=np.ones(num_items + 1, dtype=bool),
        max_seq_len=max_seq_len,
    )


def cyclic_dataset(num_users=120, num_items=40, seed=0, max_seq_len=10):
    """Next item = previous + 1 (mod N): every backbone can learn it."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(num_users):
        n, start = int(rng.integers(5, 16)), int(rng.integers(0, num_items))
        seqs.append([(start + i) % num_items + 1 for i in range(n)])
    return make_dataset(seqs, num_items, max_seq_len)


# -- samples ------------------------------------------------------------------------------
def test_training_samples_one_per_prefix_like_recbole():
    # user 0: 1 2 3 4 5 6 (train part 1 2 3 4); user 1: 7 8 9 (train part 7: no sample)
    offsets = np.array([0, 6, 9])
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])
    s = training_samples(offsets, items, max_seq_len=2)
    assert s.users.tolist() == [0, 0, 0]
    assert s.targets.tolist() == [2, 3, 4]
    assert s.lengths.tolist() == [1, 2, 2]  # truncated to the last 2 items
    batch = gather_batch(torch.as_tensor(items), torch.as_tensor(s.starts), torch.as_tensor(s.lengths))
    assert batch.tolist() == [[1, 0], [1, 2], [2, 3]]


def test_evaluation_samples_and_history():
    offsets = np.array([0, 6, 9])
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])
    valid = evaluation_samples(offsets, items, 3, "valid")
    test = evaluation_samples(offsets, items, 3, "test")
    assert valid.targets.tolist() == [5, 8] and test.targets.tolist() == [6, 9]
    seq = gather_batch(torch.as_tensor(items), torch.as_tensor(test.starts), torch.as_tensor(test.lengths))
    assert seq.tolist() == [[3, 4, 5], [7, 8, 0]]
    rows, hist, pointer = history_pairs(offsets, items, "test")
    assert rows.tolist() == [0, 0, 0, 0, 0, 1, 1] and hist.tolist() == [1, 2, 3, 4, 5, 7, 8]
    assert pointer.tolist() == [0, 5, 7]


def test_too_small_dataset_is_a_data_error():
    with pytest.raises(DataError, match="too small"):
        training_samples(np.array([0, 3, 6]), np.arange(1, 7), 5)


# -- evaluation with fixed scores (a fake recommender; the real ones are trained below) ----
class FixedScores(torch.nn.Module):
    """Scores every item by a fixed vector, whatever the input."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.nn.Parameter(torch.as_tensor(scores, dtype=torch.float32))
        self.backbone = torch.nn.Linear(1, 1)

    def forward(self, item_seq, lengths, users):
        return torch.ones(len(item_seq), 1)

    def item_matrix(self):
        return self.scores.view(-1, 1)

    def score_all(self, item_seq, lengths, users):
        return self(item_seq, lengths, users) @ self.item_matrix().T


@pytest.mark.parametrize("mask", [True, False])
def test_evaluate_ranks_with_and_without_history_masking(mask):
    from slimkit.training import EvalOptions, Trainer, TrainOptions

    # Items 1..6 scored 6 > 5 > ... > 1 (item 1 best). Test targets: user 0 -> 4, user 1 -> 6.
    ds = make_dataset([[1, 2, 3, 4], [2, 5, 1, 6]], num_items=6)
    model = FixedScores([100.0, 6, 5, 4, 3, 2, 1])
    trainer = Trainer(model, ds, TrainOptions(max_seq_len=10), EvalOptions(ks=(1, 3), mask_history=mask))
    result = trainer.evaluate("test")
    if mask:
        # user 0: history {1,2,3} masked -> target 4 ranks 1st; user 1: {2,5,1} masked ->
        # above 6 remain 3, 4 -> rank 3.
        assert result.per_user["hit@1"].tolist() == [1.0, 0.0]
        assert result.per_user["ndcg@3"].tolist() == pytest.approx([1.0, 0.5])
    else:
        # Unmasked: target 4 ranks 4th, target 6 ranks 6th (padding never counts).
        assert result.per_user["hit@3"].tolist() == [0.0, 0.0]
    assert result.top_items.shape == (2, 6)
    assert 0 not in result.top_items[:, :3]


def test_sampled_protocol_ranks_among_negatives():
    from slimkit.training import EvalOptions, Trainer, TrainOptions

    ds = make_dataset([[1, 2, 3, 4], [2, 5, 1, 6]] * 3, num_items=30)
    scores = np.linspace(30, 0, 31)  # item 1 best ... item 30 worst
    trainer = Trainer(
        FixedScores(scores), ds, TrainOptions(max_seq_len=10),
        EvalOptions(ks=(1, 5), protocol="sampled", num_negatives=5),
    )
    result = trainer.evaluate("test")
    # The target beats every sampled negative that scores lower: hit@5 at least 1/6 chance.
    assert result.per_user["hit@5"].min() >= 0.0
    assert result.metrics["hit@5"] >= trainer.evaluate("test").metrics["hit@1"]
    negatives = trainer.evaluator.split_data("test")[2]
    assert negatives.shape == (6, 5)
    assert not set(negatives[0]) & {1, 2, 3, 4}


def test_k_larger_than_catalogue_is_an_error():
    from slimkit.training import EvalOptions, Trainer, TrainOptions

    ds = make_dataset([[1, 2, 3, 4]], num_items=4)
    with pytest.raises(SlimkitError, match="larger than the catalogue"):
        Trainer(FixedScores([0, 1, 2, 3, 4]), ds, TrainOptions(), EvalOptions(ks=(5, 10)))


# -- real training ---------------------------------------------------------------------------
def plain(name, ds, **params):
    from slimkit.components import implementation
    from slimkit.fusions.none import build_no_fusion

    backbone = implementation("backbones", name)(num_items=ds.num_items, max_seq_len=10, **params)
    return build_no_fusion(backbone, num_users=ds.num_users, num_items=ds.num_items)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "srgnn"])
def test_every_builtin_learns_a_simple_pattern(name):
    from slimkit.training import EvalOptions, TrainOptions, train_and_evaluate

    ds = cyclic_dataset()
    params = {"sasrec": {"hidden_size": 32, "num_layers": 1, "dropout": 0.1, "attn_dropout": 0.1}}
    result = train_and_evaluate(
        lambda: plain(name, ds, **params.get(name, {"hidden_size": 32})),
        ds,
        TrainOptions(epochs=6, batch_size=64, lr=5e-3, max_seq_len=10, patience=3),
        EvalOptions(ks=(1, 10)),
    )
    # Chance hit@10 is 10/40; the pattern is deterministic.
    assert result.report["test"]["hit@10"] > 0.8, result.report["test"]


def test_bce_loss_and_seeds_report():
    from slimkit.training import EvalOptions, TrainOptions, train_and_evaluate

    ds = cyclic_dataset(num_users=60)
    result = train_and_evaluate(
        lambda: plain("gru4rec", ds, hidden_size=16, gru_size=16),
        ds,
        TrainOptions(epochs=3, batch_size=64, lr=1e-2, loss="bce", num_negatives=2, max_seq_len=10),
        EvalOptions(ks=(5, 10)),
        seeds=[1, 2],
    )
    report = result.report
    assert [run["seed"] for run in report["seeds"]] == [1, 2]
    assert set(report["test"]) == {"hit@5", "ndcg@5", "mrr@5", "hit@10", "ndcg@10", "mrr@10"}
    values = [run["test"]["ndcg@10"] for run in report["seeds"]]
    assert report["test"]["ndcg@10"] == pytest.approx(np.mean(values))
    assert report["test_std"]["ndcg@10"] == pytest.approx(np.std(values, ddof=1))
    assert report["masked_history"] is True and report["protocol"] == "full"
    assert {"efd@10", "epc@10", "tail_share@10", "coverage@10", "hit@10_head", "hit@10_tail"} <= set(
        report["popularity"]
    )
    assert len(report["sparsity"]) == 5
    assert report["best_seed"] in (1, 2)


def test_same_seed_same_result_and_early_stopping():
    from slimkit.training import EvalOptions, TrainOptions, train_and_evaluate

    ds = cyclic_dataset(num_users=40)
    opts = TrainOptions(epochs=20, batch_size=64, lr=1e-9, max_seq_len=10, patience=2, seed=3)
    runs = [
        train_and_evaluate(lambda: plain("gru4rec", ds, hidden_size=8, gru_size=8), ds, opts, EvalOptions())
        for _ in range(2)
    ]
    assert runs[0].report["test"] == runs[1].report["test"]
    # lr ~ 0: nothing improves after the first epoch, so it stops after 1 + patience epochs.
    assert runs[0].report["seeds"][0]["epochs"] <= 1 + 2 + 1


# -- the stage and the CLI ------------------------------------------------------------------
def test_run_train_caches_and_load_trained_recommends(isolated_cache):
    from helpers.stages import cache_with_dataset

    from slimkit.spec import load_spec
    from slimkit.stages import train as train_stage

    ds = cyclic_dataset(num_users=60)
    spec = load_spec(
        None,
        [
            "fusion.kind=none",
            "backbone.kind=gru4rec",
            "backbone.hidden_size=16",
            "train.epochs=2",
            "train.batch_size=64",
            "dataset.max_seq_len=10",
        ],
    )
    cache = cache_with_dataset(spec, ds)
    first = Pipeline(spec, cache, progress=False).run("train")
    assert not first.cached
    metrics = json.loads((first.path / "metrics.json").read_text())
    assert metrics["masked_history"] is True and metrics["protocol"] == "full"
    assert "ndcg@10" in metrics["test"] and "efd@10" in metrics["popularity"]
    assert (first.path / "model.safetensors").is_file()
    again = Pipeline(spec, cache, progress=False).run("train")
    assert again.cached and again.path == first.path

    trained = Pipeline(spec, cache, progress=False).trained()
    recs = trained.recommend(0, k=5)
    assert len(recs) == 5
    history = set(ds.sequence(0).tolist())
    assert not history & {item for item, _ in recs}
    # The reloaded model reproduces the stored test metric.
    from slimkit.training import Trainer

    opts = train_stage.options_from_spec(spec, "cpu", 10)
    re_eval = Trainer(trained.model, ds, *opts).evaluate("test")
    assert re_eval.metrics["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-6)
    # Per-user test metrics are kept for paired comparisons, and average to the stored mean.
    from slimkit.artifacts.trained import read_per_user

    per_user = read_per_user(first.path)
    seed = metrics["seeds"][0]["seed"]
    assert list(per_user) == [seed] and per_user[seed]["ndcg@10"].shape == (ds.num_users,)
    assert float(per_user[seed]["ndcg@10"].mean()) == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-6)


def test_load_trained_before_training_is_stage_missing():
    from slimkit.errors import StageMissingError
    from slimkit.spec import load_spec

    with pytest.raises(StageMissingError, match="slimkit train"):
        Pipeline(load_spec(None, ["fusion.kind=none"]), progress=False).trained()


def test_cli_bad_backbone_sizes_exit_2():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "slimkit", "train", "--set", "fusion.kind=none",
         "--set", "backbone.num_heads=3"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "num_heads" in result.stderr and "Traceback" not in result.stderr


def test_cuda_without_gpu_is_a_user_error():
    from slimkit.runtime import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SlimkitError, match="cuda"):
        resolve_device("cuda")
