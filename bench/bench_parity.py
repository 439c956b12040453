"""Parity and speed: slimkit's SASRec / GRU4Rec / SRGNN versus RecBole 1.2.1 on ml-100k.

Same protocol on both sides: the ``ml-100k.inter`` file shipped inside the
``recbole==1.2.1`` wheel, sequences sorted stably by timestamp in file order (RecBole's
tie-breaking; half of ml-100k's events share a timestamp with another of the same user),
leave-one-out, one training sample per prefix, full ranking with history *not* masked
(RecBole does not mask it for sequential models), CE over the catalogue, max length 50,
hidden size 64, Adam lr 1e-3, batch 2048, early stopping on valid NDCG@10 with patience
10, the same number of torch threads. Seconds per epoch count training only.

RecBole is installed by this script into its own virtual environment (``--venv``;
``python -m venv``, then ``pip install torch==2.13.0`` from the local wheel, ``numpy<2``,
``scipy<1.14``, ``pandas<2.3``, ``setuptools<80`` (RecBole's ray needs
``pkg_resources``) and ``recbole==1.2.1``), never into slimkit's.

    python bench/bench_parity.py --models sasrec gru4rec srgnn --seeds 2020 --epochs 3

prints a side-by-side table and writes ``bench/results/parity.json``.
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
data_path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
config = {
    "data_path": data_path, "checkpoint_dir": args["checkpoint_dir"], "seed": args["seed"],
    "reproducibility": True, "use_gpu": False, "show_progress": False, "state": "WARNING",
    "epochs": args["epochs"], "stopping_step": 10, "train_batch_size": 2048,
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


def run_slimkit(model: str, dataset, seed: int, epochs: int) -> dict:
    from slimkit.components import implementation
    from slimkit.fusions.none import build_no_fusion
    from slimkit.training import EvalOptions, TrainOptions, train_and_evaluate

    def build():
        backbone = implementation("backbones", model)(num_items=dataset.num_items, max_seq_len=50)
        return build_no_fusion(backbone, num_users=dataset.num_users, num_items=dataset.num_items)

    result = train_and_evaluate(
        build,
        dataset,
        TrainOptions(epochs=epochs, batch_size=2048, lr=1e-3, patience=10, valid_metric="ndcg@10", seed=seed, max_seq_len=50),
        EvalOptions(ks=(10,), mask_history=False),
        [seed],
        progress=False,
    )
    run = result.report["seeds"][0]
    return {"test": run["test"], "valid": run["valid"], "seconds_per_epoch": run["seconds_per_epoch"], "epochs": run["epochs"]}


def run_recbole(python: Path, model: str, seed: int, epochs: int, threads: int, workdir: Path) -> dict:
    args = {
        "model": RECBOLE_NAMES[model], "seed": seed, "epochs": epochs, "threads": threads,
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
    result["test"] = {k.replace("hit@", "hit@").replace("ndcg@", "ndcg@"): v for k, v in result["test"].items()}
    return result


def summarise(runs: list[dict], key: str) -> tuple[float, float]:
    import numpy as np

    values = [r["test"][key] for r in runs]
    return float(np.mean(values)), float(np.std(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["sasrec", "gru4rec", "srgnn"], choices=list(RECBOLE_NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--epochs", type=int, default=300, help="Maximum epochs (both sides).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides.")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ["SLIMKIT_NUM_THREADS"] = str(args.threads)
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    python = ensure_recbole(args.venv)
    dataset = ml100k_dataset(recbole_inter_file(python))
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "slimkit-bench-parity"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared; other processes running), no GPU",
        "torch": torch.__version__, "threads": args.threads, "epochs_max": args.epochs,
        "seeds": args.seeds, "dataset": {"users": dataset.num_users, "items": dataset.num_items,
                                         "interactions": dataset.num_interactions},
        "protocol": "leave-one-out, full ranking, history not masked, CE, max_len 50, hidden 64, "
                    "batch 2048, lr 1e-3, patience 10 on valid ndcg@10",
        "models": {},
    }
    for model in args.models:
        entry = {"slimkit": [], "recbole": []}
        for seed in args.seeds:
            started = time.perf_counter()
            entry["slimkit"].append({"seed": seed, **run_slimkit(model, dataset, seed, args.epochs)})
            print(f"slimkit {model} seed {seed}: {entry['slimkit'][-1]['test']} "
                  f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            if not args.skip_recbole:
                started = time.perf_counter()
                entry["recbole"].append({"seed": seed, **run_recbole(python, model, seed, args.epochs, args.threads, workdir)})
                print(f"recbole {model} seed {seed}: {entry['recbole'][-1]['test']} "
                      f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            results["models"][model] = entry
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))  # partial results survive
    print_table(results)


def print_table(results: dict) -> None:
    import numpy as np

    header = f"{'model':8} {'side':8} {'NDCG@10':>17} {'Hit@10':>17} {'s/epoch':>8} {'epochs':>7}"
    print(header)
    print("-" * len(header))
    for model, entry in results["models"].items():
        for side in ("slimkit", "recbole"):
            runs = entry[side]
            if not runs:
                continue
            nd, nd_s = summarise(runs, "ndcg@10")
            hit, hit_s = summarise(runs, "hit@10")
            sec = float(np.mean([r["seconds_per_epoch"] for r in runs]))
            ep = "/".join(str(r["epochs"]) for r in runs)
            print(f"{model:8} {side:8} {nd:8.4f} ± {nd_s:6.4f} {hit:8.4f} ± {hit_s:6.4f} {sec:8.1f} {ep:>7}")


if __name__ == "__main__":
    main()
