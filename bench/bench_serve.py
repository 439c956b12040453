"""Benchmark: `slimkit serve` latency and throughput over real HTTP on this machine.

Starts the real service (`python -m slimkit serve`, one process, loopback) on a trained
pipeline and measures, with an httpx client in this process:

* known users: GET /users/{id}/recommendations, one request at a time (latency) and
  with --concurrency client threads (requests/s);
* new histories, rationale not cached: POST /recommendations with histories the
  student has never seen (it writes the rationale, the encoder encodes it);
* new histories, rationale cached: the same histories posted again.

    python bench/bench_serve.py -c examples/quickstart.yaml --cache-dir DIR \\
        [--known 200] [--histories 8] [--concurrency 4] [--history-length 5] [--seed S]

The pipeline must be trained already (`slimkit run -c SPEC`). Prints a table and writes
bench/results/serve.json. Latencies are client-side wall times (request sent -> body
read). On a shared machine compare the rows of one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(config: Path, cache_dir: Path | None, port: int, log: Path):
    """The service in a child process; (process, seconds until /health answered)."""
    args = [sys.executable, "-m", "slimkit"]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    args += ["serve", "-c", str(config), "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "w"))  # noqa: SIM115
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            return proc, time.perf_counter() - started
        except httpx.HTTPError:
            if proc.poll() is not None:
                sys.exit(f"the service exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)


def dataset_ids(config: Path, cache_dir: Path | None) -> tuple[list[str], list[str]]:
    """The prepared dataset's user ids and item ids (read from the cache, as the service does)."""
    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    cache = StageCache(cache_dir) if cache_dir is not None else None
    dataset = Pipeline(load_spec(config), cache, progress=False).dataset()
    return list(dataset.user_ids), list(dataset.item_ids[1:])


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"requests": len(latencies), "p50_ms": round(1000 * statistics.median(ordered), 2),
            "p95_ms": round(1000 * p95, 2), "mean_ms": round(1000 * statistics.fmean(ordered), 2),
            "requests_per_s": round(len(latencies) / wall, 2)}


def timed(call, items, threads: int = 1) -> tuple[dict[str, float], list]:
    """``call`` over ``items`` with ``threads`` client threads: latency summary, answers."""
    def one(item):
        started = time.perf_counter()
        answer = call(item)
        return time.perf_counter() - started, answer

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, items))
    wall = time.perf_counter() - started
    return summary([r[0] for r in results], wall), [r[1] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", type=Path, default=HERE.parent / "examples" / "quickstart.yaml")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="Stage cache (default: SLIMKIT_CACHE_DIR or the user cache).")
    parser.add_argument("--known", type=int, default=200, help="Known-user requests.")
    parser.add_argument("--histories", type=int, default=8, help="Fresh new histories.")
    parser.add_argument("--history-length", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4, help="Client threads for req/s.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="Default: from the clock, so "
                        "histories are new to the rationale store.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve.json")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)

    users, catalogue = dataset_ids(args.config, args.cache_dir)
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-serve-{port}.log"
    load_before = os.getloadavg()
    proc, startup = start_service(args.config, args.cache_dir, port, log)
    base = f"http://127.0.0.1:{port}"
    rows: dict[str, dict] = {}
    try:
        with httpx.Client(base_url=base, timeout=600,
                          limits=httpx.Limits(max_connections=64)) as http:
            meta = http.get("/model").json()
            get = lambda u: http.get(f"/users/{u}/recommendations",
                                     params={"k": args.k}).raise_for_status()
            picks = [rng.choice(users) for _ in range(args.known)]
            timed(get, picks[:10])  # warm-up
            rows["known user, 1 client"], _ = timed(get, picks)
            rows[f"known user, {args.concurrency} clients"], _ = timed(get, picks, args.concurrency)

            histories = [rng.sample(catalogue, args.history_length) for _ in range(args.histories)]
            post = lambda h: http.post("/recommendations",
                                       json={"items": h, "k": args.k}).raise_for_status().json()
            started = time.perf_counter()
            post(rng.sample(catalogue, args.history_length))  # loads the student and encoder
            first_history = time.perf_counter() - started
            fresh, answers = timed(post, histories)
            fresh["rationale_written"] = sum(1 for a in answers if a["rationale_cached"] is False)
            rows["new history, rationale not cached"] = fresh
            cached, answers = timed(post, histories * 5)
            assert all(a["rationale_cached"] for a in answers)
            rows["new history, rationale cached, 1 client"] = cached
            rows[f"new history, rationale cached, {args.concurrency} clients"], _ = timed(
                post, histories * 5, args.concurrency)
            final_meta = http.get("/model").json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    load_after = os.getloadavg()

    print(f"slimkit serve on {meta['model']['backbone']} + {meta['model']['fusion']}, "
          f"{meta['dataset']['name']} ({meta['dataset']['users']} users, "
          f"{meta['dataset']['items']} items); service ready {startup:.1f} s after start, "
          f"first new history (loads the student) {first_history:.1f} s")
    print(f"{'':44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'req/s':>8}")
    for name, row in rows.items():
        print(f"{name:44} {row['requests']:>5} {row['p50_ms']:>9.1f} {row['p95_ms']:>9.1f} "
              f"{row['requests_per_s']:>8.2f}")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    result = {
        "benchmark": "serve",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": str(args.config), "seed": seed, "k": args.k,
        "history_length": args.history_length, "concurrency": args.concurrency,
        "model": meta["model"], "dataset": meta["dataset"],
        "startup_seconds": round(startup, 2),
        "first_new_history_seconds": round(first_history, 2), "service_load_seconds": meta["load_seconds"],
        "rows": rows, "service_requests": final_meta["requests"],
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": load_after,
                    "threads": os.environ.get("SLIMKIT_NUM_THREADS", "1 (slimkit default)")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
