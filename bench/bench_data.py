"""Benchmark: load and prepare a 1M-interaction log in the Amazon 2018 format.

Generates (outside the timing) a gzip reviews file with one million reviews in the
published 2018 layout (``reviewerID``, ``asin``, ``unixReviewTime``, review text, votes,
styles, ...) and a metadata file for its items, with skewed user and item popularity
like a real category; then runs the ``data`` stage (read, dedupe, 5-core, sort, remap,
item text, save) in a fresh child process and reports wall time and the child's peak
resident memory. Target: under 20 s and under 2 GB on a 2-core machine.

    python bench/bench_data.py [--interactions 1000000] [--workdir DIR] [--keep]

Prints a table and writes bench/results/bench_data.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORDS = [
    "game",
    "play",
    "fun",
    "great",
    "story",
    "graphics",
    "controls",
    "level",
    "boss",
    "hours",
    "worth",
    "price",
    "bought",
    "son",
    "daughter",
    "love",
    "hate",
    "bug",
    "patch",
    "online",
    "multiplayer",
    "campaign",
    "sequel",
    "classic",
    "console",
    "pc",
    "disc",
    "download",
    "works",
    "fine",
    "broke",
    "returned",
    "recommend",
    "again",
    "better",
    "worse",
    "than",
    "expected",
    "music",
    "sound",
    "voice",
    "acting",
    "puzzle",
    "quest",
    "character",
    "world",
    "open",
    "map",
    "short",
    "long",
    "easy",
    "hard",
]


def generate(folder: Path, interactions: int, seed: int = 0) -> tuple[Path, Path, float]:
    """Write reviews_Bench.json.gz and meta_Bench.json.gz; returns (reviews, meta, seconds)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    num_users = max(10, interactions // 4)
    num_items = max(10, interactions // 16)
    user_weights = rng.pareto(1.3, num_users) + 1.0
    item_weights = rng.pareto(1.1, num_items) + 1.0
    users = rng.choice(num_users, interactions, p=user_weights / user_weights.sum())
    items = rng.choice(num_items, interactions, p=item_weights / item_weights.sum())
    times = rng.integers(946684800, 1538352000, interactions)  # 2000-01-01 .. 2018-10-01
    # Reuse a pool of review texts: realistic line lengths without slow generation.
    pool = [
        " ".join(rng.choice(WORDS, int(rng.integers(15, 120)))).capitalize() + "."
        for _ in range(4000)
    ]
    texts = rng.integers(0, len(pool), interactions)
    stars = rng.integers(1, 6, interactions)
    reviews = folder / "reviews_Bench.json.gz"
    with gzip.open(reviews, "wt", encoding="utf-8", compresslevel=1) as out:
        for n in range(interactions):
            t = int(times[n])
            record = {
                "overall": float(stars[n]),
                "verified": bool(n % 3),
                "reviewTime": datetime.fromtimestamp(t, timezone.utc).strftime("%m %d, %Y"),
                "reviewerID": f"A{users[n]:013d}",
                "asin": f"B{items[n]:09d}",
                "reviewerName": f"Reviewer {users[n] % 9973}",
                "reviewText": pool[texts[n]],
                "summary": pool[texts[n]][:30],
                "unixReviewTime": t,
            }
            if n % 5 == 0:
                record["vote"] = str(n % 17)
            if n % 4 == 0:
                record["style"] = {"Platform:": " PC Download"}
            out.write(json.dumps(record))
            out.write("\n")
    meta = folder / "meta_Bench.json.gz"
    with gzip.open(meta, "wt", encoding="utf-8", compresslevel=1) as out:
        for i in range(num_items):
            if i % 20 == 19:
                continue  # some items lack metadata, as in the real dumps
            record = {
                "category": [
                    "Video Games",
                    ["PC", "Xbox", "PlayStation", "Nintendo"][i % 4],
                    "Games",
                ],
                "description": [f"<p>{pool[i % len(pool)]}</p>"],
                "title": f"Bench Game {i} &amp; Friends",
                "brand": f"Studio {i % 500}",
                "feature": ["Single player", "Online"],
                "main_cat": "Video Games",
                "price": f"${i % 60}.99",
                "asin": f"B{i:09d}",
            }
            out.write(json.dumps(record))
            out.write("\n")
    return reviews, meta, time.perf_counter() - start


def child(spec_path: str, cache_dir: str) -> None:
    """Run the data stage once; print phase timings as JSON."""
    from slimkit.cache import StageCache
    from slimkit.components import implementation
    from slimkit.data.prepare import prepare
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    spec = load_spec(spec_path)
    start = time.perf_counter()
    raw = implementation("datasets", spec.dataset.kind)(spec.dataset)
    loaded = time.perf_counter()
    dataset = prepare(raw, spec.dataset)
    prepared = time.perf_counter()
    del raw, dataset
    # The full stage as `slimkit data stats` runs it (read + prepare + save), timed alone.
    stage_start = time.perf_counter()
    result = Pipeline(spec, StageCache(cache_dir), progress=False).run("data")
    stage = time.perf_counter() - stage_start
    print(
        json.dumps(
            {
                "load_s": loaded - start,
                "prepare_s": prepared - loaded,
                "stage_s": stage,
                "summary": result.summary,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="Where to write the log.")
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slimkit-bench-data-"))
    workdir.mkdir(parents=True, exist_ok=True)
    reviews, meta = workdir / "reviews_Bench.json.gz", workdir / "meta_Bench.json.gz"
    gen_s = 0.0
    if not (reviews.exists() and meta.exists()):
        reviews, meta, gen_s = generate(workdir, args.interactions)
    spec = workdir / "spec.yaml"
    spec.write_text(
        "dataset:\n  kind: amazon\n"
        f"  reviews: {reviews}\n  meta: {meta}\n"
        "  min_user_interactions: 5\n  min_item_interactions: 5\n"
    )
    cache = workdir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "SLIMKIT_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(spec), str(cache)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = report.pop("summary")
    result = {
        "benchmark": "data stage on an Amazon-2018-format log",
        "interactions_generated": args.interactions,
        "reviews_file_bytes": reviews.stat().st_size,
        "generate_s": round(gen_s, 2),
        "load_s": round(report["load_s"], 2),
        "prepare_s": round(report["prepare_s"], 2),
        "stage_s (read+prepare+save)": round(report["stage_s"], 2),
        "child_wall_s (both runs + imports)": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "after_5core": {k: summary[k] for k in ("users", "items", "interactions")},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "note": "2-core shared CPU, no GPU; other processes were running",
        "targets": {"stage_s": 20, "peak_rss_mb": 2048},
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    out = HERE / "results" / "bench_data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
