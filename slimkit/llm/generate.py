"""Batched decoding with transformers: the one generation path of the student and the
local teacher.

Prompts come in as token ids (built by the caller, so generation reads exactly what
training read) and every finished prompt is handed to ``on_done`` at once, so the caller
can cache each answer on its own and a killed run resumes where it stopped.

* Batches: ``order="length"`` groups prompts of similar length (little padding; the
  student, which decodes every user), ``order="given"`` keeps the caller's order (the
  local teacher: a fresh run must batch exactly like the last one, since the padding of
  a batch changes its numerics in bf16). Every row is padded on the left, so each row's
  next token sits in the last column.
* Workers: ``workers`` threads decode different batches at once, sharing the model
  (each torch op runs on its calling thread when torch has one intra-op thread). On two
  cores two single-threaded workers measured 2.0x one, where two intra-op threads gave
  1.3x. Batches and their numerics do not depend on ``workers``: the outputs are the same.
  Sampling (``temperature`` > 0) reseeds torch's global generator per batch, so it runs
  on one worker, in order, and stays reproducible.
* Ctrl-C: every worker stops after its current decoding step; a batch cut short reports
  nothing, finished prompts have been reported already.
* Stop rule: decoding of a row ends at the first end-of-sequence id (the model's
  generation config and the tokenizer's EOS, both); the answer is what comes before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slimkit.runtime import setup_torch


@dataclass(frozen=True)
class Completion:
    """One finished prompt."""

    index: int  # position in the prompts given
    text: str  # the answer, special tokens skipped (not stripped)
    content_tokens: int  # tokens of the answer (before the stop token)
    new_tokens: int  # tokens decoded, the stop token included
    prompt_tokens: int
    stopped: bool  # ended on a stop token (else it ran out of max_new_tokens)


OnDone = Callable[[Completion], None]
ProcessorFactory = Callable[[int, int], Any]
"""``(rows, prompt width) -> LogitsProcessor`` with fresh per-row state, one per batch."""
RowProcessorFactory = Callable[[Sequence[int], int], Any]
"""``(prompt indices of the batch, prompt width) -> LogitsProcessor``: per-prompt state,
e.g. :func:`slimkit.llm.constraints.constraint_factory` (each row's banned items)."""


def chat_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, strip: bool = False) -> str:
    """The prompt text a model reads: its chat template with the assistant turn opened, or
    (a model without one) the contents joined by blank lines, each ``strip``-ped if asked."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"].strip() if strip else m["content"] for m in messages) + "\n\n"


def step_marker_tokens(tokenizer: Any) -> list[int]:
    """Tokens of the step markers ("Step 1:" ... on a new line or not): every three-step
    answer repeats them, so repetition rules spare them."""
    ids: set[int] = set()
    for number in (1, 2, 3):
        for text in (f"Step {number}:", f"\nStep {number}:", f" Step {number}:"):
            ids.update(int(t) for t in tokenizer.encode(text, add_special_tokens=False))
    return sorted(ids)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first: fail fast on memory)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def given_order_batches(count: int, batch_size: int) -> list[list[int]]:
    """Indices in the caller's order, ``batch_size`` at a time."""
    return [list(range(s, min(s + batch_size, count))) for s in range(0, count, batch_size)]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int):
    """(input_ids (B, T), attention_mask (B, T)) with every prompt right-aligned."""
    torch = setup_torch()
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)  # (B, T)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: the model's generation config's and the tokenizer's."""
    ids = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return sorted(ids)


def cut_at_stop(tokens: Sequence[int], stop: set[int]) -> tuple[list[int], int]:
    """(answer tokens, tokens decoded) of one output row; ends at the first stop id."""
    out: list[int] = []
    for n, tok in enumerate(tokens, start=1):
        if tok in stop:
            return out, n
        out.append(int(tok))
    return out, len(tokens)


def run_summary(prompts: int, new_tokens: int, started: float, backend: str, batch_size: int) -> dict:
    """What one generation run reports: counts, seconds and tokens/s since ``started``."""
    seconds = time.perf_counter() - started
    return {
        "prompts": prompts,
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_s": new_tokens / max(seconds, 1e-9),
        "backend": backend,
        "batch_size": batch_size,
    }


def generation_progress(enabled: bool):
    """The progress bar of a generation run: prompts done and tokens/s."""
    from slimkit.console import progress_bar

    return progress_bar("{task.fields[tps]:.1f} tok/s", enabled=enabled)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    workers: int = 1,
    order: Literal["length", "given"] = "length",
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    repetition_penalty: float | None = None,
    answer_repetition_penalty: float | None = None,
    answer_no_repeat_ngram_size: int | None = None,
    repetition_exempt: Sequence[int] = (),
    answer_prefix: int = 0,
    logits_processor: ProcessorFactory | None = None,
    constraint: RowProcessorFactory | None = None,
    on_done: OnDone | None = None,
    progress: bool = True,
    description: str = "Generating",
) -> dict[str, Any]:
    """Decode ``prompts`` (token ids) in batches; returns counts and tokens/s.

    Greedy unless ``temperature`` > 0 (then sampling with ``top_p``, torch reseeded with
    ``seed`` before each batch when given). ``repetition_penalty`` is transformers' own
    (prompt included); ``answer_repetition_penalty`` and ``answer_no_repeat_ngram_size``
    look at the answer only, ``repetition_exempt`` tokens spared (:mod:`slimkit.llm.repetition`),
    the last ``answer_prefix`` tokens of every prompt counted as answer (a header the
    caller wrote for the model, e.g. the student's step scaffold); ``logits_processor`` then
    ``constraint`` run after them (see :mod:`slimkit.llm.constraints`). ``on_done(Completion)`` is called once per
    finished prompt, from the thread that decoded it, one call at a time. See the module
    docstring for batching, workers and Ctrl-C.
    """
    import queue
    import threading

    from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    torch = setup_torch()
    if not prompts:
        return {"prompts": 0, "new_tokens": 0, "seconds": 0.0, "tokens_per_s": None}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = stop_ids(model, tokenizer)
    stop_set = set(stop)
    device = next(model.parameters()).device
    if order == "length":
        batches = length_sorted_batches([len(p) for p in prompts], batch_size)
    else:
        batches = given_order_batches(len(prompts), batch_size)
    sampling = temperature > 0
    options: dict[str, Any] = {"do_sample": sampling}
    if sampling:
        options.update(temperature=temperature, top_p=top_p)
    if repetition_penalty is not None:
        options["repetition_penalty"] = repetition_penalty
    todo: queue.Queue = queue.Queue()  # batches left for the worker threads
    halt = threading.Event()  # Ctrl-C or a worker's error: every worker stops
    lock = threading.Lock()  # on_done, counters, the bar and the tokenizer: one at a time
    errors: list[BaseException] = []
    new_tokens = 0
    started = time.perf_counter()

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # (B, T) -> (B,) bool
            return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool,
                              device=input_ids.device)

    def decode(batch: list[int]) -> None:
        nonlocal new_tokens
        ids, mask = left_pad([prompts[i] for i in batch], pad_id)  # (B, T)
        extra: dict[str, Any] = {}
        processors = []
        if answer_repetition_penalty or answer_no_repeat_ngram_size:
            from slimkit.llm.repetition import answer_repetition

            processors.append(answer_repetition(ids.shape[1] - answer_prefix, answer_repetition_penalty,
                                                answer_no_repeat_ngram_size, repetition_exempt))
        if logits_processor is not None:
            processors.append(logits_processor(len(batch), ids.shape[1]))
        if constraint is not None:
            processors.append(constraint(batch, ids.shape[1]))
        if processors:
            extra["logits_processor"] = LogitsProcessorList(processors)
        if sampling and seed is not None:
            torch.manual_seed(seed)  # one worker samples (see count below): reproducible
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                use_cache=True,
                pad_token_id=pad_id,
                eos_token_id=stop or None,
                stopping_criteria=StoppingCriteriaList([_Halt()]),
                **options,
                **extra,
            )  # (B, T + new)
        if halt.is_set():
            return  # cut short: nothing of this batch is reported
        generated = out[:, ids.shape[1] :].tolist()
        with lock:
            for row, index in enumerate(batch):
                content, count = cut_at_stop(generated[row], stop_set)
                new_tokens += count
                text = tokenizer.decode(content, skip_special_tokens=True)
                if on_done is not None:
                    on_done(Completion(index=index, text=text, content_tokens=len(content),
                                       new_tokens=count, prompt_tokens=len(prompts[index]),
                                       stopped=len(content) < count))
            elapsed = time.perf_counter() - started
            bar.update(task, advance=len(batch), tps=new_tokens / max(elapsed, 1e-9))

    def work(finished: threading.Event) -> None:
        try:
            while not halt.is_set():
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    decode(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    with lock:
                        errors.append(exc)
                    halt.set()
                    return
        finally:
            finished.set()

    bar = generation_progress(progress)
    with bar:
        task = bar.add_task(description, total=len(prompts), tps=0.0)
        count = 1 if sampling else max(1, min(workers, len(batches)))
        if count == 1:
            for batch in batches:
                decode(batch)
        else:
            for batch in batches:  # an out-of-memory error still comes early
                todo.put(batch)
            # Waiting on events, not Thread.join: a join cut by Ctrl-C can report a live
            # thread as finished, and exiting while a worker is inside torch aborts.
            finished = [threading.Event() for _ in range(count)]
            for n in range(count):
                threading.Thread(target=work, args=(finished[n],), name=f"slimkit-generate-{n}",
                                 daemon=True).start()
            try:
                for event in finished:
                    while not event.wait(0.2):
                        pass
            except KeyboardInterrupt:
                halt.set()  # every worker ends after its current decoding step
                for event in finished:
                    event.wait()
                raise
            if errors:
                raise errors[0]
    summary = run_summary(len(prompts), new_tokens, started, "transformers", batch_size)
    summary["workers"] = count
    return summary
