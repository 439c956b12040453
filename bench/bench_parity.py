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
model and side the mean and sample standard deviation of the test metrics, and slimkit's
training time to RecBole's best valid NDCG@10 (strictly, and to within one sd of it).

The two sides can run apart and be combined: ``--skip-slimkit`` on one core,
``--skip-recbole`` on the other, then ``--merge A.json B.json --out C.json``; or
``--recbole-from JSON`` takes RecBole's runs from an earlier JSON of the same protocol.
Each RecBole run logs its epochs as JSON lines under ``$TMPDIR/slimkit-bench-parity/``.

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
    if args.get("progress"):  # one JSON line per epoch: a killed run keeps its history
        with open(args["progress"], "a") as log:
            log.write(json.dumps({"epoch": len(valid_scores), "ndcg@10": float(score),
                                  "seconds": seconds[-1] if seconds else None}) + "\n")
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
        "progress": str(workdir / f"recbole-{model}-{seed}-b{batch_size}-p{patience}.jsonl"),
    }
    Path(args["progress"]).unlink(missing_ok=True)
    print(f"RecBole {model} seed {seed}: per-epoch progress in {args['progress']}", file=sys.stderr)
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
    """slimkit's time to RecBole's best valid NDCG@10, over RecBole's own time to it.

    RecBole's best valid value is the maximum over its epochs of one seed's curve, so
    whether a slimkit seed reaches it is partly luck. Next to the strict figure this also
    gives the time to come within one sd of it: the sample sd of slimkit's best valid
    values over its seeds, the noise of such a maximum."""
    import numpy as np

    recbole = [r for r in entry.get("recbole", []) if "seconds_to_best" in r]
    if not recbole or not entry.get("slimkit"):
        return {}
    target = max(r["history"][r["best_epoch"] - 1]["ndcg@10"] for r in recbole)
    recbole_seconds = min(r["seconds_to_best"] for r in recbole)
    out = {"recbole_best_valid_ndcg@10": target, "recbole_seconds_to_best": recbole_seconds}
    best_valid = [max(row["ndcg@10"] for row in run["history"]) for run in entry["slimkit"]]
    tolerance = float(np.std(best_valid, ddof=1)) if len(best_valid) > 1 else 0.0
    for name, level in (("", target), ("within_sd_", target - tolerance)):
        reached = [time_to_reach(run, level) for run in entry["slimkit"]]
        out[f"{name}slimkit_seconds_to_reach"] = reached
        out[f"{name}ratio_per_seed"] = [t / recbole_seconds if t is not None else None
                                       for t in reached]
        out[f"{name}seeds_reaching"] = sum(t is not None for t in reached)
    out["slimkit_best_valid_ndcg@10"] = best_valid
    out["within_sd_target"] = target - tolerance
    return out


def read_results(path: Path) -> dict:
    """An earlier JSON of this bench; exits with 2 if it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        sys.exit(2)


def summarise_entry(entry: dict) -> None:
    """Per side mean and sd, and the time to RecBole's best, from a model's runs."""
    entry["summary"] = {side: side_summary(entry[side]) for side in ("slimkit", "recbole")
                        if entry[side]}
    entry["time_to_recbole_best"] = reach_ratios(entry)


def load_recbole_runs(path: Path, protocol: str) -> dict:
    """RecBole's runs per model from an earlier JSON of this bench, with where they came from.
    Exits with 2 if the file is missing or its protocol is not ``protocol``."""
    earlier = read_results(path)
    if earlier.get("protocol") != protocol:
        print(f"error: --recbole-from {path} was run with\n  {earlier.get('protocol')}\n"
              f"not this run's\n  {protocol}\nUse the same --batch-size and --patience.",
              file=sys.stderr)
        sys.exit(2)
    source = {"file": str(path), "date": earlier.get("date"), "machine": earlier.get("machine")}
    return {model: {"runs": entry["recbole"], "source": source}
            for model, entry in earlier.get("models", {}).items() if entry.get("recbole")}


def merge(paths: list[Path], out: Path) -> None:
    """One JSON with every run of ``paths`` (same protocol; a seed at most once per side)."""
    parts = [(path, read_results(path)) for path in paths]
    for key in ("protocol", "slimkit_mode"):
        values = {part.get(key) for _, part in parts}
        if len(values) != 1:
            print(f"error: --merge needs JSONs of one {key}, got:\n  " + "\n  ".join(
                sorted(map(str, values))), file=sys.stderr)
            sys.exit(2)
    first = parts[0][1]
    results = {key: first[key] for key in first if key not in ("models", "seeds", "date")}
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["merged_from"] = [{"file": str(path), "date": part.get("date"),
                               "machine": part.get("machine")} for path, part in parts]
    results["models"] = {}
    for path, part in parts:
        for model, entry in part.get("models", {}).items():
            merged = results["models"].setdefault(model, {"slimkit": [], "recbole": []})
            if "recbole_from" in entry:  # RecBole's runs came from an earlier file
                merged["recbole_from"] = entry["recbole_from"]
            for side in ("slimkit", "recbole"):
                seen = {run["seed"] for run in merged[side]}
                for run in entry.get(side, []):
                    if run["seed"] in seen:
                        print(f"error: {model} {side} seed {run['seed']} is in more than one "
                              f"file (again in {path})", file=sys.stderr)
                        sys.exit(2)
                    merged[side].append(run)
    for entry in results["models"].values():
        summarise_entry(entry)
    results["seeds"] = sorted({run["seed"] for entry in results["models"].values()
                               for run in entry["slimkit"] + entry["recbole"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"wrote {out}")


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
    parser.add_argument("--skip-slimkit", action="store_true",
                        help="Run RecBole's side only (e.g. in parallel with a --skip-recbole run).")
    parser.add_argument("--recbole-from", type=Path, default=None, metavar="JSON",
                        help="Take RecBole's runs from an earlier JSON of this bench instead of "
                             "rerunning them; its protocol (batch, patience) must match.")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="Combine the runs of several JSONs of this bench (same protocol, "
                             "e.g. a --skip-slimkit and a --skip-recbole run) into --out; "
                             "runs nothing.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or (TIMING_RESULTS if args.timing else RESULTS)
    if args.merge:
        merge(args.merge, args.out)
        return

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
    earlier = load_recbole_runs(args.recbole_from, results["protocol"]) if args.recbole_from else {}
    for model in args.models:
        entry: dict = {"slimkit": [], "recbole": []}
        if model in earlier:  # RecBole's side from an earlier run of this bench, same protocol
            entry["recbole"] = earlier[model]["runs"]
            entry["recbole_from"] = earlier[model]["source"]
        for number, seed in enumerate(args.seeds):
            if not args.skip_slimkit:
                started = time.perf_counter()
                entry["slimkit"].append({"seed": seed, **run_slimkit(
                    model, dataset, seed, args.epochs, args.batch_size, args.patience, args.mode)})
                print(f"slimkit {model} seed {seed}: {entry['slimkit'][-1]['test']} "
                      f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            if not args.skip_recbole and model not in earlier and number < args.recbole_seeds:
                started = time.perf_counter()
                entry["recbole"].append({"seed": seed, **run_recbole(
                    python, model, seed, args.epochs, args.threads, workdir, args.batch_size,
                    args.patience)})
                print(f"recbole {model} seed {seed}: {entry['recbole'][-1]['test']} "
                      f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            summarise_entry(entry)
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
            if "within_sd_ratio_per_seed" in reach:
                shown = ", ".join("never" if r is None else f"{r:.2f}"
                                  for r in reach["within_sd_ratio_per_seed"])
                print(f"{model:8} time to within one sd of it ({reach['within_sd_target']:.4f}), "
                      f"slimkit / RecBole per seed: {shown}")


if __name__ == "__main__":
    main()
