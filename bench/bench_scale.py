"""Benchmark: a large catalogue end to end (data stage, sampled-softmax training, chunked
full-ranking evaluation) on a synthetic log, at fractions of 1M users x 1M items x 50M
interactions.

For each fraction, outside the timing, a Parquet interaction log is generated (skewed
item popularity, user activity log-normal around 50 events, ids as integers that the
``csv`` kind reads as strings). Then each phase runs in a fresh child process, which
reports its own peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``, imports
included) next to its memory right after imports:

* ``data``: the ``data`` stage through the real Pipeline (read the Parquet file with the
  ``csv`` kind, dedupe, k-core, sort, remap, placeholder item texts, save);
* ``train``: the prepared dataset loaded, SASRec (``fusion: none``) built, the Trainer
  set up (causal windows, target counts for the logQ correction), then ``--steps``
  optimiser steps with ``train.loss: sampled`` (1,024 popularity-drawn negatives per
  batch, ``batch_size`` targets per step); samples/s counts targets (losses) per second
  after ``--warmup`` steps; the weights are saved for the next phase;
* ``eval``: the trained weights scored on the test targets of ``--eval-users`` random
  users, full ranking over the whole catalogue (chunks of 65,536 items when the
  catalogue has more than 131,072, else the whole catalogue at once), history masked;
  the time is extrapolated linearly to every user (said so in the output).

A watchdog kills a child whose resident memory passes ``--memory-cap-gb`` (the machine
is shared), and the table says so. torch runs 1 thread (``SLIMKIT_NUM_THREADS``).

    nice -n 10 python bench/bench_scale.py [--fractions 0.01,0.1,1] [--steps 200]

Prints a table and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FULL = {"users": 1_000_000, "items": 1_000_000, "interactions": 50_000_000}
HIDDEN, MAX_SEQ_LEN, BATCH, NEGATIVES = 64, 50, 1024, 1024


def rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- children --------------------------------------------------------------------------------
def child_generate(folder: Path, fraction: float, seed: int = 0) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    users = max(100, round(FULL["users"] * fraction))
    items = max(100, round(FULL["items"] * fraction))
    wanted = round(FULL["interactions"] * fraction)
    mean = wanted / users
    sigma = 0.8
    per_user = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, users)
    per_user = np.maximum(5, np.round(per_user * wanted / per_user.sum())).astype(np.int64)
    total = int(per_user.sum())
    user_col = np.repeat(np.arange(users, dtype=np.int64), per_user)
    weights = 1.0 / (np.arange(items) + 10.0) ** 0.9  # Zipf-like, a long tail
    weights = weights[rng.permutation(items)]
    item_col = rng.choice(items, size=total, p=weights / weights.sum()).astype(np.int64)
    times = rng.integers(946_684_800, 1_700_000_000, size=total, dtype=np.int64)
    path = folder / "interactions.parquet"
    pq.write_table(
        pa.table({"user_id": user_col, "item_id": item_col, "timestamp": times}), path
    )
    return {"generate_s": time.perf_counter() - start, "rows": total, "file_mb": path.stat().st_size / 2**20}


def write_spec(folder: Path) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(
        "dataset:\n  kind: csv\n"
        f"  path: {folder / 'interactions.parquet'}\n"
        "  min_user_interactions: 3\n  min_item_interactions: 1\n"
        f"  max_seq_len: {MAX_SEQ_LEN}\n"
        "fusion:\n  kind: none\n"
        f"backbone:\n  kind: sasrec\n  hidden_size: {HIDDEN}\n"
    )
    return spec


def child_data(folder: Path) -> dict:
    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    after_imports = rss_mb()
    spec = load_spec(str(write_spec(folder)))
    start = time.perf_counter()
    result = Pipeline(spec, StageCache(str(folder / "cache")), progress=False).run("data")
    seconds = time.perf_counter() - start
    summary = {k: result.summary[k] for k in ("users", "items", "interactions")}
    return {"stage_s": seconds, "peak_rss_mb": rss_mb(), "rss_after_imports_mb": after_imports, **summary}


def load_prepared(folder: Path):
    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec

    spec = load_spec(str(write_spec(folder)))
    return Pipeline(spec, StageCache(str(folder / "cache")), progress=False).dataset()


def build_model(num_users: int, num_items: int):
    from slimkit.components import implementation, params_model
    from slimkit.fusions.none import build_no_fusion

    params = params_model("backbones", "sasrec")(kind="sasrec", hidden_size=HIDDEN)
    backbone = implementation("backbones", "sasrec")(
        num_items=num_items, max_seq_len=MAX_SEQ_LEN, **params.model_dump(exclude={"kind"})
    )
    return build_no_fusion(backbone, num_users=num_users, num_items=num_items)


def child_train(folder: Path, steps: int, warmup: int) -> dict:
    import torch

    from slimkit.runtime import setup_torch
    from slimkit.training import EvalOptions, Trainer, TrainOptions
    from slimkit.training.optim import adam
    from slimkit.training.samples import window_batch

    setup_torch()  # SLIMKIT_NUM_THREADS threads
    after_imports = rss_mb()
    start = time.perf_counter()
    dataset = load_prepared(folder)
    load_s = time.perf_counter() - start
    torch.manual_seed(0)
    model = build_model(dataset.num_users, dataset.num_items)
    options = TrainOptions(batch_size=BATCH, loss="sampled", sampled_negatives=NEGATIVES,
                           max_seq_len=MAX_SEQ_LEN, mode="causal")
    start = time.perf_counter()
    trainer = Trainer(model, dataset, options, EvalOptions())
    setup_s = time.perf_counter() - start
    rss_ready = rss_mb()
    trainer.optimizer = adam(model.parameters(), lr=1e-3)  # the fit loop's optimiser
    model.train()
    order = torch.randperm(trainer.num_rows, generator=torch.Generator().manual_seed(0))
    batches = order.split(trainer.rows_per_batch)
    losses, targets, timed = [], 0, 0.0
    for step, index in enumerate(batches[: warmup + steps]):
        began = time.perf_counter()
        seq, lengths, users, target, where = window_batch(trainer.events, trainer.train_windows, index)
        loss = trainer._loss(seq, lengths, users, target, where)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
        if step >= warmup:
            timed += time.perf_counter() - began
            targets += int(where.sum())
    torch.save(model.state_dict(), folder / "model.pt")
    measured = max(len(losses) - warmup, 0)
    return {
        "load_s": load_s,
        "setup_s": setup_s,
        "steps": measured,
        "targets_per_step": targets / max(measured, 1),
        "samples_per_s": targets / timed if timed else 0.0,
        "s_per_step": timed / max(measured, 1),
        "loss_first": float(np.mean(losses[: min(10, len(losses))])),
        "loss_last": float(np.mean(losses[-10:])),
        "steps_per_epoch": len(batches),
        "rss_after_imports_mb": after_imports,
        "rss_after_setup_mb": rss_ready,
        "peak_rss_mb": rss_mb(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def child_eval(folder: Path, eval_users: int) -> dict:
    import torch

    from slimkit.runtime import setup_torch
    from slimkit.training import EvalOptions
    from slimkit.training.evaluate import Evaluator

    setup_torch()
    after_imports = rss_mb()
    dataset = load_prepared(folder)
    model = build_model(dataset.num_users, dataset.num_items)
    model.load_state_dict(torch.load(folder / "model.pt"))
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(dataset.num_users, min(eval_users, dataset.num_users), replace=False))
    offsets = np.asarray(dataset.offsets)
    lengths = np.diff(offsets)[chosen]
    sub_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = np.concatenate([np.arange(offsets[u], offsets[u + 1]) for u in chosen])
    sub_items = np.asarray(dataset.items)[index].astype(np.int64)
    options = EvalOptions(ks=(10, 20))
    evaluator = Evaluator(torch.as_tensor(sub_items), sub_offsets, sub_items, dataset.num_items,
                          MAX_SEQ_LEN, options)
    start = time.perf_counter()
    result = evaluator.evaluate(model, "test")
    seconds = time.perf_counter() - start
    chunk = options.items_per_chunk(dataset.num_items)
    return {
        "eval_users": len(chosen),
        "eval_s": seconds,
        "ms_per_user": 1000 * seconds / len(chosen),
        "extrapolated_all_users_s": seconds / len(chosen) * dataset.num_users,
        "path": "chunked" if chunk < dataset.num_items + 1 else "whole catalogue",
        "item_chunk": chunk,
        "ndcg@10": result.metrics["ndcg@10"],
        "rss_after_imports_mb": after_imports,
        "peak_rss_mb": rss_mb(),
    }


# -- the parent ------------------------------------------------------------------------------
def run_child(args: list[str], cap_gb: float) -> dict:
    """Run one phase in a fresh process; kill it past ``cap_gb`` of resident memory."""
    env = {**os.environ, "SLIMKIT_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "SLIMKIT_LOAD_PLUGINS": ""}
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = {"at_mb": None}

    def watch():
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:") and int(line.split()[1]) > cap_gb * 2**20:
                        killed["at_mb"] = int(line.split()[1]) / 1024
                        proc.kill()
            except (OSError, ValueError):
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if killed["at_mb"] is not None:
        return {"failed": f"killed by the watchdog at {killed['at_mb']:.0f} MB resident "
                f"(cap {cap_gb} GB)", "wall_s": wall}
    if proc.returncode != 0:
        return {"failed": f"exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}",
                "wall_s": wall}
    report = json.loads(out.strip().splitlines()[-1])
    report["wall_s"] = wall
    return report


def rounded(value):
    if isinstance(value, float):
        return round(value, 3 if abs(value) < 10 else 1)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.01,0.1,1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-users", type=int, default=2000)
    parser.add_argument("--memory-cap-gb", type=float, default=14.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, folder, *rest = args.child
        folder = Path(folder)
        if phase == "generate":
            report = child_generate(folder, float(rest[0]))
        elif phase == "data":
            report = child_data(folder)
        elif phase == "train":
            report = child_train(folder, int(rest[0]), int(rest[1]))
        else:
            report = child_eval(folder, int(rest[0]))
        print(json.dumps(report))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slimkit-bench-scale-"))
    results = []
    bench_started = time.perf_counter()
    for fraction in [float(f) for f in args.fractions.split(",")]:
        folder = workdir / f"f{fraction:g}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        row = {"fraction": fraction, "target": {k: round(v * fraction) for k, v in FULL.items()}}
        for phase, extra in (
            ("generate", [str(fraction)]),
            ("data", []),
            ("train", [str(args.steps), str(args.warmup)]),
            ("eval", [str(args.eval_users)]),
        ):
            print(f"[{fraction:g}] {phase} ...", flush=True)
            row[phase] = run_child([phase, str(folder), *extra], args.memory_cap_gb)
            print(f"[{fraction:g}] {phase}: {json.dumps(rounded(row[phase]))}", flush=True)
            if "failed" in row[phase]:
                break
        results.append(row)
        shutil.rmtree(folder, ignore_errors=True)

    print()
    header = (f"{'size':>6} {'users':>9} {'items':>9} {'events':>11} | {'data s':>7} {'data MB':>8} | "
              f"{'train/s':>8} {'s/step':>7} {'train MB':>8} | {'eval ms/u':>9} {'eval all s':>10} {'eval MB':>8}")
    print(header)
    print("-" * len(header))
    for row in results:
        d, t, e = row.get("data", {}), row.get("train", {}), row.get("eval", {})

        def get(part, key, fmt):
            return format(part[key], fmt) if key in part else "-"

        print(f"{row['fraction'] * 100:>5g}% {get(d, 'users', ',d'):>9} {get(d, 'items', ',d'):>9} "
              f"{get(d, 'interactions', ',d'):>11} | {get(d, 'stage_s', '.1f'):>7} "
              f"{get(d, 'peak_rss_mb', ',.0f'):>8} | {get(t, 'samples_per_s', ',.0f'):>8} "
              f"{get(t, 's_per_step', '.3f'):>7} {get(t, 'peak_rss_mb', ',.0f'):>8} | "
              f"{get(e, 'ms_per_user', '.2f'):>9} {get(e, 'extrapolated_all_users_s', ',.0f'):>10} "
              f"{get(e, 'peak_rss_mb', ',.0f'):>8}")
        for part in ("generate", "data", "train", "eval"):
            if "failed" in row.get(part, {}):
                print(f"       {part} failed: {row[part]['failed']}")
    report = {
        "benchmark": "large catalogue: data stage, sampled-softmax training, chunked evaluation",
        "full_size": FULL,
        "setup": {
            "model": f"SASRec hidden {HIDDEN}, fusion none, max_seq_len {MAX_SEQ_LEN}, causal mode",
            "loss": f"sampled, {NEGATIVES} popularity-drawn negatives per batch, logQ-corrected",
            "batch_size": BATCH,
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "eval": f"test targets of {args.eval_users} random users, full ranking, history "
            "masked; time extrapolated linearly to all users",
            "peak memory": "ru_maxrss of each phase's own child process, imports included",
            "threads": "torch 1 thread (SLIMKIT_NUM_THREADS=1)",
        },
        "results": rounded(results),
        "bench_wall_s": round(time.perf_counter() - bench_started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "note": "2-core shared CPU, no GPU; other sessions and a background benchmark were "
        "running, run under nice -n 10",
    }
    out = HERE / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
