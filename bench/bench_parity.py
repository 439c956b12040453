"""Parity and speed: slimkit's SASRec / GRU4Rec / SRGNN versus RecBole 1.2.1 on ml-100k.

Same protocol on both sides: the ``ml-100k.inter`` file shipped inside the
``recbole==1.2.1`` wheel, sequences sorted stably by timestamp in file order (RecBole's
tie-breaking; half of ml-100k's events share a timestamp with another of the same user),
leave-one-out, the same training targets (RecBole: one sample per prefix; slimkit:
``--mode``, by default ``auto``: causal windows for SASRec and GRU4Rec, per prefix for
SRGNN), full ranking with history *not* masked (RecBole does not mask it for sequential
models), CE over the catalogue, max length 50, hidden size 64, Adam lr 1e-3, batch 2048
targets (``--batch-size``), early stopping on valid NDCG@10 with patience 10, the same
number of torch threads. Seconds per epoch count training only.

slimkit runs every seed of ``--seeds``; RecBole the first ``--recbole-seeds`` of them
(a run to convergence takes hours here). The JSON holds every run, the date, and per
model and side the mean and sample standard deviation of the test metrics.

``--timing`` measures seconds per epoch only, all in one run (one epoch each unless
``--timing-epochs``): slimkit causal, slimkit per-prefix and (unless ``--skip-recbole``)
RecBole, with the ratios, into ``bench/results/parity_timing.json``.

RecBole is installed by this script into its own virtual environment (``--venv``;
``python -m venv``, then ``pip install torch==2.13.0`` from the local wheel, ``numpy<2``,
``scipy<1.14``, ``pandas<2.3``, ``setuptools<80`` (RecBole's ray needs
``pkg_resources``) and ``recbole==1.2.1``), never into slimkit's.

    python bench/bench_parity.py --models sasrec gru4rec srgnn --seeds 2020 --epochs 3
    python bench/bench_parity.py --models sasrec gru4rec --timing

prints a side-by-side table and writes ``bench/results/parity.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "parity.json"
TIMING_RESULTS = ROOT / "bench" / "results" / "parity_timing.json"
DEFAULT_VENV = Path(os.environ.get("SLIMKIT_BENCH_VENV", Path.home() / ".cache" / "slimkit-bench" / "recbole-1.2.1"))
TORCH_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
RECBOLE_NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "srgnn": "SRGNN"}

# RecBole's side, run with the venv's python: one model, one seed; JSON on the last line.
RECBOLE_RUNNER = r'''
import json, os, sys, time
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole pickles its config
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
import recbole
from recbole.trainer import Trainer
from recbole.quick_start import run_recbole
seconds = []
original = Trainer._train_epoch
def timed(self, *a, **k):
    start = time.perf_counter()
    out = original(self, *a, **k)
    seconds.append(time.perf_counter() - start)
    return out
Trainer._train_epoch = timed
valid_scores = []
original_valid = Trainer._valid_epoch
def recorded(self, *a, **k):
    score, result = original_valid(self, *a, **k)
    valid_scores.append(float(score))
    return score, result
Trainer._valid_epoch = recorded
data_path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
config = {
    "data_path": data_path, "checkpoint_dir": args["checkpoint_dir"], "seed": args["seed"],
    "reproducibility": True, "use_gpu": False, "show_progress": False, "state": "WARNING",
    "epochs": args["epochs"], "stopping_step": args["patience"], "train_batch_size": args["batch_size"],
    "eval_batch_size": 4096, "learning_rate": 0.001, "loss_type": "CE",
    "train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 50,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
}
config.update(args["model_config"])
result = run_recbole(model=args["model"], dataset="ml-100k", config_dict=config)
print(json.dumps({
    "test": {k.lower(): float(v) for k, v in result["test_result"].items()},
    "valid": {k.lower(): float(v) for k, v in result["best_valid_result"].items()},
    "seconds_per_epoch": sum(seconds) / max(len(seconds), 1), "epochs": len(seconds),
    "recbole": recbole.__version__, "torch": torch.__version__,
    "history": [{"epoch": e + 1, "ndcg@10": v, "seconds": t}
                for e, (v, t) in enumerate(zip(valid_scores, seconds))],
}))
'''

RECBOLE_MODEL_CONFIG = {
    "sasrec": {"hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2,
               "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5},
    "gru4rec": {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3},
    "srgnn": {"embedding_size": 64, "step": 1},
}


def ensure_recbole(venv: Path) -> Path:
    """The venv's python, installing RecBole 1.2.1 there on first use."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import recbole, sys; import recbole.quick_start; "
             "sys.exit(recbole.__version__ != '1.2.1')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing RecBole 1.2.1 into {venv} (a few minutes, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_req = TORCH_WHEEL if Path(TORCH_WHEEL).exists() else "torch==2.13.0"
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", torch_req, "numpy<2", "scipy<1.14",
         "pandas<2.3", "setuptools<80", "recbole==1.2.1"],  # ray (a dependency) needs pkg_resources
        check=True,
    )
    return python


def recbole_inter_file(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import recbole, os; print(os.path.dirname(recbole.__file__))"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip()) / "dataset_example" / "ml-100k" / "ml-100k.inter"


def ml100k_dataset(inter_file: Path):
    """A PreparedDataset with RecBole's order: stable sort by (user, timestamp) in file order."""
    import numpy as np

    from slimkit.data.dataset import PreparedDataset

    users, items, stamps = [], [], []
    with open(inter_file, encoding="utf-8") as handle:
        next(handle)  # header: user_id:token item_id:token rating:float timestamp:float
        for line in handle:
            u, i, _, t = line.rstrip("\n").split("\t")
            users.append(u)
            items.append(i)
            stamps.append(int(float(t)))
    user_ids = list(dict.fromkeys(users))
    item_ids = [""] + list(dict.fromkeys(items))
    u_index = {u: k for k, u in enumerate(user_ids)}
    i_index = {i: k for k, i in enumerate(item_ids)}
    u = np.array([u_index[x] for x in users])
    it = np.array([i_index[x] for x in items])
    ts = np.array(stamps)
    order = np.lexsort((np.arange(len(u)), ts, u))  # user, then time, then file position
    counts = np.bincount(u, minlength=len(user_ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = len(item_ids)
    return PreparedDataset(
        name="ml-100k", user_ids=user_ids, item_ids=item_ids, offsets=offsets,
        items=it[order].astype(np.int64), timestamps=ts[order].astype(np.int64),
        item_text=[""] * n, item_titles=[""] * n, has_text=np.zeros(n, dtype=bool), max_seq_len=50,
    )


def build_plain(model: str, dataset):
    from slimkit.components import implementation
    from slimkit.fusions.none import build_no_fusion

    backbone = implementation("backbones", model)(num_items=dataset.num_items, max_seq_len=50)
    return build_no_fusion(backbone, num_users=dataset.num_users, num_items=dataset.num_items)


def train_options(seed: int, epochs: int, batch_size: int, patience: int, mode: str):
    from slimkit.training import TrainOptions

    return TrainOptions(epochs=epochs, batch_size=batch_size, lr=1e-3, patience=patience,
                        valid_metric="ndcg@10", seed=seed, max_seq_len=50, mode=mode)


def run_slimkit(model: str, dataset, seed: int, epochs: int, batch_size: int = 2048,
                patience: int = 10, mode: str = "auto") -> dict:
    from slimkit.training import EvalOptions, train_and_evaluate

    result = train_and_evaluate(
        lambda: build_plain(model, dataset),
        dataset,
        train_options(seed, epochs, batch_size, patience, mode),
        EvalOptions(ks=(10,), mask_history=False),
        [seed],
        progress=False,
    )
    run = result.report["seeds"][0]
    seconds = [row["seconds"] for row in run["history"]]
    return {"test": run["test"], "valid": run["valid"], "seconds_per_epoch": run["seconds_per_epoch"],
            "epochs": run["epochs"], "best_epoch": run["best_epoch"], "mode": run["train_mode"],
            "seconds_to_best": float(sum(seconds[: run["best_epoch"]])),
            "history": run["history"]}


def time_slimkit_epochs(model: str, dataset, mode: str, epochs: int, batch_size: int) -> dict:
    """Seconds per training epoch (no evaluation) of slimkit in ``mode``."""
    import time as clock

    import torch

    from slimkit.training import EvalOptions, Trainer
    from slimkit.training.fit import seed_everything

    seed_everything(2020)
    trainer = Trainer(build_plain(model, dataset), dataset,
                      train_options(2020, epochs, batch_size, 10, mode),
                      EvalOptions(ks=(10,), mask_history=False))
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(2020)
    seconds = []
    for _ in range(epochs):
        started = clock.perf_counter()
        trainer.train_epoch(generator)
        seconds.append(clock.perf_counter() - started)
    return {"mode": trainer.mode, "seconds_per_epoch": sum(seconds) / len(seconds),
            "epochs": epochs, "batches_per_epoch": trainer.batches_per_epoch,
            "rows": trainer.num_rows, "targets": trainer.num_targets}


def run_recbole(python: Path, model: str, seed: int, epochs: int, threads: int, workdir: Path,
                batch_size: int = 2048, patience: int = 10) -> dict:
    args = {
        "model": RECBOLE_NAMES[model], "seed": seed, "epochs": epochs, "threads": threads,
        "batch_size": batch_size, "patience": patience,
        "checkpoint_dir": str(workdir / "saved"), "model_config": RECBOLE_MODEL_CONFIG[model],
    }
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    out = subprocess.run(
        [str(python), "-c", RECBOLE_RUNNER, json.dumps(args)],
        capture_output=True, text=True, cwd=workdir, env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"RecBole {model} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    history = result.get("history") or []
    if history:  # training seconds only (as on slimkit's side), up to the best valid epoch
        best = max(range(len(history)), key=lambda k: history[k]["ndcg@10"])
        result["best_epoch"] = best + 1
        result["seconds_to_best"] = float(sum(row["seconds"] for row in history[: best + 1]))
    return result


def time_to_reach(slimkit_run: dict, target: float) -> float | None:
    """Training seconds slimkit needs until its valid NDCG@10 first reaches ``target``."""
    total = 0.0
    for row in slimkit_run.get("history", []):
        total += row["seconds"]
        if row["ndcg@10"] >= target:
            return total
    return None


def reach_ratios(entry: dict) -> dict:
    """slimkit's time to RecBole's best valid NDCG@10, over RecBole's own time to it."""
    recbole = [r for r in entry.get("recbole", []) if "seconds_to_best" in r]
    if not recbole or not entry.get("slimkit"):
        return {}
    target = max(r["history"][r["best_epoch"] - 1]["ndcg@10"] for r in recbole)
    recbole_seconds = min(r["seconds_to_best"] for r in recbole)
    reached = [time_to_reach(run, target) for run in entry["slimkit"]]
    ratios = [t / recbole_seconds if t is not None else None for t in reached]
    return {"recbole_best_valid_ndcg@10": target, "recbole_seconds_to_best": recbole_seconds,
            "slimkit_seconds_to_reach": reached, "ratio_per_seed": ratios,
            "seeds_reaching": sum(t is not None for t in reached)}


def summarise(runs: list[dict], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one run) of a test metric."""
    import numpy as np

    values = [r["test"][key] for r in runs]
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), sd


def side_summary(runs: list[dict]) -> dict:
    import numpy as np

    out: dict = {"runs": len(runs)}
    for key in ("ndcg@10", "hit@10"):
        mean, sd = summarise(runs, key)
        out[key] = {"mean": mean, "sd": sd}
    out["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in runs]))
    out["epochs"] = [r["epochs"] for r in runs]
    if all("seconds_to_best" in r for r in runs):
        out["seconds_to_best"] = float(np.mean([r["seconds_to_best"] for r in runs]))
    return out


def timing(args, python: Path | None, dataset, workdir: Path) -> None:
    """Per-epoch seconds of slimkit causal, slimkit per-prefix and RecBole, one run."""
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "machine": machine(), "threads": args.threads,
                     "batch_size": args.batch_size, "epochs": args.timing_epochs, "models": {}}
    for model in args.models:
        entry: dict = {}
        for mode in ("causal", "per-prefix"):
            if model == "srgnn" and mode == "causal":
                continue
            entry[f"slimkit_{mode}"] = time_slimkit_epochs(model, dataset, mode,
                                                           args.timing_epochs, args.batch_size)
            print(f"slimkit {model} {mode}: {entry[f'slimkit_{mode}']}", file=sys.stderr)
        if python is not None:
            rb = run_recbole(python, model, 2020, args.timing_epochs, args.threads, workdir,
                             args.batch_size)
            entry["recbole"] = {"seconds_per_epoch": rb["seconds_per_epoch"], "epochs": rb["epochs"]}
            print(f"recbole {model}: {entry['recbole']}", file=sys.stderr)
        base = entry.get("slimkit_per-prefix", {}).get("seconds_per_epoch")
        causal = entry.get("slimkit_causal", {}).get("seconds_per_epoch")
        rb_sec = entry.get("recbole", {}).get("seconds_per_epoch")
        entry["ratios"] = {
            "causal_over_per_prefix": causal / base if causal and base else None,
            "causal_over_recbole": causal / rb_sec if causal and rb_sec else None,
            "per_prefix_over_recbole": base / rb_sec if base and rb_sec else None,
        }
        results["models"][model] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    for model, entry in results["models"].items():
        print(model, json.dumps(entry["ratios"]))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores (shared; other processes running), no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["sasrec", "gru4rec", "srgnn"], choices=list(RECBOLE_NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--recbole-seeds", type=int, default=1,
                        help="RecBole runs the first N of --seeds (to convergence: hours).")
    parser.add_argument("--epochs", type=int, default=300, help="Maximum epochs (both sides).")
    parser.add_argument("--batch-size", type=int, default=2048, help="Targets per batch (both sides).")
    parser.add_argument("--patience", type=int, default=10, help="Early-stopping patience (both sides).")
    parser.add_argument("--mode", default="auto", choices=["auto", "causal", "per-prefix"],
                        help="slimkit's train.mode.")
    parser.add_argument("--timing", action="store_true",
                        help="Only seconds per epoch: slimkit causal, per-prefix, RecBole.")
    parser.add_argument("--timing-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides.")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or (TIMING_RESULTS if args.timing else RESULTS)

    os.environ["SLIMKIT_NUM_THREADS"] = str(args.threads)
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    python = ensure_recbole(args.venv)
    dataset = ml100k_dataset(recbole_inter_file(python))
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "slimkit-bench-parity"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.timing:
        timing(args, None if args.skip_recbole else python, dataset, workdir)
        return
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "torch": torch.__version__, "threads": args.threads, "epochs_max": args.epochs,
        "seeds": args.seeds, "dataset": {"users": dataset.num_users, "items": dataset.num_items,
                                         "interactions": dataset.num_interactions},
        "slimkit_mode": args.mode,
        "protocol": "leave-one-out, full ranking, history not masked, CE, max_len 50, hidden 64, "
                    f"batch {args.batch_size} targets, lr 1e-3, patience {args.patience} on valid "
                    "ndcg@10",
        "models": {},
    }
    for model in args.models:
        entry: dict = {"slimkit": [], "recbole": []}
        for number, seed in enumerate(args.seeds):
            started = time.perf_counter()
            entry["slimkit"].append({"seed": seed, **run_slimkit(
                model, dataset, seed, args.epochs, args.batch_size, args.patience, args.mode)})
            print(f"slimkit {model} seed {seed}: {entry['slimkit'][-1]['test']} "
                  f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            if not args.skip_recbole and number < args.recbole_seeds:
                started = time.perf_counter()
                entry["recbole"].append({"seed": seed, **run_recbole(
                    python, model, seed, args.epochs, args.threads, workdir, args.batch_size,
                    args.patience)})
                print(f"recbole {model} seed {seed}: {entry['recbole'][-1]['test']} "
                      f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            entry["summary"] = {side: side_summary(entry[side]) for side in ("slimkit", "recbole")
                                if entry[side]}
            entry["time_to_recbole_best"] = reach_ratios(entry)
            results["models"][model] = entry
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))  # partial results survive
    print_table(results)


def print_table(results: dict) -> None:
    import numpy as np

    header = f"{'model':8} {'side':8} {'NDCG@10 (sd)':>17} {'Hit@10 (sd)':>17} {'s/epoch':>8} {'epochs':>7}"
    print(header)
    print("-" * len(header))
    for model, entry in results["models"].items():
        for side in ("slimkit", "recbole"):
            runs = entry.get(side, [])
            if not runs:
                continue
            nd, nd_s = summarise(runs, "ndcg@10")
            hit, hit_s = summarise(runs, "hit@10")
            sec = float(np.mean([r["seconds_per_epoch"] for r in runs]))
            ep = "/".join(str(r["epochs"]) for r in runs)
            print(f"{model:8} {side:8} {nd:8.4f} ± {nd_s:6.4f} {hit:8.4f} ± {hit_s:6.4f} {sec:8.1f} {ep:>7}")
        reach = entry.get("time_to_recbole_best") or {}
        if reach:
            shown = ", ".join("never" if r is None else f"{r:.2f}" for r in reach["ratio_per_seed"])
            print(f"{model:8} time to RecBole's best valid NDCG@10 "
                  f"({reach['recbole_best_valid_ndcg@10']:.4f}), slimkit / RecBole per seed: {shown}")


if __name__ == "__main__":
    main()
