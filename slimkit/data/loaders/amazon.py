"""Amazon reviews as McAuley's group publishes them, with item metadata.

Reviews (JSON lines, gzip or plain, told apart by content):

* 2014 / 2018: ``{"reviewerID": ..., "asin": ..., "unixReviewTime": <seconds>, ...}``;
* 2023: ``{"user_id": ..., "parent_asin": ..., "timestamp": <milliseconds>, ...}`` (items
  are the parent ASINs, as in the 2023 benchmark splits).

Metadata (``meta_*``): 2014 lines are Python dict literals (``categories``: a list of
category paths), 2018 lines JSON (``category``, ``feature``, ``main_cat``), 2023 lines
JSON keyed by ``parent_asin`` (``categories``, ``store``, ``details``, ``features``). All
become the fields ``title``, ``categories``, ``brand``, ``description``, ``features``,
``main_category`` and ``price``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from slimkit.data.raw import RawLog, make_interactions, skipped_info
from slimkit.data.readers import Column, check_file, first_record, read_json_lines
from slimkit.data.text import field_text
from slimkit.errors import DataError

TEXT_FIELDS = ("title", "categories", "brand", "description", "features", "main_category", "price")

REVIEW_FORMATS = {
    # format: (user key, item key, time key, time unit)
    "2014/2018": ("reviewerID", "asin", "unixReviewTime", "s"),
    "2023": ("user_id", "parent_asin", "timestamp", "ms"),
}
REVIEWS_EXPECTED = (
    "Amazon review JSON lines with reviewerID, asin, unixReviewTime (2014/2018) or "
    "user_id, parent_asin, timestamp (2023)"
)
META_EXPECTED = (
    "Amazon metadata lines (JSON or Python dict literals) with asin (2014/2018) or "
    "parent_asin (2023) and title, categories/category, brand/store, description"
)


def review_format(path: Path) -> str:
    """``"2014/2018"`` or ``"2023"`` from the first review's keys."""
    record = first_record(path, expected=REVIEWS_EXPECTED)
    for name, (user, item, time, _) in REVIEW_FORMATS.items():
        if user in record and item in record:
            return name
    raise DataError(
        f"{path}: the first review has the keys {', '.join(sorted(record)) or 'none'}; "
        f"expected {REVIEWS_EXPECTED}.",
        hint="dataset.reviews must be a reviews file; metadata goes in dataset.meta.",
    )


def read_reviews(path: Path, *, skip_bad_lines: bool) -> tuple[pd.DataFrame, str, str, dict]:
    """(interactions, time unit, format name, skipped-lines report) of a reviews file."""
    path = check_file(path, role="dataset.reviews", expected=REVIEWS_EXPECTED)
    fmt = review_format(path)
    user, item, time, unit = REVIEW_FORMATS[fmt]
    columns, bad = read_json_lines(
        path,
        {
            "user": Column(user, Column.ID),
            "item": Column(item, Column.ID),
            "timestamp": Column(time, Column.SECONDS),
        },
        expected=f"a {fmt} review with {user}, {item} and {time}",
        skip_bad_lines=skip_bad_lines,
    )
    interactions = make_interactions(columns["user"], columns["item"], columns["timestamp"])
    return interactions, unit, fmt, bad.report()


def _meta_fields(record: dict[str, Any]) -> dict[str, str]:
    """The normalised text fields of one metadata record (any of the three vintages)."""
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    brand = (
        record.get("brand") or record.get("store") or details.get("Brand") or details.get("brand")
    )
    return {
        "title": field_text(record.get("title")),
        "categories": field_text(record.get("categories") or record.get("category")),
        "brand": field_text(brand),
        "description": field_text(record.get("description"), sep=" "),
        "features": field_text(record.get("feature") or record.get("features"), sep=" "),
        "main_category": field_text(record.get("main_cat") or record.get("main_category")),
        "price": field_text(record.get("price")),
    }


def read_meta(
    path: Path, *, skip_bad_lines: bool, wanted: set[str] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Item table (index: item id) of a metadata file; ``wanted`` keeps only those ids."""
    path = check_file(path, role="dataset.meta", expected=META_EXPECTED)
    first = first_record(path, expected=META_EXPECTED, python_literals=True)
    if "parent_asin" in first:
        id_key = "parent_asin"
    elif "asin" in first:
        id_key = "asin"
    else:
        raise DataError(
            f"{path}, first line: no 'asin' or 'parent_asin' key (keys: "
            f"{', '.join(sorted(first)) or 'none'}); expected {META_EXPECTED}.",
            hint="dataset.meta must be a metadata file (meta_*.json[l][.gz]).",
        )
    keys = ("title", "categories", "category", "brand", "store", "details", "description",
            "feature", "features", "main_cat", "main_category", "price")  # fmt: skip
    spec = {"item": Column(id_key, Column.ID)}
    spec.update({k: Column(k, Column.ANY, required=False) for k in keys})
    columns, bad = read_json_lines(
        path,
        spec,
        expected=f"a metadata record with {id_key!r}",
        skip_bad_lines=skip_bad_lines,
        python_literals=True,
    )
    ids = columns.pop("item").tolist()
    rows: dict[str, list[str]] = {f: [] for f in TEXT_FIELDS}
    index = []
    for i, item in enumerate(ids):
        if wanted is not None and item not in wanted:
            continue
        record = {k: columns[k][i] for k in keys}
        for name, value in _meta_fields(record).items():
            rows[name].append(value)
        index.append(item)
    table = pd.DataFrame(rows, index=pd.Index(index, name="item", dtype=object))
    report = bad.report()
    report["records"] = len(ids)
    return table, report


def load_amazon(params) -> RawLog:
    """``amazon`` kind: a reviews file and an optional metadata file."""
    reviews = Path(params.reviews).expanduser()
    interactions, unit, fmt, review_report = read_reviews(
        reviews, skip_bad_lines=params.skip_bad_lines
    )
    reports = [review_report]
    items = None
    if params.meta is not None:
        wanted = set(interactions["item"].unique().tolist())
        items, meta_report = read_meta(
            Path(params.meta).expanduser(), skip_bad_lines=params.skip_bad_lines, wanted=wanted
        )
        reports.append(meta_report)
        if len(items) == 0:
            raise DataError(
                f"{params.meta}: none of its {meta_report['records']} item records matches "
                f"an item of the reviews in {reviews}.",
                hint="Check that both files are of the same category and vintage "
                "(2014/2018 use asin, 2023 parent_asin).",
            )
    name = reviews.name
    for suffix in (".gz", ".json", ".jsonl"):
        name = name.removesuffix(suffix)
    info = skipped_info(reports)
    info["format"] = fmt
    return RawLog(
        name=f"amazon-{name}",
        interactions=interactions,
        items=items,
        time_unit=unit,
        text_fields=TEXT_FIELDS,
        source=str(reviews),
        item_source=str(params.meta) if params.meta is not None else None,
        info=info,
    )
