"""Every dataset kind on small samples written in the exact published formats.

The fixtures under tests/fixtures/data/ are invented rows (no real MovieLens or Amazon
data); their expected numbers are worked out by hand in each test's comment.
"""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers.data import FIXTURES, cli, prepared_dataset, write_spec


def prepared(tmp_path, dataset: dict):
    return prepared_dataset(write_spec(tmp_path, dataset))


def history(ds, user: str) -> list[str]:
    return [ds.item_ids[i] for i in ds.sequence(ds.user_index(user))]


def stats_json(capsys, monkeypatch, spec) -> dict:
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec), "--json")
    assert code == 0, err
    return json.loads(out)


# -- MovieLens ------------------------------------------------------------------------
def test_ml100k_folder_numbers_order_and_text(tmp_path, capsys, monkeypatch):
    # u.data: 16 lines, users 1,2,3,5 kept; user 4 has 2 events and is dropped with its
    # items 5 and 7. Items left: 1,2,3,4,6,8; item 6 has no u.item line.
    spec = write_spec(tmp_path, {"kind": "movielens-100k", "path": FIXTURES / "ml-100k"})
    stats = stats_json(capsys, monkeypatch, spec)
    assert (stats["users"], stats["items"], stats["interactions"]) == (4, 6, 14)
    assert stats["items_with_text"] == 5
    assert stats["events_dropped_by_filter"] == 2
    ds = prepared_dataset(spec)
    # User 1 rated 3 and 1 at the same second: file order decides (3 first).
    assert history(ds, "1") == ["3", "1", "2", "4"]
    assert history(ds, "2") == ["3", "1", "4", "2"]
    assert history(ds, "5") == ["8", "1", "3"]
    text = {ds.item_ids[i]: ds.item_text[i] for i in range(1, ds.num_items + 1)}
    assert text["2"] == "Café Noir (1996); Crime, Film-Noir"  # latin-1 decoded
    assert text["4"] == "Paper Kites (1993); Children's, Comedy"
    assert text["6"] == "Item 6 (no metadata)"
    assert ds.info["items_without_text"] == 1
    assert not ds.has_text[ds.item_index("6")]
    # Users in order of first appearance, items 1..N in order of first appearance.
    assert ds.user_ids == ["1", "2", "3", "5"]
    assert ds.item_ids == ["", "3", "1", "2", "4", "6", "8"]


def test_ml100k_template_year_field(tmp_path):
    ds = prepared(
        tmp_path,
        {
            "kind": "movielens",
            "path": FIXTURES / "ml-100k",
            "item_text_template": "{categories} film from {year}",
        },
    )
    assert ds.item_text[ds.item_index("8")] == "Mystery film from 1998"


def test_ml1m_folder(tmp_path):
    # ratings.dat: users 1 (4 events), 2 (3), 3 (3); 5 movies, all in movies.dat.
    ds = prepared(tmp_path, {"kind": "movielens", "path": FIXTURES / "ml-1m"})
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (3, 5, 10)
    assert ds.item_text[ds.item_index("10")] == "Return: The Sequel (1999); Action, Sci-Fi"
    assert ds.item_text[ds.item_index("30")] == "Señor Tango (1992); Comedy, Musical, Romance"
    assert history(ds, "1") == ["50", "10", "30", "20"]


def test_movielens_100k_kind_reads_recbole_files_like_u_data(tmp_path):
    """The same ratings as RecBole atomic files give the same prepared dataset."""
    folder = tmp_path / "recbole-ml"
    folder.mkdir()
    lines = (FIXTURES / "ml-100k" / "u.data").read_text().splitlines()
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float", *lines]
    (folder / "ml-100k.inter").write_text("\n".join(inter) + "\n")
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "2\tCafé Noir\t1996\tCrime Film-Noir\n"
    )
    a = prepared(tmp_path, {"kind": "movielens-100k", "path": folder})
    b = prepared(tmp_path, {"kind": "movielens-100k", "path": FIXTURES / "ml-100k"})
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    assert np.array_equal(a.items, b.items) and np.array_equal(a.offsets, b.offsets)
    assert a.item_text[a.item_index("2")] == b.item_text[b.item_index("2")]


# -- RecBole atomic ---------------------------------------------------------------------
def test_recbole_atomic(tmp_path):
    # 11 lines: one exact duplicate (u1 i3 1020) dropped, u4 (1 event) dropped: 3 users,
    # items i1..i4, 9 events. i4 has no .item line; i9 is described but never rated.
    ds = prepared(
        tmp_path,
        {
            "kind": "recbole-atomic",
            "inter": FIXTURES / "recbole" / "sample.inter",
            "item": FIXTURES / "recbole" / "sample.item",
        },
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (3, 4, 9)
    assert ds.info["duplicates_dropped"] == 1
    assert history(ds, "u2") == ["i3", "i1", "i2"]
    assert history(ds, "u3") == ["i4", "i1", "i2"]  # tie at 950: file order
    assert ds.item_text[ds.item_index("i3")] == "Orbit & Beyond; Sci-Fi, Adventure"
    assert ds.item_text[ds.item_index("i4")] == "Item i4 (no metadata)"
    assert int(ds.has_text.sum()) == 3


def test_recbole_atomic_without_time_uses_file_order(tmp_path):
    ds = prepared(
        tmp_path,
        {
            "kind": "recbole-atomic",
            "inter": FIXTURES / "recbole" / "sample.inter",
            "timestamp_field": None,
            "dedupe": False,
        },
    )
    assert history(ds, "u2") == ["i1", "i3", "i2"]
    assert ds.info["time_unit"] == "order"


# -- Amazon ---------------------------------------------------------------------------
AMAZON_2018 = {
    "kind": "amazon",
    "reviews": FIXTURES / "amazon" / "reviews_2018.json",
    "meta": FIXTURES / "amazon" / "meta_2018.json",
}


def test_amazon_2018_without_k_core(tmp_path, capsys, monkeypatch):
    # Users A (4 reviews), B (3), C (3), D (2, dropped); 5 items, NCCV has no metadata.
    spec = write_spec(
        tmp_path, {**AMAZON_2018, "min_user_interactions": 0, "min_item_interactions": 0}
    )
    stats = stats_json(capsys, monkeypatch, spec)
    assert (stats["users"], stats["items"], stats["interactions"]) == (3, 5, 10)
    assert stats["items_with_text"] == 4
    ds = prepared_dataset(spec)
    text = {ds.item_ids[i]: ds.item_text[i] for i in range(1, ds.num_items + 1)}
    assert text["B00000DMAX"] == "Harbour Towns; Video Games, PC, Games; Northwind Games"
    assert text["B00001P4XA"] == "Sky Courier; Video Games, PC"
    assert text["B00002STGD"] == "Cube Puzzler; Tinker Co."
    assert ds.item_titles[ds.item_index("B00000DMAX")] == "Harbour Towns"


def test_amazon_iterative_k_core(tmp_path):
    # Round 1 drops D (2 < 3); then SVV1 and NCCV have 1 review (< 2) and go; then C is
    # left with 2 reviews and goes. Left: A and B on DMAX, P4XA, STGD.
    ds = prepared(tmp_path, {**AMAZON_2018, "min_user_interactions": 3, "min_item_interactions": 2})
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2, 3, 6)
    assert sorted(ds.user_ids) == ["A1ZQXD1JHGM1TP", "A3KQ9SMLXJ8RRW"]
    assert ds.info["k_core_rounds"] >= 3


def test_amazon_default_five_core_leaves_nobody(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path, AMAZON_2018)
    code, _, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec))
    assert code == 2
    assert "no user is left after filtering" in err and "min_user_interactions" in err


def test_amazon_gzip_reviews_and_meta(tmp_path):
    for name in ("reviews_2018.json", "meta_2018.json"):
        with (
            open(FIXTURES / "amazon" / name, "rb") as src,
            gzip.open(tmp_path / f"{name}.gz", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    ds = prepared(
        tmp_path,
        {
            "kind": "amazon",
            "reviews": tmp_path / "reviews_2018.json.gz",
            "meta": tmp_path / "meta_2018.json.gz",
            "min_user_interactions": 0,
            "min_item_interactions": 0,
        },
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (3, 5, 10)


def test_amazon_2014_python_literal_meta(tmp_path):
    # Two users with 3 reviews each on 3 items; AZJ's first two share a second.
    ds = prepared(
        tmp_path,
        {
            "kind": "amazon",
            "reviews": FIXTURES / "amazon" / "reviews_2014.json",
            "meta": FIXTURES / "amazon" / "meta_2014.json",
            "min_user_interactions": 0,
            "min_item_interactions": 0,
            "item_text_template": "{title}; {categories}; {brand}; {description}",
        },
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2, 3, 6)
    assert history(ds, "AZJ9DDRJ1MQGV") == ["0700099867", "7100027950", "6050036071"]
    text = {ds.item_ids[i]: ds.item_text[i] for i in range(1, 4)}
    assert text["0700099867"] == (
        "Dragon's Ledger; Video Games, PC, Games, Retro; Oldsoft; Classic dungeon crawler."
    )
    assert text["7100027950"] == "Video Games, Nintendo DS; Puzzle game, 'pocket' edition."


def test_amazon_2023_parent_asin_and_milliseconds(tmp_path):
    # Items are parent ASINs: B07H93H879 and B07H93H801 both roll up to B07H93H800.
    ds = prepared(
        tmp_path,
        {
            "kind": "amazon",
            "reviews": FIXTURES / "amazon" / "Video_Games_2023.jsonl",
            "meta": FIXTURES / "amazon" / "meta_Video_Games_2023.jsonl",
            "min_user_interactions": 0,
            "min_item_interactions": 0,
        },
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2, 4, 7)
    assert int(ds.has_text.sum()) == 3
    user = ds.user_index("AGKHLEW2SOWHNMFQIJGBECAF7INQ")
    assert ds.sequence_timestamps(user)[0] == 1588687728  # ms -> s
    assert ds.item_text[ds.item_index("B07H93H800")] == (
        "Starlight Racer DLC Bundle; Video Games, PC; Nova Works"
    )
    assert ds.info["format"] == "2023"


def test_item_text_truncated_to_token_budget(tmp_path):
    ds = prepared(
        tmp_path,
        {
            **AMAZON_2018,
            "min_user_interactions": 0,
            "min_item_interactions": 0,
            "item_text_template": "{title} {description}",
            "item_text_max_tokens": 4,
        },
    )
    assert ds.item_text[ds.item_index("B00000DMAX")] == "Harbour Towns Build a"


# -- CSV / Parquet / JSONL ----------------------------------------------------------------
CSV = {
    "kind": "csv",
    "path": FIXTURES / "csv" / "log.csv",
    "items_path": FIXTURES / "csv" / "items.csv",
}


def test_csv_iso_dates_and_item_table(tmp_path, capsys, monkeypatch):
    # alice 3, bob 3, carol 2 (dropped): 2 users, 3 items, 6 events; bob's sku-1 is
    # earliest although it comes later in the file.
    spec = write_spec(tmp_path, CSV)
    stats = stats_json(capsys, monkeypatch, spec)
    assert (stats["users"], stats["items"], stats["interactions"]) == (2, 3, 6)
    assert stats["items_with_text_share"] == 1.0
    ds = prepared_dataset(spec)
    assert history(ds, "bob") == ["sku-1", "sku-2", "sku-3"]
    assert ds.item_text[ds.item_index("sku-1")] == "Trail Mug, 350 ml; Kitchen; Cairn"
    assert ds.item_text[ds.item_index("sku-3")] == "Cast Pan; Cairn"
    assert ds.sequence_timestamps(ds.user_index("alice"))[0] == 1672912800


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "tsv", "csv.gz"])
def test_csv_kind_other_formats(tmp_path, fmt):
    frame = pd.read_csv(FIXTURES / "csv" / "log.csv", dtype=str)
    frame["timestamp"] = (
        pd.to_datetime(frame["timestamp"], utc=True) - pd.Timestamp("1970-01-01", tz="UTC")
    ) // pd.Timedelta(seconds=1)
    frame = frame.rename(columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"})
    path = tmp_path / f"log.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_csv(path, index=False, compression="gzip")
    ds = prepared(
        tmp_path,
        {
            "kind": "csv",
            "path": path,
            "user_column": "uid",
            "item_column": "iid",
            "timestamp_column": "ts",
        },
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2, 3, 6)
    assert history(ds, "bob") == ["sku-1", "sku-2", "sku-3"]
    assert ds.item_text[1] == f"Item {ds.item_ids[1]} (no metadata)"


def test_csv_strftime_format_and_milliseconds(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("u,i,t\nx,a,05/01/2023 10:00\nx,b,04/01/2023 10:00\nx,c,06/01/2023 10:00\n")
    ds = prepared(
        tmp_path,
        {
            "kind": "csv",
            "path": log,
            "user_column": "u",
            "item_column": "i",
            "timestamp_column": "t",
            "timestamp_format": "%d/%m/%Y %H:%M",
        },
    )
    assert history(ds, "x") == ["b", "a", "c"]
    ms = tmp_path / "ms.csv"
    ms.write_text("u,i,t\nx,a,1672912800000\nx,b,1672912700000\nx,c,1672912900500\n")
    ds = prepared(
        tmp_path,
        {
            "kind": "csv",
            "path": ms,
            "user_column": "u",
            "item_column": "i",
            "timestamp_column": "t",
        },
    )
    assert history(ds, "x") == ["b", "a", "c"]
    assert ds.sequence_timestamps(0).tolist() == [1672912700, 1672912800, 1672912900]


# -- the loader contract ------------------------------------------------------------------
LOADER_SAMPLES = {
    "movielens": {"kind": "movielens", "path": FIXTURES / "ml-100k"},
    "movielens-1m": {"kind": "movielens", "path": FIXTURES / "ml-1m"},
    "amazon-2014": {
        "kind": "amazon",
        "reviews": FIXTURES / "amazon" / "reviews_2014.json",
        "meta": FIXTURES / "amazon" / "meta_2014.json",
        "min_user_interactions": 0,
        "min_item_interactions": 0,
    },
    "amazon-2018": {**AMAZON_2018, "min_user_interactions": 0, "min_item_interactions": 0},
    "csv": CSV,
    "recbole-atomic": {
        "kind": "recbole-atomic",
        "inter": FIXTURES / "recbole" / "sample.inter",
        "item": FIXTURES / "recbole" / "sample.item",
    },
}


@pytest.mark.parametrize("sample", sorted(LOADER_SAMPLES))
def test_every_builtin_loader_passes_check_dataset(sample):
    from slimkit.components import implementation, params_model
    from slimkit.plugins import DatasetLoader, check_dataset

    section = {
        k: (str(v) if hasattr(v, "is_file") else v) for k, v in LOADER_SAMPLES[sample].items()
    }
    params = params_model("datasets", section["kind"]).model_validate(section)
    loader = implementation("datasets", section["kind"])
    assert isinstance(loader, DatasetLoader)
    report = check_dataset(loader, params)
    direct = prepared_dataset_from(loader, params)
    assert report["users"] == direct.num_users and report["interactions"] == direct.num_interactions
    assert report["events"] >= report["interactions"] > 0


def prepared_dataset_from(loader, params):
    from slimkit.data.prepare import prepare

    return prepare(loader(params), params)


def _csv_params():
    from slimkit.data.loaders import CsvParams

    return CsvParams(kind="csv", path=str(CSV["path"]))


def _log(**overrides):
    from slimkit.data.raw import RawLog, make_interactions

    frame = make_interactions(["a"] * 3 + ["b"] * 3, ["x", "y", "z"] * 2, [1, 2, 3] * 2)
    return RawLog(**{"name": "toy", "interactions": frame, **overrides})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: {"user": ["a"]}, "returned a dict, not a RawLog"),
        (lambda p: _log(time_unit="days"), "time_unit is 'days'"),
        (lambda p: _log(interactions=_log().interactions.iloc[:0]), "returned no interactions"),
        (
            lambda p: _log(interactions=_log().interactions.assign(timestamp=1.5)),
            "'timestamp'] has dtype float64, not int64",
        ),
        (
            lambda p: _log(
                interactions=_log().interactions.assign(
                    user=pd.Series(["a", "", "a", "b", "b", "b"], dtype="string")
                )
            ),
            "interactions['user'] is empty at row 1",
        ),
        (
            lambda p: _log(items=pd.DataFrame({"title": [["X"], "Y"]}, index=["x", "y"])),
            "item table column 'title' holds list",
        ),
        (
            lambda p, calls=[]: _log(
                name=f"call {len(calls)}",
                interactions=_log().interactions.iloc[len(calls.append(0) or calls) % 2 :],
            ),
            "different log",
        ),
        (lambda p: _log(interactions=_log().interactions.iloc[[0, 1, 3]]), "preparation rejects"),
        (lambda p: (_ for _ in ()).throw(KeyError("user_id")), "raised KeyError"),
    ],
)
def test_check_dataset_names_what_a_broken_loader_does(make, message):
    from slimkit.plugins import check_dataset

    with pytest.raises(AssertionError) as caught:
        check_dataset(make, _csv_params())
    assert message in str(caught.value) and "fix:" in str(caught.value)


def test_check_dataset_wants_the_kinds_params_model():
    from slimkit.plugins import check_dataset

    with pytest.raises(AssertionError, match="params is a dict, not the kind's Params model"):
        check_dataset(lambda p: _log(), {"kind": "csv"})
