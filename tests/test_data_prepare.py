"""Preparation: leave-one-out split, k-core, ties, item text, and the cached data stage."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_data_helpers import FIXTURES, write_spec

from slimkit.data.prepare import k_core, prepare
from slimkit.data.raw import RawLog, make_interactions
from slimkit.data.split import leave_one_out_split
from slimkit.data.text import ItemTextTemplate, clean_text, field_text, truncate_tokens
from slimkit.datasets import CsvParams
from slimkit.errors import ConfigError
from slimkit.spec import load_spec
from slimkit.stages.data import load_prepared, run_data


def random_log(seed: int = 0, users: int = 60, items: int = 40, events: int = 900) -> RawLog:
    """A log with repeats, ties and short users, in shuffled file order."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, events)
    i = rng.integers(0, items, events)
    t = rng.integers(0, 50, events)  # few distinct times: many ties
    frame = make_interactions([f"u{x}" for x in u], [f"i{x}" for x in i], t)
    return RawLog(name="random", interactions=frame, source="random")


def params(**kw) -> CsvParams:
    return CsvParams(kind="csv", path="unused.csv", **kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leave_one_out_split_has_no_leakage(seed):
    raw = random_log(seed)
    ds = prepare(raw, params(min_item_interactions=2))
    split = leave_one_out_split(ds)
    frame = raw.interactions
    for u in range(ds.num_users):
        seq, times = ds.sequence(u), ds.sequence_timestamps(u)
        assert len(seq) >= 3
        train = split.train_sequence(u)
        assert np.array_equal(train, ds.train_items(u))
        assert np.array_equal(train, seq[:-2])
        assert split.valid_targets[u] == ds.valid_target(u) == seq[-2]
        assert split.test_targets[u] == ds.test_target(u) == seq[-1]
        # Chronology: nothing in training is later than a target.
        assert np.all(np.diff(times) >= 0)
        assert times[:-2].max(initial=times[-2]) <= times[-2] <= times[-1]
        # Model inputs stop before their target.
        assert np.array_equal(ds.valid_input(u), seq[:-2][-ds.max_seq_len :])
        assert np.array_equal(ds.test_input(u), seq[:-1][-ds.max_seq_len :])
        # Ties keep file order: among equal times, rows appear as in the file.
        raw_rows = frame[frame["user"] == ds.user_ids[u]]
        raw_rows = raw_rows.drop_duplicates(keep="first")
        expected = raw_rows.sort_values("timestamp", kind="stable")["item"].tolist()
        kept = {ds.item_ids[i] for i in seq}
        assert [ds.item_ids[i] for i in seq] == [x for x in expected if x in kept]
    assert split.train_items.shape[0] == ds.num_interactions - 2 * ds.num_users


def test_split_targets_never_in_training_part_on_ml100k_sample(tmp_path):
    # Each (user, item) pair occurs once in MovieLens, so by item id as well.
    ds = load_prepared(
        load_spec(write_spec(tmp_path, {"kind": "movielens", "path": FIXTURES / "ml-100k"})),
        progress=False,
    )
    split = leave_one_out_split(ds)
    for u in range(ds.num_users):
        train = set(split.train_sequence(u).tolist())
        assert split.valid_targets[u] not in train
        assert split.test_targets[u] not in train


def test_k_core_is_iterative_and_reaches_a_fixed_point():
    raw = random_log(3, users=80, items=60, events=700)
    ds = prepare(raw, params(min_user_interactions=4, min_item_interactions=4))
    user_counts = np.diff(ds.offsets)
    item_counts = np.bincount(ds.items, minlength=ds.num_items + 1)[1:]
    assert user_counts.min() >= 4 and item_counts.min() >= 4
    # A chain where each drop causes the next: D (2 events) goes, then items 3 and 4
    # fall to 1 event, then C falls to 2 events; A and B on items 0-2 remain.
    users = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 2, 3, 3])  # A=0 B=1 C=2 D=3
    items = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 3, 4])
    keep, rounds = k_core(users, items, np.ones(12, bool), min_user=3, min_item=2)
    assert rounds == 4
    assert sorted(set(users[keep].tolist())) == [0, 1] and sorted(set(items[keep].tolist())) == [
        0,
        1,
        2,
    ]


def test_dedupe_and_no_dedupe():
    frame = make_interactions(["a", "a", "a", "a"], ["x", "y", "y", "z"], [1, 2, 2, 3])
    raw = RawLog(name="d", interactions=frame)
    assert prepare(raw, params()).num_interactions == 3
    assert prepare(raw, params(dedupe=False)).num_interactions == 4


def test_no_user_left_is_an_error():
    frame = make_interactions(["a", "b"], ["x", "y"], [1, 2])
    from slimkit.errors import DataError

    with pytest.raises(DataError, match="no user is left"):
        prepare(RawLog(name="d", interactions=frame), params())


# -- item text ------------------------------------------------------------------------------
def test_clean_text_and_truncate():
    assert clean_text("<p>Fast &amp;amp; <b>fun</b>\n\t game</p>") == "Fast & fun game"
    assert clean_text("A&nbsp;B") == "A B"
    assert truncate_tokens("a b c d", 2) == "a b"
    assert truncate_tokens("a b", 5) == "a b"


def test_field_text_flattens_all_shapes():
    assert field_text([["Games", "PC"], ["Games", "Retro"]]) == "Games, PC, Retro"
    assert field_text({"Brand": "Ferro", "Color": ["red"]}) == "Brand: Ferro, Color: red"
    assert field_text(float("nan")) == "" and field_text(None) == ""
    assert field_text(12.0) == "12" and field_text(["a", "", None]) == "a"


def test_template_drops_text_of_missing_fields():
    t = ItemTextTemplate("{title}; {categories}; {brand}")
    assert t.render({"title": "Mug", "categories": "", "brand": "Cairn"}) == "Mug; Cairn"
    assert t.render({"categories": "Kitchen"}) == "Kitchen"
    assert t.render({}) == ""
    t = ItemTextTemplate("Title: {title}. Brand: {brand}.")
    assert t.render({"title": "Mug"}) == "Title: Mug."
    assert t.render({"brand": "Cairn"}) == "Brand: Cairn."


@pytest.mark.parametrize("bad", ["{title", "no fields", "{0}", "{title.x}"])
def test_bad_templates_are_config_errors(bad):
    with pytest.raises(ConfigError, match="item_text_template"):
        ItemTextTemplate(bad)


# -- the cached stage ---------------------------------------------------------------------------
def test_data_stage_does_the_work_once(tmp_path, monkeypatch, isolated_cache):
    from slimkit.datasets import movielens

    calls = []
    original = movielens.read_movielens_folder

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(movielens, "read_movielens_folder", counting)
    spec = load_spec(write_spec(tmp_path, {"kind": "movielens-100k", "path": FIXTURES / "ml-100k"}))
    first = run_data(spec, progress=False)
    second = run_data(spec, progress=False)
    assert (first.cached, second.cached) == (False, True)
    assert first.key == second.key and len(calls) == 1
    assert second.summary["interactions"] == 14
    assert (first.path / "spec.yaml").is_file() and (first.path / "inputs.json").is_file()
    a, b = load_prepared(spec, progress=False), load_prepared(spec, progress=False)
    assert len(calls) == 1 and np.array_equal(a.items, b.items) and a.item_text == b.item_text
    # A different preparation option is a different entry.
    other = run_data(
        spec.replace(dataset={**spec.to_dict()["dataset"], "max_seq_len": 7}), progress=False
    )
    assert not other.cached and other.key != first.key and len(calls) == 2


def test_data_stage_notices_an_input_edited_in_place(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text((FIXTURES / "csv" / "log.csv").read_text())
    spec = load_spec(write_spec(tmp_path, {"kind": "csv", "path": log}))
    assert run_data(spec, progress=False).summary["interactions"] == 6
    with open(log, "a") as handle:
        handle.write("carol,sku-9,2023-03-01T00:00:00Z,5\n")
    stamp = log.stat().st_mtime_ns + 5_000_000_000
    os.utime(log, ns=(stamp, stamp))
    again = run_data(spec, progress=False)
    assert not again.cached and again.summary["interactions"] == 9


def test_prepared_dataset_round_trip(tmp_path):
    ds = prepare(random_log(5), params())
    ds.save(tmp_path / "out")
    from slimkit.data.dataset import PreparedDataset

    back = PreparedDataset.load(tmp_path / "out")
    assert back.user_ids == ds.user_ids and back.item_ids == ds.item_ids
    assert np.array_equal(back.offsets, ds.offsets) and np.array_equal(back.has_text, ds.has_text)


def test_relative_path_from_another_folder_is_not_mistaken_for_the_cached_one(
    tmp_path, monkeypatch
):
    for name, extra in (("a", ""), ("b", "dave,sku-1,1\ndave,sku-2,2\ndave,sku-3,3\n")):
        folder = tmp_path / name
        folder.mkdir()
        text = "user_id,item_id,timestamp\nx,sku-1,1\nx,sku-2,2\nx,sku-3,3\n" + extra
        (folder / "log.csv").write_text(text)
    spec = load_spec(None, ["dataset.kind=csv", "dataset.path=log.csv"])
    monkeypatch.chdir(tmp_path / "a")
    assert run_data(spec, progress=False).summary["users"] == 1
    monkeypatch.chdir(tmp_path / "b")
    again = run_data(spec, progress=False)
    assert not again.cached and again.summary["users"] == 2
