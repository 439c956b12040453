"""The parity bench's bookkeeping: time to RecBole's best valid NDCG@10, reused RecBole runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_parity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_parity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(curve, seconds=10.0):
    return {"history": [{"epoch": k + 1, "ndcg@10": v, "seconds": seconds}
                        for k, v in enumerate(curve)]}


def test_reach_ratios_strict_and_within_one_sd(bench):
    recbole = {"history": [{"epoch": 1, "ndcg@10": 0.05, "seconds": 100.0},
                           {"epoch": 2, "ndcg@10": 0.07, "seconds": 100.0}],
               "best_epoch": 2, "seconds_to_best": 200.0}
    entry = {"recbole": [recbole],
             "slimkit": [_run([0.06, 0.071]), _run([0.05, 0.068, 0.069]), _run([0.069])]}
    out = bench.reach_ratios(entry)
    assert out["recbole_best_valid_ndcg@10"] == 0.07
    assert out["slimkit_seconds_to_reach"] == [20.0, None, None]
    assert out["ratio_per_seed"] == [0.1, None, None]
    assert out["seeds_reaching"] == 1
    # sd of the best valid values (0.071, 0.069, 0.069) is 0.00115: 0.069 is within it.
    assert out["within_sd_target"] == pytest.approx(0.07 - 0.0011547, abs=1e-6)
    assert out["within_sd_slimkit_seconds_to_reach"] == [20.0, 30.0, 10.0]
    assert out["within_sd_seeds_reaching"] == 3
    assert bench.reach_ratios({"recbole": [], "slimkit": entry["slimkit"]}) == {}


def test_recbole_runs_are_reused_only_under_the_same_protocol(bench, tmp_path, capsys):
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({
        "date": "2026-11-30 19:41 UTC", "protocol": "batch 512, patience 5",
        "models": {"gru4rec": {"recbole": [{"seed": 2020}]}, "sasrec": {"recbole": []}},
    }))
    runs = bench.load_recbole_runs(earlier, "batch 512, patience 5")
    assert list(runs) == ["gru4rec"]
    assert runs["gru4rec"]["runs"] == [{"seed": 2020}]
    assert runs["gru4rec"]["source"]["date"] == "2026-11-30 19:41 UTC"
    with pytest.raises(SystemExit) as exit_info:
        bench.load_recbole_runs(earlier, "batch 2048, patience 10")
    assert exit_info.value.code == 2
    assert "Use the same --batch-size and --patience" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        bench.load_recbole_runs(tmp_path / "missing.json", "batch 512, patience 5")
    assert exit_info.value.code == 2


def _bench_json(path, protocol, **models):
    path.write_text(json.dumps({"date": "d", "machine": "m", "protocol": protocol,
                                "models": models}))
    return path


def _result(seed, ndcg):
    return {"seed": seed, "test": {"ndcg@10": ndcg, "hit@10": 2 * ndcg},
            "seconds_per_epoch": 1.0, "epochs": 3, "seconds_to_best": 2.0,
            "best_epoch": 2, "history": [{"epoch": e, "ndcg@10": ndcg, "seconds": 1.0}
                                         for e in (1, 2, 3)]}


def test_merge_combines_sides_run_apart(bench, tmp_path, capsys):
    slim = _bench_json(tmp_path / "s.json", "p",
                       gru4rec={"slimkit": [_result(1, 0.05), _result(2, 0.07)], "recbole": []})
    rb = _bench_json(tmp_path / "r.json", "p",
                     gru4rec={"slimkit": [], "recbole": [_result(1, 0.06)]})
    out = tmp_path / "merged.json"
    bench.merge([slim, rb], out)
    merged = json.loads(out.read_text())
    entry = merged["models"]["gru4rec"]
    assert [r["seed"] for r in entry["slimkit"]] == [1, 2]
    assert entry["summary"]["slimkit"]["ndcg@10"]["mean"] == pytest.approx(0.06)
    assert entry["summary"]["recbole"]["runs"] == 1
    assert entry["time_to_recbole_best"]["seeds_reaching"] == 1
    assert [m["file"] for m in merged["merged_from"]] == [str(slim), str(rb)]
    # The same seed twice on one side, or two protocols, is refused with exit code 2.
    with pytest.raises(SystemExit) as info:
        bench.merge([slim, slim], out)
    assert info.value.code == 2
    other = _bench_json(tmp_path / "o.json", "q", gru4rec={"slimkit": [], "recbole": []})
    with pytest.raises(SystemExit) as info:
        bench.merge([slim, other], out)
    assert info.value.code == 2
    assert "one protocol" in capsys.readouterr().err
    # Runs of another slimkit train.mode are not pooled either.
    per_prefix = tmp_path / "pp.json"
    per_prefix.write_text(json.dumps({**json.loads(rb.read_text()), "slimkit_mode": "per-prefix"}))
    with pytest.raises(SystemExit) as info:
        bench.merge([slim, per_prefix], out)
    assert info.value.code == 2
    assert "one slimkit_mode" in capsys.readouterr().err
