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
        result = run_teach(spec, cache, progress=False)
        assert result.summary["done"] == 6
        rationales[workers] = {r["user_index"]: r["rationale"] for r in read_rationales(result.path)}
    assert rationales[1] == rationales[2]


def test_batches_are_the_next_requests_in_arrival_order_whatever_the_timing():
    """Two decoding workers, requests trickling in: every batch is full and in order."""
    import asyncio
    import random
    import threading
    import time

    from slimkit.teachers.local import _Batcher

    batches: list[list[int]] = []
    lock = threading.Lock()

    class Generator:
        stop = threading.Event()

        def answer(self, batch, scaffold):
            with lock:
                batches.append([messages[0] for messages, _ in batch])
            time.sleep(random.uniform(0.0, 0.004))  # decoding: faster than the client, varying
            return [{"text": str(messages[0])} for messages, _ in batch]

    class Handler:
        batch_size = 3
        scaffold = False

        def workers_for(self, params):
            return 2

        def generator(self, name):
            return Generator()

    async def main():
        batcher = _Batcher(Handler(), asyncio.get_running_loop())
        gate = asyncio.Semaphore(9)  # like the teacher's concurrency: (workers + 1) * batch

        async def ask(i: int):
            async with gate:  # waiters get in first come, first served
                time.sleep(0.004)  # noqa: ASYNC251 - litellm's own blocking work, on purpose
                return await batcher.submit("m", [i], {"temperature": 0.0})

        # Arrival order is fixed (i-th request after the (i-1)-th), timing is not.
        tasks = []
        for i in range(20):
            tasks.append(asyncio.create_task(ask(i)))
            await asyncio.sleep(random.uniform(0.0, 0.004))
        return await asyncio.gather(*tasks)

    async def numbered():
        """Requests numbered as sent but arriving shuffled (litellm's own awaits)."""
        batcher = _Batcher(Handler(), asyncio.get_running_loop())
        gate = asyncio.Semaphore(9)
        sent = iter(range(20))

        async def ask(i: int):
            async with gate:
                seq = next(sent)
                await asyncio.sleep(random.uniform(0.0, 0.01))  # reordered on the way
                return await batcher.submit("m", [seq], {"temperature": 0.0}, seq)

        return await asyncio.gather(*(ask(i) for i in range(20)))

    random.seed(0)
    expected = [list(range(s, min(s + 3, 20))) for s in range(0, 20, 3)]
    answers = asyncio.run(main())
    assert [a["text"] for a in answers] == [str(i) for i in range(20)]
    assert sorted(batches) == expected
    batches.clear()
    answers = asyncio.run(numbered())
    assert sorted(int(a["text"]) for a in answers) == list(range(20))
    assert sorted(batches) == expected  # each batch in order, whatever the arrival


def test_a_number_that_never_comes_holds_the_batcher_up_only_for_linger():
    import asyncio
    import threading

    from slimkit.teachers.local import _Batcher

    batches: list[list[int]] = []

    class Generator:
        stop = threading.Event()

        def answer(self, batch, scaffold):
            batches.append([messages[0] for messages, _ in batch])
            return [{"text": str(messages[0])} for messages, _ in batch]

    class Handler:
        batch_size = 4
        scaffold = False

        def workers_for(self, params):
            return 1

        def generator(self, name):
            return Generator()

    async def main():
        batcher = _Batcher(Handler(), asyncio.get_running_loop())
        batcher.linger = 0.05
        # Number 0 was handed out but its request never arrives (it failed on the way).
        return await asyncio.gather(*(batcher.submit("m", [n], {}, n) for n in (3, 1, 2)))

    answers = asyncio.run(main())
    assert [a["text"] for a in answers] == ["3", "1", "2"]
    assert batches == [[1, 2, 3]]
