"""Sweeps that stop (Ctrl-C, a kill) resume with the same values; a study runs in one
process at a time; Optuna is needed only here. Tiny plain-backbone spec (data + train)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.teach_fixtures import tiny_spec

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError

optuna = pytest.importorskip("optuna")

SPACE = {"train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
         "backbone.hidden_size": {"type": "categorical", "choices": [8, 16]}}


@pytest.fixture
def setup(tmp_path):
    from slimkit.tune import load_space

    raw = tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 4},
                    backbone={"kind": "sasrec", "hidden_size": 8, "num_layers": 1,
                              "num_heads": 1, "inner_size": 16},
                    fusion={"kind": "none"}, train={"epochs": 1, "batch_size": 64},
                    eval={"ks": [10]})
    config = tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(SPACE))
    return {"config": config, "space": load_space(space_path, config),
            "cache": StageCache(tmp_path / "cache"), "out": tmp_path / "out"}


def _tune(setup, trials, **kw):
    from slimkit.tune import tune

    return tune(setup["space"], config=setup["config"], trials=trials, cache=setup["cache"],
                out=setup["out"], progress=False, **kw)


def test_ctrl_c_in_a_trial_is_resumed_with_the_same_values(setup, monkeypatch):
    import slimkit.tune.study as study_module

    real = study_module.run_pipeline
    calls = []

    def interrupted_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "run_pipeline", interrupted_second_time)
    with pytest.raises(KeyboardInterrupt):
        _tune(setup, 3)
    monkeypatch.setattr(study_module, "run_pipeline", real)

    report = _tune(setup, 3)
    states = [r["state"] for r in report.trials]
    assert states == ["COMPLETE", "INTERRUPTED", "COMPLETE", "COMPLETE"]
    assert report.trials[2]["params"] == report.trials[1]["params"]  # queued again, first
    assert report.new_trials == 2


def test_a_killed_sweeps_running_trial_is_queued_again(setup):
    first = _tune(setup, 1)
    storage = first.storage
    study = optuna.load_study(study_name=first.study, storage=storage)
    left = study.ask(setup["space"].optuna_distributions())  # as a kill -9 leaves it: RUNNING
    report = _tune(setup, 2)
    assert [r["state"] for r in report.trials] == ["COMPLETE", "INTERRUPTED", "COMPLETE"]
    assert report.trials[2]["params"] == left.params


def test_one_process_per_study(setup):
    from filelock import FileLock

    first = _tune(setup, 1)
    folder = Path(first.files["csv"]).parent
    with FileLock(str(folder / "tune.lock")), pytest.raises(SlimkitError, match="Another"):
        _tune(setup, 2)


def test_a_bad_combination_is_a_failed_trial_not_a_crash(setup, tmp_path):
    from slimkit.tune import load_space, tune

    space_path = tmp_path / "heads.yaml"
    # Each value fits the spec alone (checked up front); 8 heads cannot split 12 units.
    space_path.write_text(yaml.safe_dump({
        "backbone.hidden_size": {"type": "categorical", "choices": [8, 12]},
        "backbone.num_heads": {"type": "categorical", "choices": [1, 8]},
    }))
    space = load_space(space_path, setup["config"])
    storage = f"sqlite:///{tmp_path / 'heads.db'}"
    study = optuna.create_study(study_name="heads", storage=storage, direction="maximize")
    study.enqueue_trial({"backbone.hidden_size": 12, "backbone.num_heads": 8})
    study.enqueue_trial({"backbone.hidden_size": 12, "backbone.num_heads": 1})
    report = tune(space, config=setup["config"], trials=2, cache=setup["cache"], study="heads",
                  storage=storage, out=tmp_path / "heads", progress=False)
    bad, good = report.trials
    assert bad["state"] == "FAIL" and "must divide hidden_size" in bad["error"]
    assert good["state"] == "COMPLETE" and report.best["trial"] == good["trial"]


def test_missing_optuna_names_the_extra(setup, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "optuna" or m.startswith("optuna.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SlimkitError) as err:
        _tune(setup, 1)
    assert 'pip install "slimkit[tune]"' in str(err.value)


def test_each_trial_is_a_tracked_run_named_after_the_study(setup, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from slimkit.tune import tune

    raw = yaml.safe_load(setup["config"].read_text())
    raw["tracking"] = {"backends": ["tensorboard", "mlflow"], "dir": str(tmp_path / "track"),
                       "experiment": "sweep"}
    config = tmp_path / "tracked.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    report = tune(setup["space"], config=config, trials=2, cache=setup["cache"],
                  out=tmp_path / "out2", progress=False)
    names = sorted(p.name for p in (tmp_path / "track" / "tensorboard" / "sweep").iterdir())
    assert names == [f"{report.study}-trial-000", f"{report.study}-trial-001"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'track' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    assert sorted(r.data.tags["tune_trial"] for r in runs) == ["0", "1"]
    for run in runs:
        number = int(run.data.tags["tune_trial"])
        assert float(run.data.params["train.lr"]) == pytest.approx(
            report.trials[number]["params"]["train.lr"])
        assert run.data.metrics["valid/ndcg_at_10"] == pytest.approx(report.trials[number]["value"])


def test_a_crash_in_a_trial_is_raised_and_not_queued_again(setup, monkeypatch):
    import slimkit.tune.study as study_module

    real = study_module.run_pipeline

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(study_module, "run_pipeline", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        _tune(setup, 2)
    monkeypatch.setattr(study_module, "run_pipeline", real)
    report = _tune(setup, 2)
    assert [r["state"] for r in report.trials] == ["FAIL", "COMPLETE"]
    assert report.trials[0]["error"] == "RuntimeError: out of memory"
