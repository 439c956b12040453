"""Tiny interaction logs and specs for the teach tests (no download needed)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

GENRES = ["Comedy", "Drama", "Action", "Horror", "Sci-Fi", "Romance"]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella"]


def write_tiny_log(folder: Path, *, users: int = 30, items: int = 60, per_user: int = 8, seed: int = 0) -> dict[str, str]:
    """A CSV log and item table: each user leans to one genre. Returns the two paths."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    item_rows = ["item_id,title,categories,brand"]
    genre_of = {}
    for i in range(1, items + 1):
        genre = GENRES[i % len(GENRES)]
        genre_of[i] = genre
        item_rows.append(f"i{i},Movie {i},{genre}|{GENRES[(i * 7) % len(GENRES)]},{BRANDS[i % len(BRANDS)]}")
    log_rows = ["user_id,item_id,timestamp"]
    for u in range(1, users + 1):
        favourite = GENRES[u % len(GENRES)]
        liked = [i for i in genre_of if genre_of[i] == favourite]
        chosen = rng.sample(liked, k=min(per_user - 2, len(liked))) + rng.sample(range(1, items + 1), k=2)
        for t, item in enumerate(chosen):
            log_rows.append(f"u{u},i{item},{1000 + 10 * t}")
    (folder / "log.csv").write_text("\n".join(log_rows) + "\n")
    (folder / "items.csv").write_text("\n".join(item_rows) + "\n")
    return {"path": str(folder / "log.csv"), "items_path": str(folder / "items.csv")}


def tiny_spec(folder: Path, teacher: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A raw spec over the tiny log with the given teacher section."""
    paths = write_tiny_log(folder)
    raw = {
        "dataset": {"kind": "csv", **paths, "item_text_template": "{title}; {categories}; {brand}"},
        "teacher": teacher,
    }
    raw.update(sections)
    return raw
