"""The causal training mode: same targets as per prefix, no held-out item in a window,
the same loss (with stride 1 and no dropout), and every backbone x fusion head trains."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_trainer import cyclic_dataset, make_dataset

from slimkit.components import implementation, params_model
from slimkit.errors import SlimkitError
from slimkit.registry import registry
from slimkit.training import EvalOptions, Trainer, TrainOptions, train_and_evaluate
from slimkit.training.samples import (
    training_samples,
    training_windows,
    window_batch,
)


def random_sequences(seed: int, users: int = 30, longest: int = 40, num_items: int = 25):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, longest, size=users)
    lengths[0], lengths[1] = 3, 4  # no target, one target
    return [rng.integers(1, num_items + 1, size=int(n)).tolist() for n in lengths]


def flat(sequences):
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    return offsets, np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])


def window_targets(offsets, items, max_len, stride):
    """{(user, position): context length} of every loss position of the windows."""
    w = training_windows(offsets, items, max_len, stride)
    out = {}
    for u, start, n, first in zip(w.users, w.starts, w.lengths, w.first_loss, strict=True):
        begin = start - offsets[u]  # position of the window's first input in the sequence
        for j in range(first, n):
            key = (int(u), int(begin + j + 1))
            assert key not in out, "a target is in two windows"
            out[key] = j + 1
    return out


@pytest.mark.parametrize("max_len, stride", [(5, 1), (5, 2), (5, 5), (8, 3), (50, None)])
@pytest.mark.parametrize("seed", [0, 1])
def test_windows_hold_exactly_the_per_prefix_targets(max_len, stride, seed):
    offsets, items = flat(random_sequences(seed))
    samples = training_samples(offsets, items, max_len)
    per_prefix = {}
    for u, start, n in zip(samples.users, samples.starts, samples.lengths, strict=True):
        per_prefix[(int(u), int(start - offsets[u] + n))] = int(n)  # target position: context
    causal = window_targets(offsets, items, max_len, stride)
    assert set(causal) == set(per_prefix)
    assert training_windows(offsets, items, max_len, stride).num_targets == len(samples)
    effective = stride or (max_len + 1) // 2
    for key, context in causal.items():
        full = per_prefix[key]  # min(position, max_len)
        assert context <= full
        if key[1] <= max_len:
            assert context == full  # the first window: the whole history, as per prefix
        assert context >= min(full, max_len - effective + 1)
        if stride == 1:
            assert context == full


@pytest.mark.parametrize("max_len", [3, 6])
def test_no_validation_or_test_item_is_ever_an_input_or_a_target(max_len):
    # Items encode their position: user u's k-th item is 100 * u + k + 1, so the last two
    # of each user (validation, test) are recognisable.
    sequences = [[100 * u + k + 1 for k in range(n)] for u, n in enumerate([3, 4, 9, 17, 25])]
    offsets, items = flat(sequences)
    held_out = {s[-1] for s in sequences} | {s[-2] for s in sequences}
    windows = training_windows(offsets, items, max_len, 2)
    seq, lengths, _, targets, loss = window_batch(
        torch.as_tensor(items), windows, np.arange(len(windows))
    )
    real = torch.arange(seq.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    assert not set(seq[real].tolist()) & held_out
    assert not set(targets[loss].tolist()) & held_out
    assert (targets[real] == seq[real] + 1).all()  # each target is the next item
    assert int(loss.sum()) == sum(len(s) - 3 for s in sequences)


def test_stride_out_of_range_is_refused():
    offsets, items = flat(random_sequences(0))
    with pytest.raises(ValueError, match="stride"):
        training_windows(offsets, items, 5, 6)
    ds = cyclic_dataset(num_users=10)
    with pytest.raises(SlimkitError, match="window_stride"):
        Trainer(plain("gru4rec", ds), ds, TrainOptions(max_seq_len=10, window_stride=11), EvalOptions())


def plain(name, ds, max_len=10, **params):
    from slimkit.fusions.none import build_no_fusion

    backbone = implementation("backbones", name)(num_items=ds.num_items, max_seq_len=max_len, **params)
    return build_no_fusion(backbone, num_users=ds.num_users, num_items=ds.num_items)


NO_DROPOUT = {
    "sasrec": {"hidden_size": 16, "num_layers": 1, "inner_size": 32, "dropout": 0.0, "attn_dropout": 0.0},
    "gru4rec": {"hidden_size": 16, "gru_size": 16, "dropout": 0.0},
}


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_stride_1_causal_loss_and_gradients_equal_per_prefix(name):
    """With stride 1 every target has per-prefix's exact context: one full batch gives the
    same mean loss and the same gradients in both modes."""
    ds = make_dataset(random_sequences(3, users=12, longest=20, num_items=25), 25, max_seq_len=6)
    model = plain(name, ds, max_len=6, **NO_DROPOUT[name]).train()
    grads, losses = {}, {}
    for mode in ("causal", "per-prefix"):
        opts = TrainOptions(max_seq_len=6, mode=mode, window_stride=1, batch_size=10**6)
        trainer = Trainer(model, ds, opts, EvalOptions(ks=(5,)))
        model.zero_grad()
        if mode == "causal":
            batch = window_batch(trainer.events, trainer.train_windows, np.arange(trainer.num_rows))
        else:
            from slimkit.training.samples import sample_batch

            batch = (*sample_batch(trainer.events, trainer.train_samples, np.arange(trainer.num_rows)), None)
        loss = trainer._loss(*batch)
        loss.backward()
        losses[mode] = float(loss.detach())
        grads[mode] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert losses["causal"] == pytest.approx(losses["per-prefix"], rel=1e-5)
    for a, b in zip(grads["causal"], grads["per-prefix"], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_auto_picks_causal_where_supported_and_srgnn_falls_back():
    ds = cyclic_dataset(num_users=10)
    def mode_of(name, **options):
        return Trainer(plain(name, ds), ds, TrainOptions(max_seq_len=10, **options),
                       EvalOptions()).mode

    assert mode_of("sasrec") == "causal" and mode_of("gru4rec") == "causal"
    assert mode_of("srgnn") == "per-prefix"
    per_prefix = TrainOptions(max_seq_len=10, mode="per-prefix")
    assert Trainer(plain("sasrec", ds), ds, per_prefix, EvalOptions()).mode == "per-prefix"
    with pytest.raises(SlimkitError, match="train.mode is causal") as info:
        Trainer(plain("srgnn", ds), ds, TrainOptions(max_seq_len=10, mode="causal"), EvalOptions())
    assert "per-prefix" in info.value.hint


def test_a_batch_holds_about_batch_size_targets():
    ds = cyclic_dataset(num_users=200, max_seq_len=10)
    opts = TrainOptions(max_seq_len=10, batch_size=64)
    causal = Trainer(plain("gru4rec", ds), ds, opts, EvalOptions())
    per_prefix = Trainer(plain("gru4rec", ds), ds, TrainOptions(**{**opts.__dict__, "mode": "per-prefix"}), EvalOptions())
    assert causal.num_targets == per_prefix.num_targets
    assert abs(causal.batches_per_epoch - per_prefix.batches_per_epoch) <= 0.2 * per_prefix.batches_per_epoch


@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_causal_mode_learns_a_simple_pattern(name, loss):
    ds = cyclic_dataset()
    params = {"sasrec": {"hidden_size": 32, "num_layers": 1, "dropout": 0.1, "attn_dropout": 0.1},
              "gru4rec": {"hidden_size": 32}}[name]
    result = train_and_evaluate(
        lambda: plain(name, ds, **params),
        ds,
        TrainOptions(epochs=8, batch_size=64, lr=5e-3 if loss == "ce" else 1e-2, max_seq_len=10,
                     patience=3, loss=loss, num_negatives=4, mode="causal"),
        EvalOptions(ks=(1, 10)),
    )
    assert result.report["train_mode"] == "causal"
    assert result.report["test"]["hit@10"] > 0.8, result.report["test"]  # chance: 10/40


# -- every registered backbone x fusion head ----------------------------------------------
TEXT_DIM = 12


def side(ds, seed=0):
    gen = torch.Generator().manual_seed(seed)
    items = torch.nn.functional.normalize(torch.randn(ds.num_items + 1, TEXT_DIM, generator=gen), dim=-1)
    items[0] = 0
    rationales = torch.nn.functional.normalize(torch.randn(ds.num_users, TEXT_DIM, generator=gen), dim=-1)
    rationales[1] = 0  # a user without a rationale
    return items, rationales


def build_any(backbone: str, fusion: str, ds, **fusion_params):
    params = params_model("backbones", backbone)(kind=backbone, hidden_size=16).model_dump(exclude={"kind"})
    for key, small in (("inner_size", 32), ("gru_size", 16), ("num_layers", 1)):
        if key in params:
            params[key] = small
    net = implementation("backbones", backbone)(num_items=ds.num_items, max_seq_len=10, **params)
    fparams = params_model("fusions", fusion)(kind=fusion, **fusion_params).model_dump(exclude={"kind"})
    items, rationales = side(ds)
    return implementation("fusions", fusion)(
        net, num_users=ds.num_users, num_items=ds.num_items, item_vectors=items,
        rationale_vectors=rationales, **fparams,
    )


BACKBONES = registry("backbones").names()
FUSIONS = registry("fusions").names()


@pytest.mark.parametrize("loss", ["ce", "bce"])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_and_fusion_trains_one_epoch_in_auto_mode(backbone, fusion, loss):
    ds = cyclic_dataset(num_users=30)
    model = build_any(backbone, fusion, ds)
    opts = TrainOptions(epochs=1, batch_size=32, max_seq_len=10, loss=loss, num_negatives=2)
    trainer = Trainer(model, ds, opts, EvalOptions(ks=(5, 10)))
    causal_backbone = callable(getattr(model.backbone, "forward_positions", None))
    # text-match (the paper's history-free row by default) never runs the backbone, so it
    # trains causally on any backbone; every other head needs per-position backbone output.
    history_free = fusion == "text-match" and not model.use_history
    assert trainer.mode == ("causal" if causal_backbone or history_free else "per-prefix")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit = trainer.fit()
    assert fit.mode == trainer.mode and np.isfinite(fit.history[0]["loss"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_last_position_of_every_head_equals_forward(backbone, fusion):
    """A head's user vector after position n - 1 is its per-prefix user vector, and
    score_positions equals forward_positions @ item_matrix."""
    ds = cyclic_dataset(num_users=8)
    model = build_any(backbone, fusion, ds).eval()
    assert model.supports_positions()
    seq = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [2, 0, 0, 0, 0]])
    lengths, users = torch.tensor([3, 5, 1]), torch.tensor([0, 1, 5])
    with torch.no_grad():
        whole = model(seq, lengths, users)  # (B, D)
        positions = model.forward_positions(seq, lengths, users)  # (B, L, D)
        assert positions.shape == (3, 5, whole.size(1))
        assert torch.allclose(positions[torch.arange(3), lengths - 1], whole, atol=1e-5)
        # Each prefix alone gives the same vector as its position in the window.
        for t in range(1, 5):
            prefix = model(seq[1:2, :t], torch.tensor([t]), users[1:2])
            assert torch.allclose(positions[1, t - 1], prefix[0], atol=1e-5)
        where = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
        scores = model.score_positions(seq, lengths, users, where)
        assert torch.allclose(scores, positions[where] @ model.item_matrix().T, atol=1e-4)


def test_a_rationale_is_shared_by_the_positions_of_a_window():
    """slim's rationale dropout drops a user's rationale at every position or at none."""
    ds = cyclic_dataset(num_users=8)
    model = build_any("gru4rec", "slim", ds, rationale_dropout=0.5, dropout=0.0)
    model.train()
    model.backbone.emb_dropout.p = 0.0
    with torch.no_grad():  # at initialisation the rationale part weighs 0: give it weight
        torch.nn.init.normal_(model.user_fusion.fuse.weight)
    seq = torch.tensor([[1, 2, 3, 4]] * 64)
    users = torch.zeros(64, dtype=torch.long)
    lengths = torch.full((64,), 4)
    with torch.no_grad():
        out = model.forward_positions(seq, lengths, users)  # (64, 4, D)
        model.eval()
        kept = model.forward_positions(seq[:1], lengths[:1], users[:1])[0]  # rationale kept
    same_as_kept = torch.isclose(out, kept.unsqueeze(0), atol=1e-5).all(-1)  # (64, 4)
    # Per row, either every position kept the rationale or none did.
    assert (same_as_kept.all(1) | ~same_as_kept.any(1)).all()
    assert same_as_kept.all(1).any() and (~same_as_kept.any(1)).any()


def test_bert4rec_plugin_stays_per_prefix():
    """BERT4Rec reads the whole sequence (bidirectional): it has no causal per-position
    output, so auto trains it per prefix."""
    cls = implementation("backbones", "bert4rec")
    ds = cyclic_dataset(num_users=10)
    net = functools.partial(cls, hidden_size=16)(ds.num_items, 10)
    assert not callable(getattr(net, "forward_positions", None))
    from slimkit.fusions.none import build_no_fusion

    model = build_no_fusion(net, num_users=ds.num_users, num_items=ds.num_items)
    assert Trainer(model, ds, TrainOptions(max_seq_len=10), EvalOptions()).mode == "per-prefix"


# -- the stage ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, expected", [("auto", "causal"), ("per-prefix", "per-prefix")])
def test_train_stage_summary_says_which_mode_ran(isolated_cache, mode, expected):
    from helpers.stages import cache_with_dataset

    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    spec = load_spec(None, ["fusion.kind=none", "backbone.kind=sasrec", "backbone.hidden_size=16",
                            "backbone.num_layers=1", "train.epochs=1", "train.batch_size=64",
                            "dataset.max_seq_len=10", f"train.mode={mode}"])
    cache = cache_with_dataset(spec, cyclic_dataset(num_users=30))
    result = Pipeline(spec, cache, progress=False).run("train")
    summary = json.loads((result.path / "summary.json").read_text())
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert summary["train_mode"] == expected == metrics["train_mode"]
    assert metrics["seeds"][0]["train_mode"] == expected


def test_slimkit_train_says_which_mode_ran_and_when_threads_help():
    from typer.testing import CliRunner

    from slimkit.cli import app
    from slimkit.cli.train import mode_line

    assert "trained in causal mode" in mode_line({"train_mode": "causal", "seconds_per_epoch": 2.5})
    assert "2.5 s per epoch" in mode_line({"train_mode": "causal", "seconds_per_epoch": 2.5})
    assert "one sample per prefix" in mode_line({"train_mode": "per-prefix"})
    help_text = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    assert "SLIMKIT_NUM_THREADS" in help_text and "train.mode" in help_text
