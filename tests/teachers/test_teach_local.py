"""The local teacher: a real in-process model, called through slimkit.llm."""

from __future__ import annotations

import pytest
from helpers.teach_fixtures import tiny_spec

from slimkit.artifacts.rationales import read_rationales
from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.pipeline import Pipeline
from slimkit.spec import validate_spec


def test_missing_local_model_is_a_user_error(tmp_path, isolated_cache):
    spec = validate_spec(tiny_spec(tmp_path / "data", {
        "kind": "local", "model": str(tmp_path / "no-such-model.gguf"), "num_users": 2}))
    with pytest.raises(SlimkitError, match="not found"):
        Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")


@pytest.mark.slow
def test_local_teacher_answers_are_cached_one_by_one(tmp_path, isolated_cache):
    spec = validate_spec(tiny_spec(
        tmp_path / "data",
        {"kind": "local", "num_users": 3, "max_new_tokens": 30, "batch_size": 2},
        prompt={"max_items": 4},
    ))
    cache = StageCache(isolated_cache)
    result = Pipeline(spec, cache, progress=False).run("teach")
    rows = read_rationales(result.path)
    assert result.summary["done"] == 3 and result.summary["cost_usd"] == 0.0
    assert result.summary["requests_sent"] == 3
    for row in rows:
        assert row["model"] == "local/smollm2-135m-instruct"
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        # With scaffold_steps the model fills three steps; each has text of its own.
        assert row["well_formed"], row["rationale"]
    # Every answer went through the record cache: a second run decodes nothing.
    cache.delete("teach", result.key)
    again = Pipeline(spec, cache, progress=False).run("teach")
    assert again.summary["requests_sent"] == 0 and again.summary["cached"] == 3
    assert [r["rationale"] for r in read_rationales(again.path)] == [r["rationale"] for r in rows]


@pytest.mark.slow
def test_local_teacher_workers_give_the_same_answers(tmp_path, isolated_cache):
    """Two decoding threads share the model; greedy answers match one thread's, since
    batches follow the order requests were sent in, not their timing (which matters in
    bf16, the default on a CPU with native bf16: padding changes the numerics)."""
    rationales = {}
    for workers in (1, 2):
        spec = validate_spec(tiny_spec(
            tmp_path / "data",
            {"kind": "local", "num_users": 6, "max_new_tokens": 24, "batch_size": 2,
             "workers": workers},
            prompt={"max_items": 3},
        ))
        cache = StageCache(isolated_cache / f"workers-{workers}")  # no shared record cache
        result = Pipeline(spec, cache, progress=False).run("teach")
        assert result.summary["done"] == 6
        rationales[workers] = {r["user_index"]: r["rationale"] for r in read_rationales(result.path)}
    assert rationales[1] == rationales[2]


class _Records(dict):
    """A stand-in for the record cache (get/set)."""

    def set(self, key, value):
        self[key] = value


def _context(jobs, records):
    from slimkit.teachers.base import Progress, TeachContext

    return TeachContext(dataset=None, records=records, progress=Progress(len(jobs), "t", enabled=False))


def test_malformed_answers_are_asked_again_at_the_retry_temperature_and_all_cached(monkeypatch):
    """One round per attempt, in the jobs' order; retries sample (temperature 0.7, a seed)."""
    from slimkit.llm.generate import Completion
    from slimkit.teachers import local
    from slimkit.teachers.base import TeacherJob

    calls = []

    def fake_generate(model, tokenizer, prompts, *, on_done, order, temperature, seed, **kwargs):
        calls.append({"prompts": [p[0] for p in prompts], "order": order,
                      "temperature": temperature, "seed": seed})
        for i, prompt in enumerate(prompts):
            # user 1 answers in three steps only when asked again
            good = prompt[0] != 1 or seed is not None
            text = "Step 1: x\nStep 2: a\nStep 3: b" if good else "nothing"
            on_done(Completion(index=i, text=text, content_tokens=3, new_tokens=4,
                               prompt_tokens=len(prompt), stopped=True))
        return {"new_tokens": 4 * len(prompts), "seconds": 0.5}

    monkeypatch.setattr("slimkit.llm.generate.generate", fake_generate)
    teacher = local.LocalTeacher(precision="none", max_new_tokens=16, max_malformed_retries=1,
                                 scaffold_steps=False)
    monkeypatch.setattr(teacher, "load", lambda: None)
    monkeypatch.setattr(teacher, "prompt_ids", lambda messages: [int(messages[0]["content"])])
    jobs = [TeacherJob(user_index=u, user=str(u), messages=[{"role": "user", "content": str(u)}],
                       history=()) for u in (2, 1, 0)]
    records = _Records()
    ctx = _context(jobs, records)
    rows = teacher.teach(jobs, ctx)
    assert [c["prompts"] for c in calls] == [[2, 1, 0], [1]]  # the jobs' order, then the retry
    assert calls[0]["order"] == "given" and calls[0]["temperature"] == 0.0
    assert calls[1]["temperature"] == 0.7 and calls[1]["seed"] == 1
    assert [r["user_index"] for r in rows] == [2, 1, 0] and all(r["well_formed"] for r in rows)
    assert rows[1]["attempts"] == 2 and rows[1]["rationale"].startswith("Step 1: x")
    assert ctx.stats.requests_sent == 4 and ctx.stats.malformed_retries == 1
    assert ctx.stats.tokens_per_s == 16 / 1.0
    assert len(records) == 4  # every answer, the malformed one too

    calls.clear()  # a fresh run: everything comes from the record cache
    again = _context(jobs, records)
    assert teacher.teach(jobs, again) == [{**r, "cached": True} for r in rows]
    assert calls == [] and again.stats.responses_cached == 4


def test_an_error_while_decoding_is_reported_in_stats_stopped(monkeypatch):
    from slimkit.teachers import local
    from slimkit.teachers.base import TeacherJob

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off")

    monkeypatch.setattr("slimkit.llm.generate.generate", broken)
    teacher = local.LocalTeacher(precision="none", scaffold_steps=False)
    monkeypatch.setattr(teacher, "load", lambda: None)
    monkeypatch.setattr(teacher, "prompt_ids", lambda messages: [1, 2])
    jobs = [TeacherJob(user_index=0, user="0", messages=[{"role": "user", "content": "0"}], history=())]
    ctx = _context(jobs, None)
    rows = teacher.teach(jobs, ctx)
    assert rows[0]["status"] == "failed" and "GPU fell off" in rows[0]["error"]
    assert "RuntimeError: the GPU fell off" in ctx.stats.stopped


def test_an_interrupted_run_resumes_without_decoding_a_cached_answer_again(monkeypatch):
    from slimkit.llm.generate import Completion
    from slimkit.teachers import local
    from slimkit.teachers.base import TeacherJob

    asked: list[list[int]] = []

    def generate_then_ctrl_c(model, tokenizer, prompts, *, on_done, **kwargs):
        asked.append([p[0] for p in prompts])
        for i, prompt in enumerate(prompts):
            if len(asked) == 1 and i == 2:
                raise KeyboardInterrupt  # Ctrl-C after two answers
            on_done(Completion(index=i, text=f"Step 1: {prompt[0]}\nStep 2: a\nStep 3: b",
                               content_tokens=3, new_tokens=4, prompt_tokens=1, stopped=True))
        return {"new_tokens": 4 * len(prompts), "seconds": 0.1}

    monkeypatch.setattr("slimkit.llm.generate.generate", generate_then_ctrl_c)
    teacher = local.LocalTeacher(precision="none", scaffold_steps=False)
    monkeypatch.setattr(teacher, "load", lambda: None)
    monkeypatch.setattr(teacher, "prompt_ids", lambda messages: [int(messages[0]["content"])])
    jobs = [TeacherJob(user_index=u, user=str(u), messages=[{"role": "user", "content": str(u)}],
                       history=()) for u in range(4)]
    records = _Records()
    with pytest.raises(KeyboardInterrupt):
        teacher.teach(jobs, _context(jobs, records))
    assert len(records) == 2
    ctx = _context(jobs, records)
    rows = teacher.teach(jobs, ctx)
    assert asked == [[0, 1, 2, 3], [2, 3]]  # the two finished answers came from the cache
    assert [r["rationale"].split("\n")[0] for r in rows] == [f"Step 1: {u}" for u in range(4)]
    assert [r["cached"] for r in rows] == [True, True, False, False]


def test_constrained_local_teacher_names_only_unseen_catalogue_titles(tmp_path, isolated_cache):
    """A random tiny model under the scaffold: step 3 lists catalogue titles outside the
    user's training items, separated by '; ', nothing else."""
    from helpers.tiny_student import build_tiny_student

    from slimkit.data.rationale_cut import views_of
    from slimkit.llm.scaffold import SCAFFOLD

    model = build_tiny_student(tmp_path / "model")
    spec = validate_spec(tiny_spec(tmp_path / "data", {
        "kind": "local", "model": str(model), "num_users": 6, "max_new_tokens": 90,
        "precision": "none", "constrain_items": True, "no_repeat_ngram_size": 3}))
    pipeline = Pipeline(spec, StageCache(isolated_cache), progress=False)
    rows = read_rationales(pipeline.run("teach").path)
    dataset = pipeline.dataset()
    titles = dataset.item_titles
    named = 0
    for row in rows:
        step3 = row["rationale"].split(SCAFFOLD[2].strip(), 1)[1]
        # The history the rationale was written from (default rationale_cut: before the cut).
        shown = views_of(dataset, spec.prompt).main.train_items(row["user_index"])
        seen = {titles[int(i)] for i in shown}
        for name in (p.strip() for p in step3.split(";") if p.strip()):
            assert name in titles[1:] and name not in seen, row["rationale"]
            named += 1
    assert named >= len(rows)
