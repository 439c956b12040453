"""A small Amazon-2018-format category (reviews + metadata, gzipped JSON lines, as McAuley's
group publishes them, e.g. Video_Games.json.gz and meta_Video_Games.json.gz), written for
tests that run the Amazon example on data of its shape."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

GENRES = ["Action", "Adventure", "Puzzle", "Racing", "Role-Playing", "Sports"]
PLATFORMS = ["PC", "PlayStation 4", "Nintendo Switch", "Xbox One"]
BRANDS = ["Northwind Games", "Tinker Co.", "Ferro", "Harbour Interactive", "Skyline Studios"]


def write_amazon_2018(folder: Path, *, users: int = 24, items: int = 30, per_user: int = 12,
                      category: str = "Video_Games") -> dict[str, Path]:
    """``{"reviews": ..., "meta": ...}``: ``users`` reviewers with ``per_user`` reviews each
    over ``items`` products (every product reviewed by at least 5, so the example's 5-core
    keeps everyone), one review a day per reviewer, 2018 keys and value shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    asins = [f"B0{index:08d}" for index in range(items)]
    reviews = []
    for u in range(users):
        reviewer = f"A{u:03d}REVIEWER{u * 7919 % 10000:04d}"
        for j in range(per_user):
            item = (u + 7 * j) % items  # 7 and 30 coprime: distinct items per reviewer
            day = 1514764800 + 86400 * (u % 5 + 3 * j)  # from 2018-01-01, chronological per reviewer
            reviews.append({
                "overall": float(1 + (u + j) % 5), "verified": bool(j % 2),
                "reviewTime": "01 01, 2018", "reviewerID": reviewer, "asin": asins[item],
                "style": {"Platform:": f" {PLATFORMS[item % len(PLATFORMS)]}"},
                "reviewerName": f"Gamer {u}", "reviewText": f"Review {j} by reviewer {u}.",
                "summary": "Fun", "unixReviewTime": day,
            })
    meta = []
    for index, asin in enumerate(asins):
        genre = GENRES[index % len(GENRES)]
        meta.append({
            "category": ["Video Games", PLATFORMS[index % len(PLATFORMS)], "Games", genre],
            "tech1": "", "description": [f"A {genre.lower()} game with a story mode and online play."],
            "fit": "", "title": f"{genre} Chronicles {index}: The {['Lost', 'Last', 'Iron', 'Silver'][index % 4]} Realm",
            "also_buy": [asins[(index + 1) % items]], "tech2": "", "brand": BRANDS[index % len(BRANDS)],
            "feature": ["Single player", "Online multiplayer"], "rank": [f"{1000 + index} in Video Games ("],
            "also_view": [], "main_cat": "Video Games", "similar_item": "", "date": "",
            "price": f"${19 + index % 40}.99", "asin": asin, "imageURL": [], "imageURLHighRes": [],
        })
    paths = {"reviews": folder / f"{category}.json.gz", "meta": folder / f"meta_{category}.json.gz"}
    for key, rows in (("reviews", reviews), ("meta", meta)):
        with gzip.open(paths[key], "wt", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    return paths
