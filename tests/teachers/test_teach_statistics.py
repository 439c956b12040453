"""The statistics teacher (a non-LLM baseline), end to end through the teach stage."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import yaml
from helpers.teach_fixtures import tiny_spec

from slimkit.artifacts.rationales import read_rationales
from slimkit.cache import StageCache
from slimkit.data.rationale_cut import views_of
from slimkit.pipeline import Pipeline
from slimkit.prompts.history import user_history
from slimkit.rationale import parse_steps
from slimkit.spec import validate_spec
from slimkit.stages.teach import sample_users
from slimkit.teachers.statistics import LABEL, item_attributes, training_popularity


def _spec(tmp_path, **teacher):
    return validate_spec(tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 12, **teacher}))


def test_rows_follow_the_contract(tmp_path, isolated_cache):
    spec = _spec(tmp_path)
    cache = StageCache(isolated_cache)
    result = Pipeline(spec, cache, progress=False).run("teach")
    rows = read_rationales(result.path)
    dataset = Pipeline(spec, cache, progress=False).dataset()
    assert len(rows) == 12 and result.summary["done"] == 12 and result.summary["requests_sent"] == 0
    expected = {"user", "user_index", "messages", "rationale", "steps", "well_formed", "model",
                "prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "status", "error"}
    for row in rows:
        assert expected <= set(row)
        assert row["model"] == LABEL and row["status"] == "done" and row["well_formed"]
        assert row["cost_usd"] == 0.0
        assert {int(k): v for k, v in row["steps"].items()} == parse_steps(row["rationale"])
        assert dataset.user_ids[row["user_index"]] == row["user"]
        u = row["user_index"]
        # Step 3 never suggests an item of the history it was written from (under the
        # default prompt.rationale_cut, the training items before the user's cut).
        shown = views_of(dataset, spec.prompt).main.train_items(u)
        seen_titles = {dataset.item_titles[i] for i in shown}
        suggested = set(row["steps"]["3"].split(": ", 1)[1].rstrip(".").split("; "))
        assert suggested and not (suggested & seen_titles)
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary["done"] == 12
    assert Pipeline(spec, cache, progress=False).run("teach").cached
    assert len(Pipeline(spec, cache, progress=False).teacher_rationales()) == 12


def test_names_the_dominant_category(tmp_path, isolated_cache):
    spec = _spec(tmp_path)
    cache = StageCache(isolated_cache)
    dataset = Pipeline(spec, cache, progress=False).dataset()
    rows = read_rationales(Pipeline(spec, cache, progress=False).run("teach").path)
    for row in rows:
        history = dataset.train_items(row["user_index"])
        counts: dict[str, int] = {}
        for item in history:
            for attr in item_attributes(dataset.item_text[item], dataset.item_titles[item]):
                counts[attr] = counts.get(attr, 0) + 1
        top = max(counts, key=counts.get)
        assert top in row["steps"]["1"] and top in row["steps"]["2"]


def test_popularity_ignores_validation_and_test_targets(tmp_path, isolated_cache):
    spec = _spec(tmp_path)
    dataset = Pipeline(spec, StageCache(isolated_cache), progress=False).dataset()
    counts = training_popularity(dataset)
    expected = np.zeros(dataset.num_items + 1, dtype=np.int64)
    for u in range(dataset.num_users):
        for item in dataset.train_items(u):
            expected[item] += 1
    assert (counts == expected).all()


def test_prompt_history_sees_only_training_items(tmp_path, isolated_cache):
    spec = _spec(tmp_path)
    dataset = Pipeline(spec, StageCache(isolated_cache), progress=False).dataset()
    for u in range(dataset.num_users):
        texts = user_history(dataset, u, max_items=4, max_item_chars=12)
        assert len(texts) == min(4, len(dataset.train_items(u)))
        assert all(len(t) <= 12 for t in texts)
        assert texts[-1].startswith(dataset.item_text[dataset.train_items(u)[-1]][:5])


def test_user_sample_is_seeded_and_distinct():
    assert sample_users(100, 10, 3) == sample_users(100, 10, 3)
    assert sample_users(100, 10, 3) != sample_users(100, 10, 4)
    assert len(set(sample_users(100, 10, 3))) == 10
    assert sample_users(5, 10, 0) == [0, 1, 2, 3, 4]


def test_cli_statistics_teacher(tmp_path, isolated_cache):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 5})))
    proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path)],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "users done" in proc.stdout and "5 / 5" in proc.stdout
    assert "litellm" not in proc.stderr.lower() or "warning" not in proc.stderr.lower()
