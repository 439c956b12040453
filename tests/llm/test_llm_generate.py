"""slimkit.llm.generate: the one decoding path of the student and the local teacher."""

from __future__ import annotations

import signal
import threading

import pytest
from helpers.tiny_student import build_tiny_student

HISTORIES = [
    "1. Toy Story (1995); Animation, Comedy",
    "1. Heat (1995); Action, Crime, Thriller\n2. Casino (1995); Drama, Crime",
    "1. Fargo (1996); Crime, Drama, Thriller\n2. Scream (1996); Horror\n3. Evita (1996); Drama",
    "1. Babe (1995); Comedy",
    "1. Twister (1996); Action\n2. Ransom (1996); Drama, Thriller",
    "1. Emma (1996); Drama, Romance\n2. Clueless (1995); Comedy, Romance\n3. Sabrina (1995); Comedy",
]


def _prompts(tokenizer, count: int = len(HISTORIES)) -> list[list[int]]:
    """Chat prompts of different lengths, as token ids."""
    out = []
    for history in HISTORIES[:count]:
        messages = [{"role": "user", "content": f"A user watched:\n{history}\nDescribe them."}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return out


def _run(model, tokenizer, prompts, **options) -> dict[int, tuple[str, int]]:
    from slimkit.llm.generate import generate

    out: dict[int, tuple[str, int]] = {}
    summary = generate(model, tokenizer, prompts, progress=False,
                       on_done=lambda done: out.update({done.index: (done.text, done.new_tokens)}),
                       **options)
    assert summary["prompts"] == len(prompts) == len(out)
    assert summary["new_tokens"] == sum(n for _, n in out.values())
    return out


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct: (float32 model, its bf16-or-float32 decoding copy, tokenizer)."""
    from slimkit.llm.loading import load_causal_lm
    from slimkit.llm.precision import generation_copy, resolve_precision

    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    return model, generation_copy(model, resolve_precision("auto", "cpu", "precision")), tokenizer


@pytest.mark.slow
def test_two_workers_give_the_same_answers_as_one(smollm2):
    """The default decoding copy (bf16 where the CPU has it: padding changes its numerics),
    the teacher's settings: given order, repetition penalty."""
    _, model, tokenizer = smollm2
    prompts = _prompts(tokenizer)
    runs = [_run(model, tokenizer, prompts, max_new_tokens=16, batch_size=2, workers=workers,
                 order="given", repetition_penalty=1.2) for workers in (1, 2)]
    assert runs[0] == runs[1]
    assert all(text for text, _ in runs[0].values())


@pytest.mark.slow
def test_given_order_and_length_sorted_batches_give_the_same_texts(smollm2):
    """In float32, left padding leaves greedy answers alone: only the batches differ."""
    model, _, tokenizer = smollm2
    prompts = _prompts(tokenizer)
    given = _run(model, tokenizer, prompts, max_new_tokens=12, batch_size=3, order="given")
    by_length = _run(model, tokenizer, prompts, max_new_tokens=12, batch_size=3, order="length")
    assert given == by_length


@pytest.mark.slow
def test_sampling_is_reproducible_with_a_seed(smollm2):
    _, model, tokenizer = smollm2
    prompts = _prompts(tokenizer, 4)
    runs = [_run(model, tokenizer, prompts, max_new_tokens=12, batch_size=2, workers=2,
                 temperature=0.9, top_p=0.95, seed=3) for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from slimkit.llm.loading import load_causal_lm

    folder = build_tiny_student(tmp_path_factory.mktemp("tiny-generate") / "model")
    return load_causal_lm(folder)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_run_and_reports_only_finished_prompts(tiny, workers):
    from slimkit.llm.generate import generate

    model, tokenizer = tiny
    prompts = [list(tokenizer(f"1. Movie {i}; Action")["input_ids"]) for i in range(40)]
    full = _run(model, tokenizer, prompts, max_new_tokens=8, batch_size=1, workers=workers)
    reported: dict[int, tuple[str, int]] = {}
    main = threading.main_thread().ident

    def on_done(done) -> None:
        reported[done.index] = (done.text, done.new_tokens)
        if len(reported) == 3:
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, delivered to the main thread

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # also in a background run
    try:
        with pytest.raises(KeyboardInterrupt):
            generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=1, workers=workers,
                     on_done=on_done, progress=False)
            threading.Event().wait(5)  # the signal arrives between two bytecodes at the latest
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 3 <= len(reported) < len(prompts)
    assert all(reported[i] == full[i] for i in reported)  # each one whole, none cut short
    for thread in [t for t in threading.enumerate() if t.name.startswith("slimkit-generate")]:
        thread.join(timeout=5)  # done with torch: only the return from its function is left
        assert not thread.is_alive()
