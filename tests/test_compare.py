"""`slimkit compare`: which rows run with which spec, the improvement column, table, plot."""

from __future__ import annotations

import pytest

from slimkit.errors import ConfigError
from slimkit.spec import validate_spec
from slimkit.stages import stage_keys
from slimkit.stages.compare import (
    METHODS,
    CompareResult,
    add_improvements,
    draw_popularity,
    parse_list,
    plan,
    table,
)


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
                         ("text-match", "text-match-step1", "text-match-step2", "text-match-step3")]
    by_name = {(b, m): s for b, m, s in rows}
    slim = by_name[("sasrec", "slim")].fusion
    # The spec's own slim parameters carry over; the method fixes the rationale source.
    assert slim.mode == "gate" and slim.dropout == 0.2 and slim.rationale_source == "student"
    assert by_name[("sasrec", "slim-teacher")].fusion.rationale_source == "teacher"
    assert by_name[("sasrec", "plain")].fusion.kind == "none"
    assert by_name[("sasrec", "text-match-step2")].fusion.step == 2
    assert by_name[("sasrec", "text-match")].fusion.step is None
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


def test_popularity_plot(tmp_path):
    rows = [_row("sasrec", "plain", 0.1, tail=0.1), _row("sasrec", "slim", 0.12, tail=0.4)]
    out = draw_popularity(rows, tmp_path / "pop.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
