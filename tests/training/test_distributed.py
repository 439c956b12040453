"""Distributed training (DDP through torchrun): each rank's share of a batch and its loss
scale, DDP over every registered backbone and fusion head, and `torchrun` with 2 CPU
processes giving the single-process losses and the same cached model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from test_causal import BACKBONES, FUSIONS, build_any
from test_trainer import cyclic_dataset

from slimkit.errors import SlimkitError, StageMissingError
from slimkit.training import EvalOptions, Trainer, TrainOptions, distributed

TIMEOUT_S = 300  # a 2-core machine shared with other jobs: generous, never hit when healthy


# -- shares and scales (no process group needed) ---------------------------------------------
def group(rank: int, world: int) -> distributed.Group:
    return distributed.Group(rank=rank, world=world, local_rank=rank, backend="gloo",
                             device=torch.device("cpu"))


def test_shares_split_a_batch_like_a_distributed_sampler():
    index = torch.tensor([5, 3, 9, 1, 7])
    targets = torch.tensor([1, 2, 3, 1, 1])  # targets per row (causal windows differ)
    rows0, scale0, total0 = group(0, 2).share(index, targets)
    rows1, scale1, total1 = group(1, 2).share(index, targets)
    assert rows0.tolist() == [5, 9, 7] and rows1.tolist() == [3, 1]
    assert total0 == total1 == 8
    assert (scale0, scale1) == (5 * 2 / 8, 3 * 2 / 8)  # n_r * W / T: they sum to W


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("rows", [1, 2, 5, 7])
def test_scaled_rank_means_averaged_by_ddp_are_the_batch_mean(world, rows):
    # DDP averages over ranks: sum_r scale_r * mean_r / W must be the whole batch's mean,
    # for uneven shares (rows not a multiple of W) and empty ones (rows < W).
    gen = torch.Generator().manual_seed(rows * 10 + world)
    index = torch.randperm(20, generator=gen)[:rows]
    targets = torch.randint(1, 4, (rows,), generator=gen)
    per_target = torch.rand(int(targets.sum()), generator=gen, dtype=torch.float64)
    loss_of_row = dict(zip(index.tolist(), per_target.split(targets.tolist()), strict=True))
    averaged = 0.0
    for rank in range(world):
        mine, scale, total = group(rank, world).share(index, targets)
        assert total == int(targets.sum())
        rank_mean = torch.cat([loss_of_row[int(r)] for r in mine]).mean()
        if rank >= rows:  # an empty share computes one row and counts it 0 times
            assert scale == 0.0 and mine.tolist() == index[:1].tolist()
        averaged += float(rank_mean) * scale / world
    assert averaged == pytest.approx(float(per_target.mean()), rel=1e-12)


def test_torchrun_is_detected_from_its_environment():
    env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29500"}
    assert distributed.launched_by_torchrun(env) and distributed.env_rank(env) == 1
    assert not distributed.launched_by_torchrun({k: v for k, v in env.items() if k != "RANK"})
    assert distributed.rank_seed(42, 0) == 42 and distributed.rank_seed(42, 1) != 42


def test_the_launch_command_is_torchrun_on_a_free_port():
    from slimkit.pipeline.distributed import torchrun_command

    command = torchrun_command(2, ["train", "-c", "spec.yaml"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and "--nproc_per_node=2" in command
    assert command[-5:] == ["-m", "slimkit", "train", "-c", "spec.yaml"]
    with pytest.raises(SlimkitError):
        torchrun_command(0, ["train"])


# -- DDP in one process: every backbone (plugins too) and head trains unchanged ------------
@pytest.fixture
def one_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}",
                            rank=0, world_size=1, timeout=timedelta(seconds=60))
    try:
        yield distributed.start("cpu")
    finally:
        distributed.stop()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_ddp_trains_every_backbone_and_head_as_one_process_does(backbone, fusion, tmp_path):
    ds = cyclic_dataset(num_users=24)
    opts = TrainOptions(epochs=2, batch_size=16, max_seq_len=10, patience=5, seed=5)

    def fit():
        torch.manual_seed(0)
        model = build_any(backbone, fusion, ds)
        trainer = Trainer(model, ds, opts, EvalOptions(ks=(5, 10)))
        return trainer, trainer.fit()

    plain_trainer, plain = fit()
    assert plain_trainer.ddp is None
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}",
                            rank=0, world_size=1, timeout=timedelta(seconds=60))
    try:
        distributed.start("cpu")
        ddp_trainer, ddp = fit()
        assert ddp_trainer.ddp is not None
    finally:
        distributed.stop()
    assert [h["loss"] for h in ddp.history] == pytest.approx(
        [h["loss"] for h in plain.history], rel=1e-5)
    plain_state, ddp_state = plain_trainer.model.state_dict(), ddp_trainer.model.state_dict()
    assert plain_state.keys() == ddp_state.keys()  # the saved model is the bare recommender
    for key, value in plain_state.items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-5)


def test_a_rank_refuses_when_the_stages_train_reads_are_not_cached(one_process_group,
                                                                    isolated_cache, tmp_path):
    from helpers.teach_fixtures import write_tiny_log

    from slimkit.pipeline.distributed import run_train_rank
    from slimkit.spec import load_spec

    paths = write_tiny_log(tmp_path / "data")
    spec = load_spec(None, ["dataset.kind=csv", f"dataset.path={paths['path']}",
                            f"dataset.items_path={paths['items_path']}", "fusion.kind=none"])
    with pytest.raises(StageMissingError, match="in the cache first"):
        run_train_rank(spec, progress=False)


# -- torchrun, 2 CPU processes, through the CLI and the train stage --------------------------
def write_spec(folder: Path, backbone: dict, train: dict) -> Path:
    """A tiny CSV log (31 users x 8 items) and a spec training ``backbone`` without dropout."""
    from helpers.teach_fixtures import write_tiny_log

    paths = write_tiny_log(folder / "data", users=31)
    raw = {"dataset": {"kind": "csv", **paths, "max_seq_len": 6},
           "backbone": backbone, "fusion": {"kind": "none"},
           "train": {"epochs": 3, "patience": 5, "lr": 0.01, **train},
           "eval": {"ks": [5, 10], "seeds": [3]}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def run(args: list[str], cache: Path, cwd: Path, *, ok: bool = True) -> subprocess.CompletedProcess:
    """``python <args>`` with its own stage cache (``ok``: it must succeed); the whole
    process group is killed on timeout (torchrun's workers included)."""
    env = {**os.environ, "SLIMKIT_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args} ran past {TIMEOUT_S} s:\n{err[-3000:]}")
    assert (proc.returncode == 0) == ok, err[-3000:]
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def losses(metrics: dict) -> list[float]:
    return [row["loss"] for row in metrics["seeds"][0]["history"]]


def evaluate_cached(spec_path: Path, cache: Path) -> dict[str, float]:
    """Test metrics of the cached model, loaded and evaluated again in this process."""
    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline
    from slimkit.spec import load_spec
    from slimkit.training.evaluate import Evaluator

    trained = Pipeline(load_spec(spec_path), StageCache(cache), progress=False).trained()
    ds = trained.dataset
    evaluator = Evaluator(torch.as_tensor(ds.items), np.asarray(ds.offsets), np.asarray(ds.items),
                          ds.num_items, trained.info["max_seq_len"], EvalOptions(ks=(5, 10)))
    return evaluator.evaluate(trained.model, "test").metrics


def test_slimkit_train_nproc_2_gives_the_single_process_losses_and_model(tmp_path):
    sasrec = {"kind": "sasrec", "hidden_size": 16, "inner_size": 32, "num_layers": 1,
              "num_heads": 1, "dropout": 0.0, "attn_dropout": 0.0}
    spec = write_spec(tmp_path, sasrec, {"batch_size": 25})  # causal: 5 windows per batch
    one = run(["-m", "slimkit", "train", "-c", str(spec), "--json"], tmp_path / "one", tmp_path)
    two = run(["-m", "slimkit", "train", "--nproc", "2", "-c", str(spec), "--json"],
              tmp_path / "two", tmp_path)
    single, multi = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone printed
    assert (single["processes"], multi["processes"]) == (1, 2)
    assert multi["train_mode"] == "causal"
    # 31 users, one window each, 5 per batch: shares of 3 and 2 windows, then a last batch
    # of 1 window where rank 1 computes a row it counts 0 times.
    assert len(losses(multi)) == 3
    assert losses(multi) == pytest.approx(losses(single), rel=1e-5)
    assert multi["test"] == pytest.approx(single["test"], abs=1e-9)
    assert multi["valid"] == pytest.approx(single["valid"], abs=1e-9)
    assert two.stderr.count("epoch   1  loss") == 1  # the epoch lines come from rank 0 alone
    train_entries = list((tmp_path / "two" / "stages" / "train").iterdir())
    assert [p.name for p in train_entries if not p.name.startswith(".")] == [Path(multi["path"]).name]
    cached_two = evaluate_cached(spec, tmp_path / "two")
    assert cached_two == pytest.approx(evaluate_cached(spec, tmp_path / "one"), abs=1e-9)
    assert cached_two == pytest.approx(multi["test"], abs=1e-9)


def test_torchrun_trains_a_plugin_backbone_per_prefix_and_other_ranks_stay_silent(tmp_path):
    pytest.importorskip("slimkit_bert4rec", reason="pip install -e plugins/slimkit-bert4rec")
    bert4rec = {"kind": "bert4rec", "hidden_size": 16, "inner_size": 32, "num_layers": 1,
                "num_heads": 1, "dropout": 0.0, "attention_dropout": 0.0}
    spec = write_spec(tmp_path, bert4rec, {"batch_size": 31, "mode": "per-prefix"})
    one = run(["-m", "slimkit", "train", "-c", str(spec), "--json"], tmp_path / "one", tmp_path)
    # torchrun itself, as on a cluster: the data stage cached first, then every rank.
    run(["-m", "slimkit", "run", "-c", str(spec), "--until", "data"], tmp_path / "two", tmp_path)
    logs = tmp_path / "logs"
    run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         f"--log-dir={logs}", "--redirects=3", "-m", "slimkit", "train", "-c", str(spec),
         "--json"], tmp_path / "two", tmp_path)
    outputs = {(p.parent.name, p.name): p.read_text() for p in logs.rglob("*.log")}
    assert {rank for rank, _ in outputs} == {"0", "1"}
    assert outputs[("1", "stdout.log")] == ""
    assert outputs[("1", "stderr.log")] == ""
    single, multi = json.loads(one.stdout), json.loads(outputs[("0", "stdout.log")])
    assert multi["train_mode"] == "per-prefix" and multi["processes"] == 2
    # 155 samples, 31 per batch: 16 and 15 rows per rank, 5 batches per epoch.
    assert losses(multi) == pytest.approx(losses(single), rel=1e-5)
    assert multi["test"] == pytest.approx(single["test"], abs=1e-9)


def test_slimkit_train_help_says_how_to_run_distributed():
    from typer.testing import CliRunner

    from slimkit.cli import app

    help_text = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    assert "--nproc" in help_text and "torchrun" in help_text and "docs/scaling.md" in help_text


def test_a_mistake_under_torchrun_is_shown_once_by_rank_0(tmp_path):
    spec = write_spec(tmp_path, {"kind": "gru4rec", "hidden_size": 16, "gru_size": 16},
                      {"batch_size": 25})
    failed = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                  "-m", "slimkit", "train", "-c", str(spec)], tmp_path / "empty", tmp_path, ok=False)
    assert failed.stderr.count("slimkit: error") == 1
    assert "in the cache first" in failed.stderr
    root_cause = failed.stderr.split("Root Cause")[1]
    assert re.search(r"rank\s*:\s*0\b", root_cause) and re.search(r"exitcode\s*:\s*2\b", root_cause)
