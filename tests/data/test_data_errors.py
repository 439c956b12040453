"""Bad input through the CLI: one panel naming the file, the line and what was expected,
exit code 2, no traceback. ``skip_bad_lines`` skips, counts and reports instead."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
from helpers.data import FIXTURES, cli, write_spec

REVIEW = {"reviewerID": "A1", "asin": "B1", "unixReviewTime": 1262304000, "overall": 5.0}


def review_lines(n_users: int = 2, n_items: int = 3) -> list[str]:
    lines = []
    for u in range(n_users):
        for i in range(n_items):
            lines.append(
                json.dumps(
                    {
                        **REVIEW,
                        "reviewerID": f"U{u}",
                        "asin": f"I{i}",
                        "unixReviewTime": 1262304000 + 60 * i,
                    }
                )
            )
    return lines


def amazon(tmp_path, reviews, meta=None, **extra) -> dict:
    spec = {
        "kind": "amazon",
        "reviews": reviews,
        "min_user_interactions": 0,
        "min_item_interactions": 0,
        **extra,
    }
    if meta is not None:
        spec["meta"] = meta
    return write_spec(tmp_path, spec)


def fails(capsys, monkeypatch, spec, *expected: str) -> str:
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec))
    assert code == 2, (out, err)
    assert "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


# -- missing columns / keys ----------------------------------------------------------------
def test_csv_missing_column(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,time\nu,a,1\n")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(
        capsys,
        monkeypatch,
        spec,
        str(log),
        "no column 'timestamp' (dataset.timestamp_column)",
        "Columns found: user_id, item_id, time",
        "Did you mean 'time'?",
    )


def test_csv_wrong_separator_is_explained(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user_id;item_id;timestamp\nu;a;1\n")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(capsys, monkeypatch, spec, "seems to use another separator", "dataset.separator")


def test_item_table_missing_id_column(tmp_path, capsys, monkeypatch):
    items = tmp_path / "items.csv"
    items.write_text("sku,title\nsku-1,Mug\n")
    spec = write_spec(
        tmp_path, {"kind": "csv", "path": FIXTURES / "csv" / "log.csv", "items_path": items}
    )
    fails(capsys, monkeypatch, spec, str(items), "no column 'item_id' (dataset.items_id_column)")


def test_amazon_line_without_required_key(tmp_path, capsys, monkeypatch):
    lines = review_lines()
    record = json.loads(lines[2])
    del record["reviewerID"]
    lines[2] = json.dumps(record)
    reviews = tmp_path / "reviews.json"
    reviews.write_text("\n".join(lines) + "\n")
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews}, line 3: no 'reviewerID' field",
        "reviewerID, asin and unixReviewTime",
        "skip_bad_lines",
    )


def test_amazon_reviews_and_meta_swapped(tmp_path, capsys, monkeypatch):
    spec = amazon(tmp_path, FIXTURES / "amazon" / "meta_2018.json")
    fails(
        capsys,
        monkeypatch,
        spec,
        "meta_2018.json: the first review has the keys",
        "expected Amazon review JSON lines",
    )


def test_recbole_header_without_types(tmp_path, capsys, monkeypatch):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id\ttimestamp:float\nu\ti\t1\n")
    spec = write_spec(tmp_path, {"kind": "recbole-atomic", "inter": inter})
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{inter}, line 1, column 2: header field 'item_id' is not name:type",
    )


def test_recbole_missing_time_field(tmp_path, capsys, monkeypatch):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\tts:float\nu\ti\t1\n")
    spec = write_spec(tmp_path, {"kind": "recbole-atomic", "inter": inter})
    fails(
        capsys,
        monkeypatch,
        spec,
        "no field 'timestamp' in the header (dataset.timestamp_field)",
        "Fields: user_id, item_id, ts",
    )


def test_ml100k_line_with_too_few_fields(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ml"
    folder.mkdir()
    lines = (FIXTURES / "ml-100k" / "u.data").read_text().splitlines()
    lines[4] = "1\t2\t4"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path, {"kind": "movielens", "path": folder})
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{folder / 'u.data'}, line 5: too few fields",
        "4 tab-separated fields",
    )


# -- timestamps ---------------------------------------------------------------------------
def test_csv_unparsable_iso_timestamp(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu,a,2023-01-01\nu,b,yesterday\nu,c,2023-01-03\n")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{log}, line 3: 'timestamp' value 'yesterday' is not an ISO 8601",
    )


def test_csv_unparsable_numeric_timestamp(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu,a,100\nu,b,200\nu,c,2x\n")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{log}, line 4: 'timestamp' value '2x' is not a unix time number",
    )


def test_csv_timestamp_not_matching_format(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu,a,01/02/2023\nu,b,2023-02-02\nu,c,03/02/2023\n")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log, "timestamp_format": "%d/%m/%Y"})
    fails(
        capsys,
        monkeypatch,
        spec,
        "line 3: 'timestamp' value '2023-02-02' is not a date in the format '%d/%m/%Y'",
    )


def test_amazon_unparsable_time(tmp_path, capsys, monkeypatch):
    lines = review_lines()
    lines[1] = lines[1].replace("1262304060", '"soon"')
    reviews = tmp_path / "reviews.json"
    reviews.write_text("\n".join(lines) + "\n")
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews}, line 2: 'unixReviewTime' is 'soon', not a unix time number",
    )


def test_ml100k_unparsable_time(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ml"
    folder.mkdir()
    lines = (FIXTURES / "ml-100k" / "u.data").read_text().splitlines()
    lines[6] = "4\t5\t3\tnoon"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path, {"kind": "movielens", "path": folder})
    fails(capsys, monkeypatch, spec, "u.data, line 7: 'timestamp' value 'noon' is not a unix time")


# -- encodings ------------------------------------------------------------------------------
def test_amazon_not_utf8(tmp_path, capsys, monkeypatch):
    lines = [line.encode() for line in review_lines()]
    lines[2] = lines[2].replace(b'"U0"', b'"Jos\xe9"')
    reviews = tmp_path / "reviews.json"
    reviews.write_bytes(b"\n".join(lines) + b"\n")
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews}, line 3: not valid UTF-8 text (byte 0xe9",
    )


def test_csv_not_utf8_then_encoding_option(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_bytes("user_id,item_id,timestamp\nu,a,1\nu,caf\xe9,2\nu,b,3\n".encode("latin-1"))
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{log}, line 3: not valid utf-8 text (byte 0xe9 at column 6)",
        "dataset.encoding",
    )
    spec = write_spec(tmp_path, {"kind": "csv", "path": log, "encoding": "latin-1"})
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec), "--json")
    assert code == 0, err
    assert json.loads(out)["items"] == 3


def test_recbole_item_not_utf8(tmp_path, capsys, monkeypatch):
    item = tmp_path / "x.item"
    item.write_bytes(b"item_id:token\ttitle:token_seq\ni1\tCaf\xe9\n")
    spec = write_spec(
        tmp_path,
        {"kind": "recbole-atomic", "inter": FIXTURES / "recbole" / "sample.inter", "item": item},
    )
    fails(capsys, monkeypatch, spec, f"{item}, line 2: not valid utf-8 text")


# -- empty files -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,content,expected",
    [
        ("amazon", b"", "is empty; expected Amazon review JSON lines"),
        ("amazon", b"\n\n  \n", "holds no data (only blank lines)"),
        ("csv", b"", "is empty; expected an interaction log"),
        ("csv", b"user_id,item_id,timestamp\n", "holds no data rows"),
        ("movielens", b"", "is empty; expected ml-100k ratings"),
    ],
)
def test_empty_files(tmp_path, capsys, monkeypatch, kind, content, expected):
    if kind == "amazon":
        path = tmp_path / "reviews.json"
        spec = amazon(tmp_path, path)
    elif kind == "csv":
        path = tmp_path / "log.csv"
        spec = write_spec(tmp_path, {"kind": "csv", "path": path})
    else:
        (tmp_path / "ml").mkdir()
        path = tmp_path / "ml" / "u.data"
        spec = write_spec(tmp_path, {"kind": "movielens", "path": tmp_path / "ml"})
    path.write_bytes(content)
    fails(capsys, monkeypatch, spec, str(path), expected)


def test_missing_file(tmp_path, capsys, monkeypatch):
    spec = amazon(tmp_path, tmp_path / "nope.json")
    fails(capsys, monkeypatch, spec, "dataset.reviews:", "nope.json does not exist")


# -- metadata matching nothing --------------------------------------------------------------
def test_amazon_meta_matches_no_review(tmp_path, capsys, monkeypatch):
    spec = amazon(
        tmp_path,
        FIXTURES / "amazon" / "reviews_2018.json",
        meta=FIXTURES / "amazon" / "meta_Video_Games_2023.jsonl",
    )
    fails(
        capsys,
        monkeypatch,
        spec,
        "meta_Video_Games_2023.jsonl: none of its 3 item records matches",
        "reviews_2018.json",
    )


def test_csv_item_table_matches_no_interaction(tmp_path, capsys, monkeypatch):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\nzz-1,Other\nzz-2,Thing\n")
    spec = write_spec(
        tmp_path, {"kind": "csv", "path": FIXTURES / "csv" / "log.csv", "items_path": items}
    )
    fails(
        capsys,
        monkeypatch,
        spec,
        f"{items}: none of its 2 item ids matches",
        "metadata ids look like zz-1, zz-2",
        "interaction item ids like sku-1",
    )


def test_recbole_item_matches_no_interaction(tmp_path, capsys, monkeypatch):
    item = tmp_path / "x.item"
    item.write_text("item_id:token\ttitle:token_seq\nq1\tA\n")
    spec = write_spec(
        tmp_path,
        {"kind": "recbole-atomic", "inter": FIXTURES / "recbole" / "sample.inter", "item": item},
    )
    fails(capsys, monkeypatch, spec, f"{item}: none of its 1 item ids matches")


# -- gzip ----------------------------------------------------------------------------------
def test_gz_that_is_not_gzip(tmp_path, capsys, monkeypatch):
    reviews = tmp_path / "reviews.json.gz"
    reviews.write_text("\n".join(review_lines()) + "\n")
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews} is named .gz but is not gzip data",
        "expected gzip-compressed",
    )


def test_truncated_gzip(tmp_path, capsys, monkeypatch):
    data = gzip.compress(("\n".join(review_lines(20, 20)) + "\n").encode())
    reviews = tmp_path / "reviews.json.gz"
    reviews.write_bytes(data[: len(data) // 2])
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews}: the gzip data is corrupt or truncated",
    )


# -- skipping malformed lines ------------------------------------------------------------------
def test_malformed_json_line_stops_then_skip_counts(tmp_path, capsys, monkeypatch):
    lines = review_lines(3, 3)
    lines.insert(2, '{"reviewerID": "U0", "asin": ')
    lines.insert(5, "[1, 2, 3]")
    reviews = tmp_path / "reviews.json"
    reviews.write_text("\n".join(lines) + "\n")
    fails(
        capsys,
        monkeypatch,
        amazon(tmp_path, reviews),
        f"{reviews}, line 3: not valid JSON",
        "skip_bad_lines",
    )
    spec = amazon(tmp_path, reviews, skip_bad_lines=True)
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec), "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["skipped_lines"] == 2
    assert (stats["users"], stats["items"], stats["interactions"]) == (3, 3, 9)
    code, out, _ = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec))
    assert "malformed lines skipped" in out


def test_csv_extra_field_stops_then_skip_counts(tmp_path, capsys, monkeypatch):
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3,extra\nu,d,4\nv,a,1\nv,b,2\nv,x,\n"
    )
    spec = write_spec(tmp_path, {"kind": "csv", "path": log})
    fails(capsys, monkeypatch, spec, f"{log}, line 4: 4 fields where the file has 3")
    spec = write_spec(tmp_path, {"kind": "csv", "path": log, "skip_bad_lines": True})
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec), "--json")
    assert code == 0, err
    stats = json.loads(out)
    # line 4 (extra field) and line 8 (empty timestamp) skipped; v keeps 2 events: dropped.
    assert stats["skipped_lines"] == 2
    assert (stats["users"], stats["interactions"]) == (1, 3)


# -- spec mistakes and show ----------------------------------------------------------------------
def test_template_field_typo(tmp_path, capsys, monkeypatch):
    spec = write_spec(
        tmp_path,
        {
            "kind": "movielens",
            "path": FIXTURES / "ml-100k",
            "item_text_template": "{titel} ({year})",
        },
    )
    fails(
        capsys,
        monkeypatch,
        spec,
        "dataset.item_text_template: {titel} is not a field",
        "Did you mean 'title'?",
    )


def test_show_user_and_unknown_user(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path, {"kind": "movielens", "path": FIXTURES / "ml-100k"})
    code, out, err = cli(
        capsys, monkeypatch, "data", "show", "-c", str(spec), "--user", "1", "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert [e["item"] for e in shown["events"]] == ["3", "1", "2", "4"]
    assert [e["split"] for e in shown["events"]] == ["train", "train", "valid", "test"]
    assert shown["events"][0]["time"] == "1997-12-04 15:55"
    code, out, err = cli(capsys, monkeypatch, "data", "show", "-c", str(spec), "--user", "1")
    assert code == 0 and "Harbor Lights (1994)" in out and "valid" in out
    code, _, err = cli(capsys, monkeypatch, "data", "show", "-c", str(spec), "--user", "4")
    assert code == 2
    assert "User '4' is not in the prepared ml-100k dataset" in err and "fewer than 3 events" in err


def test_error_panel_through_the_installed_command(tmp_path):
    """The real console script: exit 2 and one panel, no traceback."""
    reviews = tmp_path / "reviews.json.gz"
    reviews.write_text("{}\n")
    spec = amazon(tmp_path, reviews)
    result = subprocess.run(
        [sys.executable, "-m", "slimkit", "data", "stats", "-c", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},
        check=False,
    )
    assert result.returncode == 2
    assert "not gzip data" in result.stderr and "Traceback" not in result.stderr
