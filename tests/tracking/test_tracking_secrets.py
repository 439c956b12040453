"""What a tracker may log: the spec flattened, secrets never."""

from __future__ import annotations

from slimkit.tracking.figures import epoch_figures, numbers, run_figures
from slimkit.tracking.secrets import REDACTED, safe_params, scrub, secret_values


def test_secret_named_keys_are_redacted_but_env_var_names_kept():
    spec = {"teacher": {"kind": "litellm", "api_key": "abc123456789", "api_key_env": "MY_KEY",
                        "extra_headers": {"Authorization": "Bearer xyz"}, "timeout": 10.0},
            "train": {"lr": 0.001, "epochs": 3, "device": "auto"},
            "tracking": {"mlflow_uri": "http://u:p@host"}}
    params = safe_params(spec, environ={})
    assert params["teacher.api_key"] == REDACTED
    assert params["teacher.extra_headers.Authorization"] == REDACTED
    assert params["teacher.api_key_env"] == "MY_KEY"
    assert params["train.lr"] == 0.001 and params["train.epochs"] == 3
    assert not any(k.startswith("tracking.") for k in params)


def test_values_of_secret_env_vars_urls_and_query_tokens_are_scrubbed():
    env = {"OPENAI_API_KEY": "sk-live-0123456789", "HOME": "/root", "SHORT_TOKEN": "abc"}
    assert secret_values(env) == ["sk-live-0123456789"]
    spec = {"teacher": {"api_base": "https://bob:hunter2@llm.example/v1?api_key=zzz&x=1",
                        "note": "key is sk-live-0123456789"}}
    params = safe_params(spec, environ=env)
    assert params["teacher.api_base"] == (
        f"https://bob:{REDACTED}@llm.example/v1?api_key={REDACTED}&x=1")
    assert params["teacher.note"] == f"key is {REDACTED}"
    assert scrub("http://host:8000/v1", []) == "http://host:8000/v1"


def test_lists_and_nulls_are_text():
    params = safe_params({"eval": {"ks": [5, 10], "seeds": [1]}, "student": {"model": None}},
                         environ={})
    assert params == {"eval.ks": "[5, 10]", "eval.seeds": "[1]", "student.model": "null"}


def test_figures_of_a_report():
    report = {
        "seconds": 3.5,
        "stages": [
            {"stage": "data", "status": "cached", "seconds": 0.1, "summary": {"users": 5}},
            {"stage": "teach", "status": "ran", "seconds": 2.0,
             "summary": {"prompt_tokens": 100, "cost_usd": None, "teacher": "litellm"}},
            {"stage": "distill", "status": "skipped", "summary": {}},
        ],
        "teacher": {"teacher": "litellm", "prompt_tokens": 100, "cost_usd": 0.25},
        "metrics": {"valid": {"ndcg@10": 0.1}, "test": {"ndcg@10": 0.2}, "seeds": []},
    }
    out = run_figures(report)
    assert out["stage/data/cached"] == 1.0 and out["stage/teach/cached"] == 0.0
    assert "stage/distill/seconds" not in out
    assert out["teach/prompt_tokens"] == 100 and "teach/cost_usd" not in out  # unknown, not 0
    assert out["teacher/cost_usd"] == 0.25
    assert out["valid/ndcg@10"] == 0.1 and out["test/ndcg@10"] == 0.2
    assert "stage/data/seconds" in out and "data/users" not in out
    assert numbers({"a": {"b": True, "c": float("nan"), "d": "x"}}, "p") == {"p/a/b": 1.0}
    one = epoch_figures({"loss": 1.0, "ndcg@10": 0.5, "seconds": 2.0, "seed": 7}, "ndcg@10",
                        per_seed=True)
    assert one == {"train/seed_7/loss": 1.0, "train/seed_7/epoch_seconds": 2.0,
                   "train/seed_7/valid_ndcg@10": 0.5}
