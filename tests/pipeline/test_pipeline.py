"""Pipeline orchestration: which stages run, --until/--force checks, and status."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from slimkit.cache import StageCache
from slimkit.cli import app
from slimkit.errors import SlimkitError
from slimkit.pipeline import (
    check_stage_name,
    needed_stages,
    pipeline_status,
    run_pipeline,
    stage_keys,
    stage_spec,
)
from slimkit.pipeline.report import teacher_cost
from slimkit.pipeline.status import spec_changes
from slimkit.spec import validate_spec


def _spec(**sections):
    return validate_spec(sections)


def test_plain_backbone_skips_the_llm_stages():
    skip = needed_stages(_spec(fusion={"kind": "none"}))
    assert skip["data"] is None and skip["train"] is None
    for stage in ("teach", "distill", "encode"):
        assert "none" in skip[stage]


def test_slim_needs_every_stage():
    assert all(v is None for v in needed_stages(_spec(fusion={"kind": "slim"})).values())


def test_unknown_stage_names_suggest_the_closest():
    with pytest.raises(SlimkitError) as err:
        check_stage_name("distil", "--until")
    assert "distill" in str(err.value) and "--until" in str(err.value)


def test_force_after_until_is_an_error(tmp_path):
    with pytest.raises(SlimkitError, match="nothing would be recomputed"):
        run_pipeline(_spec(), StageCache(tmp_path), until="teach", force="train", progress=False)


def test_spec_changes_name_the_setting():
    old = {"teacher": {"num_users": 200, "seed": 0}, "dataset": {"kind": "movielens-100k"}}
    new = {"teacher": {"num_users": 300, "seed": 0}, "dataset": {"kind": "movielens-100k"}}
    assert spec_changes(old, new) == ["teacher.num_users: 200 -> 300"]
    assert spec_changes(new, new) == []
    assert spec_changes({"a": {"x": 1}}, {"a": {}}) == ["a.x: 1 -> (unset)"]


def test_teacher_cost_unknown_is_not_zero():
    assert teacher_cost({"done": 3, "prompt_tokens": 10})["cost_usd"] is None
    assert teacher_cost({"usage": {"cost_usd": 0.5}})["cost_usd"] == 0.5
    assert teacher_cost(None) is None


def _fake_entry(cache, spec, stage):
    """A committed cache entry for ``stage`` of ``spec`` (status reads only metadata)."""
    key = stage_keys(spec, cache)[stage]
    with cache.write(stage, key, stage_spec(spec, stage), summary={"note": "test"}) as out:
        (out / "marker.txt").write_text("x")
    return key


def test_status_missing_cached_and_stale(tmp_path):
    cache = StageCache(tmp_path)
    spec = _spec(dataset={"kind": "movielens-100k", "min_user_interactions": 5})
    rows = {r["stage"]: r for r in pipeline_status(spec, cache)}
    assert {r["status"] for r in rows.values()} == {"missing"}

    _fake_entry(cache, spec, "data")
    rows = {r["stage"]: r for r in pipeline_status(spec, cache)}
    assert rows["data"]["status"] == "cached"
    assert rows["teach"]["status"] == "missing"

    changed = _spec(dataset={"kind": "movielens-100k", "min_user_interactions": 10})
    rows = {r["stage"]: r for r in pipeline_status(changed, cache)}
    assert rows["data"]["status"] == "stale"
    assert rows["data"]["changes"] == ["dataset.min_user_interactions: 5 -> 10"]


def test_status_names_upstream_changes_for_downstream_stages(tmp_path):
    cache = StageCache(tmp_path)
    spec = _spec(teacher={"kind": "statistics", "num_users": 200})
    _fake_entry(cache, spec, "teach")
    changed = _spec(teacher={"kind": "statistics", "num_users": 300})
    rows = {r["stage"]: r for r in pipeline_status(changed, cache)}
    assert rows["teach"]["status"] == "stale"
    assert rows["teach"]["changes"] == ["teacher.num_users: 200 -> 300"]


def test_status_skips_what_the_fusion_does_not_need(tmp_path):
    rows = {r["stage"]: r for r in pipeline_status(_spec(fusion={"kind": "none"}), StageCache(tmp_path))}
    assert rows["teach"]["status"] == "skipped" and rows["data"]["status"] == "missing"


def test_status_cli_json(tmp_path, isolated_cache):
    config = tmp_path / "spec.yaml"
    config.write_text("teacher:\n  kind: statistics\n  num_users: 200\n")
    spec = _spec(teacher={"kind": "statistics", "num_users": 200})
    _fake_entry(StageCache(isolated_cache), spec, "teach")
    result = CliRunner().invoke(
        app, ["status", "-c", str(config), "--set", "teacher.num_users=250", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["stage"]: r for r in json.loads(result.stdout)}
    assert rows["teach"]["changes"] == ["teacher.num_users: 200 -> 250"]
    table = CliRunner().invoke(app, ["status", "-c", str(config), "--set", "teacher.num_users=250"])
    assert "stale" in table.stdout and "teacher.num_users: 200 -> 250" in table.stdout


def test_run_cli_rejects_unknown_stage(capsys):
    from slimkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--until", "trian"])
    assert exit_info.value.code == 2
    assert "train" in capsys.readouterr().err
