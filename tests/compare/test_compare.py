"""`slimkit compare`: which rows run with which spec, the improvement column, table, plot."""

from __future__ import annotations

import pytest

from slimkit.compare import (
    METHODS,
    CompareResult,
    add_improvements,
    draw_popularity,
    parse_list,
    plan,
    table,
)
from slimkit.errors import ConfigError
from slimkit.pipeline import stage_keys
from slimkit.spec import validate_spec


def test_plan_rows_and_their_specs():
    spec = validate_spec(
        {"backbone": {"kind": "sasrec", "hidden_size": 32, "num_heads": 2},
         "fusion": {"kind": "slim", "mode": "gate", "dropout": 0.2}}
    )
    rows = plan(spec, ["sasrec", "gru4rec"])
    names = [(b, m) for b, m, _ in rows]
    assert names[:4] == [("sasrec", m) for m in ("plain", "item-text", "slim-teacher", "slim")]
    assert names[4:8] == [("gru4rec", m) for m in ("plain", "item-text", "slim-teacher", "slim")]
    assert names[8:] == [("sasrec", m) for m in
                         ("text-match", "text-match-teacher", "text-match-step1",
                          "text-match-step2", "text-match-step3", "text-match-hybrid")]
    by_name = {(b, m): s for b, m, s in rows}
    slim = by_name[("sasrec", "slim")].fusion
    # The spec's own slim parameters carry over; the method fixes the rationale source.
    assert slim.mode == "gate" and slim.dropout == 0.2 and slim.rationale_source == "student"
    assert by_name[("sasrec", "slim-teacher")].fusion.rationale_source == "teacher"
    assert by_name[("sasrec", "plain")].fusion.kind == "none"
    assert by_name[("sasrec", "text-match-step2")].fusion.step == 2
    assert by_name[("sasrec", "text-match")].fusion.step is None
    # The paper's text-match rows are ID-agnostic and history-free; the hybrid is its own row.
    for method in ("text-match", "text-match-teacher", "text-match-step1", "text-match-step2",
                   "text-match-step3"):
        assert by_name[("sasrec", method)].fusion.use_history is False
    assert by_name[("sasrec", "text-match-hybrid")].fusion.use_history is True
    assert by_name[("sasrec", "text-match-teacher")].fusion.rationale_source == "teacher"
    gru = by_name[("gru4rec", "plain")].backbone
    assert gru.kind == "gru4rec" and gru.hidden_size == 32  # comparable size
    # Rows share every upstream stage: only the train key differs.
    keys = [stage_keys(s) for _, _, s in rows]
    for stage in ("data", "teach", "distill", "encode"):
        assert len({k[stage] for k in keys}) == 1
    assert len({k["train"] for k in keys}) == len(rows)


def test_plan_subset_and_bad_names():
    spec = validate_spec({})
    assert [m for _, m, _ in plan(spec, None, ["plain", "slim"])] == ["plain", "slim"]
    with pytest.raises(ConfigError, match="sasrec"):
        plan(spec, ["sasrek"])
    with pytest.raises(ConfigError, match="Did you mean .item-text."):
        parse_list("plain,item-txt", list(METHODS), "method")
    assert parse_list("plain, slim,plain", list(METHODS), "method") == ["plain", "slim"]


def _row(backbone, method, ndcg, std=0.01, tail=0.3):
    return {
        "backbone": backbone,
        "method": method,
        "test": {"ndcg@10": {"mean": ndcg, "std": std}, "hit@10": {"mean": 2 * ndcg, "std": std}},
        "popularity": {"efd@10": ndcg * 3, "epc@10": ndcg, "tail_share@10": tail,
                       "hit@10_head": 2 * ndcg, "hit@10_tail": ndcg},
    }


def test_improvement_over_the_best_baseline_of_the_same_backbone():
    rows = [
        _row("sasrec", "plain", 0.10),
        _row("sasrec", "item-text", 0.12),
        _row("sasrec", "slim-teacher", 0.11),
        _row("sasrec", "slim", 0.15),
        _row("gru4rec", "plain", 0.05),
        _row("gru4rec", "slim", 0.04),
        _row("sasrec", "text-match", 0.09),
    ]
    add_improvements(rows)
    by = {(r["backbone"], r["method"]): r for r in rows}
    assert by[("sasrec", "slim")]["improvement"]["ndcg@10"] == pytest.approx(0.25)
    assert by[("sasrec", "text-match")]["improvement"]["ndcg@10"] == pytest.approx(-0.25)
    assert by[("gru4rec", "slim")]["improvement"]["ndcg@10"] == pytest.approx(-0.2)
    assert by[("sasrec", "item-text")]["baseline"] and not by[("sasrec", "slim")]["baseline"]

    result = CompareResult(rows=rows, meta={"seeds": [1, 2], "dataset": {"name": "tiny"},
                                            "protocol": "full", "masked_history": True})
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table(result))
    text = console.export_text()
    assert "+25.0%" in text and "0.1500 ± 0.0100" in text and "2 seeds" in text


def test_a_teacher_row_that_did_not_cover_every_user_is_labelled_and_not_a_baseline():
    from rich.console import Console

    partial = {**_row("sasrec", "slim-teacher", 0.20),
               "teacher_coverage": {"users": 64, "of": 943}, "partial_coverage": True}
    rows = [_row("sasrec", "plain", 0.10), partial, _row("sasrec", "slim", 0.15)]
    add_improvements(rows)
    assert not partial["baseline"]
    # slim is measured against plain only: the 64-user teacher row is not a baseline.
    assert rows[2]["improvement"]["ndcg@10"] == pytest.approx(0.5)
    console = Console(width=250, record=True)
    console.print(table(CompareResult(rows=rows, meta={"seeds": [1], "protocol": "full"})))
    text = console.export_text()
    assert "slim-teacher (teacher: 64/943 users)" in text
    assert "± 0.0000" not in text and "n=1 seed" in text

    full = {**_row("sasrec", "slim-teacher", 0.20),
            "teacher_coverage": {"users": 943, "of": 943}, "partial_coverage": False}
    rows = [_row("sasrec", "plain", 0.10), full, _row("sasrec", "slim", 0.15)]
    add_improvements(rows)
    assert full["baseline"] and rows[2]["improvement"]["ndcg@10"] == pytest.approx(-0.25)


@pytest.mark.parametrize("method", [m for m in METHODS if m.startswith("text-match")])
def test_text_match_rows_have_no_history_path_except_the_hybrid(method):
    import torch

    from slimkit.factories import build_recommender

    spec = validate_spec({"backbone": {"kind": "sasrec", "hidden_size": 8, "num_heads": 2,
                                       "num_layers": 1}})
    (_, _, row_spec), = plan(spec, None, [method])
    torch.manual_seed(0)
    model = build_recommender(row_spec.backbone, row_spec.fusion, num_users=3, num_items=6,
                              max_seq_len=4, item_vectors=torch.randn(7, 5),
                              rationale_vectors=torch.randn(3, 5)).eval()
    users, lengths = torch.tensor([0, 1]), torch.tensor([3, 3])
    a = model.score_all(torch.tensor([[1, 2, 3, 0], [4, 5, 6, 0]]), lengths, users)
    b = model.score_all(torch.tensor([[6, 5, 4, 0], [3, 2, 1, 0]]), lengths, users)
    if method == "text-match-hybrid":
        assert not torch.allclose(a, b)
    else:  # the scores do not depend on the history at all
        assert torch.equal(a, b) and not hasattr(model, "combine")


def test_popularity_plot(tmp_path):
    rows = [_row("sasrec", "plain", 0.1, tail=0.1), _row("sasrec", "slim", 0.12, tail=0.4)]
    out = draw_popularity(rows, tmp_path / "pop.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = [{"group": g, "items": 5, "mean_popularity": 10.0 / g, "item_share": 0.25,
              "share": s} for g, s in enumerate([0.5, 0.3, 0.15, 0.05], start=1)]
    for row in rows:
        row["popularity_curve"] = curve
    with_curve = draw_popularity(rows, tmp_path / "curve.png")
    # The per-item curve adds a third panel: a taller figure.
    from PIL import Image

    assert Image.open(with_curve).size[1] > Image.open(out).size[1]


def test_sparsity_table_shows_each_row_per_history_length_group():
    from rich.console import Console

    from slimkit.compare.display import sparsity_table

    groups = [{"group": 1, "users": 10, "min_length": 3, "max_length": 9, "ndcg@10": 0.05},
              {"group": 2, "users": 10, "min_length": 10, "max_length": 90, "ndcg@10": 0.08}]
    rows = [{**_row("sasrec", m, 0.1), "sparsity": groups} for m in ("plain", "slim")]
    console = Console(width=200, record=True)
    console.print(sparsity_table(CompareResult(rows=rows, meta={})))
    text = console.export_text()
    assert "3–9 (10)" in text and "10–90 (10)" in text and "0.0800" in text
    assert sparsity_table(CompareResult(rows=[_row("sasrec", "plain", 0.1)], meta={})) is None


# -- end to end on a tiny synthetic pipeline (statistics teacher, real student/encoder) ------
def _tiny_pipeline_spec(tmp_path):
    import random

    rng = random.Random(0)
    genres = ["Comedy", "Drama", "Action", "Horror"]
    rows = []
    for u in range(12):
        for t, i in enumerate(rng.sample(range(1, 41), 8)):
            rows.append(f"u{u},i{i},{1000 + t}\n")
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(rows))
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,categories\n" + "".join(
        f"i{i},Movie {i},{genres[i % 4]}\n" for i in range(1, 41)))
    return validate_spec({
        "dataset": {"kind": "csv", "path": str(log), "items_path": str(items),
                    "text_columns": ["title", "categories"],
                    "item_text_template": "{title}; {categories}"},
        "teacher": {"kind": "statistics", "num_users": 6},
        "prompt": {"max_items": 5},
        "student": {"kind": "hf-lora", "max_steps": 1, "max_new_tokens": 12,
                    "quality_users": 0, "max_length": 512, "valid_share": 0.0},
        "backbone": {"kind": "sasrec", "hidden_size": 16, "num_heads": 2, "num_layers": 1},
        "fusion": {"kind": "slim"},
        "train": {"epochs": 2, "batch_size": 16, "patience": 1},
        "eval": {"seeds": [1, 2]},
    })


@pytest.mark.slow
def test_compare_json_on_a_tiny_pipeline(tmp_path, monkeypatch):
    import json

    import yaml
    from typer.testing import CliRunner

    from slimkit.cli import app

    spec = _tiny_pipeline_spec(tmp_path)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    plot = tmp_path / "pop.png"
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "-c", str(config), "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    methods = [r["method"] for r in data["rows"]]
    assert methods == ["plain", "item-text", "slim-teacher", "slim", "text-match",
                       "text-match-teacher", "text-match-step1", "text-match-step2",
                       "text-match-step3", "text-match-hybrid"]
    assert data["seeds"] == [1, 2]
    for row in data["rows"]:
        assert row["backbone"] == "sasrec"
        for metric in ("ndcg@10", "hit@10", "hit@20"):
            block = row["test"][metric]
            assert set(block) == {"mean", "std", "n"} and 0.0 <= block["mean"] <= 1.0
            assert block["n"] == 2 and block["std"] is not None
        assert {"efd@10", "epc@10"} <= set(row["popularity"])
        assert len(row["sparsity"]) >= 1 and "ndcg@10" in row["sparsity"][0]
        assert abs(sum(g["share"] for g in row["popularity_curve"]) - 1.0) < 1e-6
        if row["method"] == "plain":
            assert row["vs_plain"] is None
        else:  # every row against plain, paired over the tiny dataset's users and 2 seeds
            diff = row["vs_plain"]["ndcg@10"]
            assert diff["seeds"] == [1, 2] and diff["low"] <= diff["diff"] <= diff["high"]
        assert not row["cached"]
    assert plot.read_bytes()[:4] == b"\x89PNG"

    # Everything is cached now: a second run trains nothing and prints the same numbers.
    again = runner.invoke(app, ["compare", "-c", str(config), "--json", "--methods", "plain,slim"])
    assert again.exit_code == 0, again.output
    rows = json.loads(again.stdout)["rows"]
    assert [r["cached"] for r in rows] == [True, True]
    assert rows[1]["test"] == data["rows"][3]["test"]


def test_differences_against_plain_are_paired_over_users_and_seeds():
    import numpy as np

    from slimkit.compare import add_differences
    from slimkit.compare.display import fmt_difference

    rng = np.random.default_rng(0)
    plain = {s: {"ndcg@10": rng.uniform(0, 1, 400), "hit@10": rng.binomial(1, 0.2, 400) * 1.0}
             for s in (1, 2, 3)}
    better = {s: {m: v + 0.05 for m, v in ms.items()} for s, ms in plain.items()}
    same = {s: {m: v.copy() for m, v in ms.items()} for s, ms in plain.items()}
    rows = [_row("sasrec", "plain", 0.1), _row("sasrec", "slim", 0.15),
            _row("sasrec", "item-text", 0.1), _row("gru4rec", "slim", 0.1),
            _row("sasrec", "text-match", 0.1)]
    add_differences(rows, [plain, better, same, better, None])
    by = {(r["backbone"], r["method"]): r for r in rows}
    assert by[("sasrec", "plain")]["vs_plain"] is None
    slim = by[("sasrec", "slim")]["vs_plain"]["ndcg@10"]
    assert slim["diff"] == pytest.approx(0.05) and slim["seeds"] == [1, 2, 3]
    assert slim["users"] == 400 and slim["excludes_zero"]
    assert fmt_difference(slim).startswith("+0.0500 [") and fmt_difference(slim).endswith("*")
    same_diff = by[("sasrec", "item-text")]["vs_plain"]["ndcg@10"]
    assert same_diff["diff"] == 0.0 and not same_diff["excludes_zero"]
    assert "hit@20" not in by[("sasrec", "slim")]["vs_plain"]  # not in the per-user data
    assert by[("gru4rec", "slim")]["vs_plain"] is None  # no plain row for gru4rec
    assert by[("sasrec", "text-match")]["vs_plain"] is None
    assert "clear its train stage" in by[("sasrec", "text-match")]["vs_plain_note"]
    assert fmt_difference(None) == "–"


def test_one_seed_has_no_spread():
    from slimkit.compare.display import _fmt
    from slimkit.compare.run import _metric_block

    block = _metric_block({"test": {"ndcg@10": 0.1}, "test_std": {}, "seeds": [{"seed": 1}]}, "test")
    assert block["ndcg@10"] == {"mean": 0.1, "std": None, "n": 1}
    assert _fmt(block["ndcg@10"]) == "0.1000"
    block = _metric_block({"test": {"ndcg@10": 0.1}, "test_std": {"ndcg@10": 0.02},
                           "seeds": [{"seed": 1}, {"seed": 2}]}, "test")
    assert _fmt(block["ndcg@10"]) == "0.1000 ± 0.0200"


@pytest.mark.slow
def test_jobs_train_missing_rows_in_worker_processes_with_the_same_results(tmp_path):
    from slimkit.cache import StageCache
    from slimkit.compare import run_compare

    spec = _tiny_pipeline_spec(tmp_path)
    cache = StageCache()
    methods = ["plain", "slim", "text-match"]
    alone = run_compare(spec, cache, methods=methods, progress=False)
    assert alone.trained == ["sasrec/plain", "sasrec/slim", "sasrec/text-match"]
    for row in alone.rows:  # forget the trained rows; upstream stages stay cached
        cache.delete("train", row["train_key"])

    from slimkit.compare.run import train_in_parallel

    done = train_in_parallel(plan(spec, None, methods), cache, 2, None)
    assert sorted(done) == [0, 1, 2] and all(seconds > 0 for seconds in done.values())
    parallel = run_compare(spec, cache, methods=methods, progress=False)
    for a, b in zip(alone.rows, parallel.rows):  # same seeds, one thread each: same models
        assert b["cached"] and a["train_key"] == b["train_key"]
        for metric, block in a["test"].items():
            assert b["test"][metric]["mean"] == pytest.approx(block["mean"], abs=1e-6), metric

    # All cached now: nothing goes to a worker.
    assert train_in_parallel(plan(spec, None, methods), cache, 2, None) == {}
