"""The local teacher: a real in-process model behind litellm's custom provider."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from teach_fixtures import tiny_spec

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.spec import validate_spec
from slimkit.stages.teach import read_rationales, run_teach


def test_missing_local_model_is_a_user_error(tmp_path, isolated_cache):
    spec = validate_spec(tiny_spec(tmp_path / "data", {
        "kind": "local", "model": str(tmp_path / "no-such-model.gguf"), "num_users": 2}))
    with pytest.raises(SlimkitError, match="not found"):
        run_teach(spec, StageCache(isolated_cache), progress=False)


@pytest.mark.slow
def test_local_teacher_through_litellm(tmp_path, isolated_cache):
    spec = validate_spec(tiny_spec(
        tmp_path / "data",
        {"kind": "local", "num_users": 3, "max_new_tokens": 30, "batch_size": 2},
        prompt={"max_items": 4},
    ))
    cache = StageCache(isolated_cache)
    result = run_teach(spec, cache, progress=False)
    rows = read_rationales(result.path)
    assert result.summary["done"] == 3 and result.summary["cost_usd"] == 0.0
    for row in rows:
        assert row["model"] == "local/smollm2-135m-instruct"
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        # With scaffold_steps the model fills three steps; each has text of its own.
        assert row["well_formed"], row["rationale"]
    # Every response went through the record cache: a second run decodes nothing.
    cache.delete("teach", result.key)
    again = run_teach(spec, cache, progress=False)
    assert again.summary["requests_sent"] == 0 and again.summary["cached"] == 3

    # The synchronous litellm path is served by the same handler.
    from slimkit.teachers.litellm_teacher import import_litellm

    litellm = import_litellm()
    response = litellm.completion(model="local/smollm2-135m-instruct",
                                  messages=[{"role": "user", "content": "Name a fruit."}],
                                  max_tokens=6, temperature=0.0)
    assert response.usage.completion_tokens > 0
    assert response.choices[0].message.content.startswith("Step 1:")


@pytest.mark.slow
def test_local_teacher_workers_give_the_same_answers(tmp_path, isolated_cache):
    """Two decoding threads share the model; greedy answers match one thread's."""
    rationales = {}
    for workers in (1, 2):
        spec = validate_spec(tiny_spec(
            tmp_path / "data",
            {"kind": "local", "num_users": 4, "max_new_tokens": 24, "batch_size": 1,
             "workers": workers, "quantize": "none"},
            prompt={"max_items": 3},
        ))
        cache = StageCache(isolated_cache / f"workers-{workers}")  # no shared record cache
        result = run_teach(spec, cache, progress=False)
        assert result.summary["done"] == 4
        rationales[workers] = {r["user_index"]: r["rationale"] for r in read_rationales(result.path)}
    assert rationales[1] == rationales[2]
