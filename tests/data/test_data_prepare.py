"""Preparation: leave-one-out split, k-core, ties, item text, and the saved dataset."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.data import FIXTURES, prepared_dataset, write_spec

from slimkit.data.loaders import CsvParams
from slimkit.data.prepare import k_core, prepare
from slimkit.data.raw import RawLog, make_interactions
from slimkit.data.text import ItemTextTemplate, clean_text, field_text, truncate_tokens
from slimkit.errors import ConfigError
from slimkit.training.samples import evaluation_samples, training_samples


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


def sample_inputs(ds, samples) -> list[list[int]]:
    """Each sample's input items, read back from the flat event array."""
    return [ds.items[s : s + n].tolist() for s, n in zip(samples.starts, samples.lengths)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leave_one_out_split_has_no_leakage(seed):
    raw = random_log(seed)
    ds = prepare(raw, params(min_item_interactions=2, max_seq_len=4))
    frame = raw.interactions
    valid = evaluation_samples(ds.offsets, ds.items, ds.max_seq_len, "valid")
    test = evaluation_samples(ds.offsets, ds.items, ds.max_seq_len, "test")
    valid_inputs, test_inputs = sample_inputs(ds, valid), sample_inputs(ds, test)
    train = training_samples(ds.offsets, ds.items, ds.max_seq_len)
    for u in range(ds.num_users):
        seq, times = ds.sequence(u), ds.sequence_timestamps(u)
        assert len(seq) >= 3
        assert np.array_equal(ds.train_items(u), seq[:-2])
        assert valid.targets[u] == ds.valid_target(u) == seq[-2]
        assert test.targets[u] == ds.test_target(u) == seq[-1]
        # Chronology: nothing in training is later than a target.
        assert np.all(np.diff(times) >= 0)
        assert times[:-2].max(initial=times[-2]) <= times[-2] <= times[-1]
        # Model inputs are the last max_seq_len items before their target.
        assert valid_inputs[u] == seq[:-2][-ds.max_seq_len :].tolist()
        assert test_inputs[u] == seq[:-1][-ds.max_seq_len :].tolist()
        # Training samples predict items of the training part only, from earlier items.
        mine = np.flatnonzero(train.users == u)
        assert train.targets[mine].tolist() == seq[1:-2].tolist()
        assert all(s >= ds.offsets[u] for s in train.starts[mine])
        assert all(
            s + n == ds.offsets[u] + t
            for s, n, t in zip(train.starts[mine], train.lengths[mine], range(1, len(seq) - 2))
        )
        # Ties keep file order: among equal times, rows appear as in the file.
        raw_rows = frame[frame["user"] == ds.user_ids[u]]
        raw_rows = raw_rows.drop_duplicates(keep="first")
        expected = raw_rows.sort_values("timestamp", kind="stable")["item"].tolist()
        kept = {ds.item_ids[i] for i in seq}
        assert [ds.item_ids[i] for i in seq] == [x for x in expected if x in kept]
    assert len(train) == ds.num_interactions - 3 * ds.num_users


def test_split_targets_never_in_training_part_on_ml100k_sample(tmp_path):
    # Each (user, item) pair occurs once in MovieLens, so by item id as well.
    ds = prepared_dataset(write_spec(tmp_path, {"kind": "movielens", "path": FIXTURES / "ml-100k"}))
    valid = evaluation_samples(ds.offsets, ds.items, ds.max_seq_len, "valid")
    test = evaluation_samples(ds.offsets, ds.items, ds.max_seq_len, "test")
    for u in range(ds.num_users):
        train = set(ds.train_items(u).tolist())
        assert valid.targets[u] not in train
        assert test.targets[u] not in train


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


def test_prepared_dataset_round_trip(tmp_path):
    ds = prepare(random_log(5), params())
    ds.save(tmp_path / "out")
    from slimkit.data.dataset import PreparedDataset

    back = PreparedDataset.load(tmp_path / "out")
    assert back.user_ids == ds.user_ids and back.item_ids == ds.item_ids
    assert np.array_equal(back.offsets, ds.offsets) and np.array_equal(back.has_text, ds.has_text)


def test_row_places_name_rows_without_a_string_per_row():
    from slimkit.data.readers import RowPlaces

    rows = RowPlaces("row", count=3)
    assert len(rows) == 3 and [rows[i] for i in range(3)] == ["row 1", "row 2", "row 3"]
    lines = RowPlaces("line", np.array([2, 5, 9]))
    assert lines[1] == "line 5" and lines[-1] == "line 9" and str(lines[np.int64(0)]) == "line 2"
    with pytest.raises(IndexError):
        lines[3]
