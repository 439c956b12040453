"""Benchmark the teach stage on this machine.

1. ``litellm`` teacher against the fake OpenAI-compatible server (tests/helpers/fake_openai_server.py)
   answering after ``--latency`` seconds, ``--users`` users, ``--concurrency`` requests in
   flight, each run a fresh ``slimkit teach --json`` process (what a user types):
   - cold: empty cache, every request sent (target < 30 s for 1,000 users at 0.5 s, 32);
   - warm, stage cached: the stage output is reused (target < 3 s);
   - warm, responses cached: the stage output deleted, every response from the record
     cache, zero requests sent (target < 3 s).
2. ``local`` teacher: tokens/s of SmolLM2-135M-Instruct decoding ml-100k teacher prompts
   (after a warm-up batch), batch 8 and batch 1, with the step scaffold.

Prints a table and writes bench/results/teach.json.

    python bench/bench_teach.py                       # full (1,000 users; ~2 min + local)
    python bench/bench_teach.py --users 200 --local-users 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))


def synthetic_log(folder: Path, users: int, seed: int = 0) -> dict[str, str]:
    """A CSV log of ``users`` users x 12 events over 500 items with genres and brands."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    genres = ["Comedy", "Drama", "Action", "Horror", "Sci-Fi", "Romance", "Thriller", "Animation"]
    items = ["item_id,title,categories,brand"]
    for i in range(1, 501):
        items.append(f"i{i},Title {i},{genres[i % 8]}|{genres[(i * 3) % 8]},Brand{i % 17}")
    log = ["user_id,item_id,timestamp"]
    for u in range(users):
        for t, item in enumerate(rng.sample(range(1, 501), 12)):
            log.append(f"u{u},i{item},{1000 + t}")
    (folder / "items.csv").write_text("\n".join(items) + "\n")
    (folder / "log.csv").write_text("\n".join(log) + "\n")
    return {"path": str(folder / "log.csv"), "items_path": str(folder / "items.csv")}


def _teach(spec_path: Path, env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "slimkit", "teach", "-c", str(spec_path), "--json"],
        check=False, capture_output=True, text=True, env=env,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"slimkit teach failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout)


def bench_litellm(users: int, latency: float, concurrency: int) -> dict:
    from helpers.fake_openai_server import FakeOpenAIServer

    with tempfile.TemporaryDirectory(prefix="bench-teach-") as tmp, FakeOpenAIServer(latency=latency) as server:
        tmp = Path(tmp)
        spec = {
            "dataset": {"kind": "csv", **synthetic_log(tmp / "data", users)},
            "teacher": {
                "kind": "litellm", "model": "openai/gpt-4o-mini", "api_base": server.url,
                "num_users": users, "concurrency": concurrency, "timeout": 30,
            },
        }
        spec_path = tmp / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        env = {**os.environ, "SLIMKIT_CACHE_DIR": str(tmp / "cache"), "SLIMKIT_NUM_THREADS": "1"}
        # The data stage is not what is measured: prepare it first with a free teacher.
        stats_spec = tmp / "stats.yaml"
        stats_spec.write_text(yaml.safe_dump({**spec, "teacher": {"kind": "statistics", "num_users": 1}}))
        _teach(stats_spec, env)

        cold_wall, cold = _teach(spec_path, env)
        requests_cold = len(server.log)
        warm_stage_wall, warm_stage = _teach(spec_path, env)
        from slimkit.cache import StageCache

        cache = StageCache(tmp / "cache")
        cache.delete("teach", cold["key"])
        cache.close()
        warm_records_wall, warm_records = _teach(spec_path, env)
        return {
            "users": users,
            "latency_s": latency,
            "concurrency": concurrency,
            "ideal_s": round(users * latency / concurrency, 2),
            "cold_wall_s": round(cold_wall, 2),
            "cold_stage_s": cold["summary"]["wall_s"],
            "cold_requests": requests_cold,
            "cold_done": cold["summary"]["done"],
            "warm_stage_cached_wall_s": round(warm_stage_wall, 2),
            "warm_stage_cached": warm_stage["cached"],
            "warm_records_wall_s": round(warm_records_wall, 2),
            "warm_records_requests": len(server.log) - requests_cold,
            "warm_records_cached_users": warm_records["summary"]["cached"],
        }


def bench_local(users: int, max_new_tokens: int) -> dict:
    from slimkit.runtime import configure_environment, num_threads, setup_torch

    configure_environment()
    setup_torch()
    from slimkit.rationale import parse_steps
    from slimkit.spec import validate_spec
    from slimkit.stages.data import load_prepared
    from slimkit.stages.teach import build_jobs
    from slimkit.teachers.base import Progress, TeachContext
    from slimkit.teachers.local import LocalTeacher

    spec = validate_spec({"teacher": {"kind": "local", "num_users": users + 8}})
    dataset = load_prepared(spec, progress=False)
    jobs = build_jobs(spec, dataset)

    def run(teacher, chosen):
        ctx = TeachContext(dataset=dataset, records=None,
                           progress=Progress(len(chosen), "bench", enabled=False))
        return teacher.teach(chosen, ctx), ctx.stats

    out = {"model": "smollm2-135m-instruct", "threads": num_threads(), "max_new_tokens": max_new_tokens}
    for batch in (8, 1):
        teacher = LocalTeacher(max_new_tokens=max_new_tokens, batch_size=batch, workers=1,
                               max_malformed_retries=0)
        start = time.perf_counter()
        teacher.load()
        out.setdefault("load_s", round(time.perf_counter() - start, 2))
        run(teacher, jobs[:8])  # warm-up
        count = users if batch == 8 else max(2, users // 8)
        chosen = jobs[8 : 8 + count]
        start = time.perf_counter()
        rows, stats = run(teacher, chosen)
        seconds = time.perf_counter() - start
        out[f"batch{batch}"] = {
            "users": len(chosen),
            "seconds": round(seconds, 2),
            "seconds_per_user": round(seconds / len(chosen), 2),
            "tokens": stats.generated_tokens,
            "tokens_per_s": round(stats.generated_tokens / seconds, 1),
            "well_formed": sum(parse_steps(r["rationale"]) is not None for r in rows),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--local-users", type=int, default=16, help="0 skips the local teacher")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared; "
        "other processes were running), no GPU",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "litellm": bench_litellm(args.users, args.latency, args.concurrency),
    }
    if args.local_users:
        results["local"] = bench_local(args.local_users, args.max_new_tokens)
    results["load_average_after"] = os.getloadavg()

    from rich.console import Console
    from rich.table import Table

    lite = results["litellm"]
    table = Table(title=f"teach benchmark ({results['machine']})")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(f"litellm cold: {lite['users']} users, {lite['latency_s']} s latency, "
                  f"concurrency {lite['concurrency']}", f"{lite['cold_wall_s']} s", "< 30 s")
    table.add_row("  ideal (users x latency / concurrency)", f"{lite['ideal_s']} s", "")
    table.add_row("  requests sent", str(lite["cold_requests"]), str(lite["users"]))
    table.add_row("litellm warm: stage output cached", f"{lite['warm_stage_cached_wall_s']} s", "< 3 s")
    table.add_row("litellm warm: responses cached (stage re-run)", f"{lite['warm_records_wall_s']} s", "< 3 s")
    table.add_row("  requests sent", str(lite["warm_records_requests"]), "0")
    if "local" in results:
        loc = results["local"]
        for batch in (8, 1):
            row = loc[f"batch{batch}"]
            table.add_row(f"local SmolLM2-135M, batch {batch}, {loc['threads']} thread(s)",
                          f"{row['tokens_per_s']} tok/s", "")
            table.add_row("  seconds per user / well formed",
                          f"{row['seconds_per_user']} s / {row['well_formed']}/{row['users']}", "")
    Console().print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "teach.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'teach.json'}")


if __name__ == "__main__":
    main()
