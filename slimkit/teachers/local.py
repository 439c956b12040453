"""The ``local`` teacher: an in-process LLM behind litellm's custom-provider mechanism.

The model (default SmolLM2-135M-Instruct, see :mod:`slimkit.models`) is registered with
litellm as ``local/<name>`` through ``CustomLLM`` + ``litellm.custom_provider_map``, so
the offline teacher runs through exactly the code path of hosted teachers: the same
record cache, retries of malformed answers, progress and summary.

Concurrent ``acompletion`` calls are gathered into batches of ``batch_size`` prompts and
decoded together on a worker thread (left padding, greedy unless ``temperature`` > 0);
batching is what makes a CPU fast enough here, with one decoding thread per free core
(``workers``). ``quantize: auto`` decodes in bfloat16 with a float32 output head on CPUs
that multiply bf16 natively (2x float32, same format share); ``int8`` (dynamic int8 linear
layers) is ~1.7x but SmolLM2-135M's answers drift off topic with it.

``scaffold_steps`` (default on): tiny models do not follow a three-step format on their
own (SmolLM2-135M copies the instructions back). The handler then writes the step
headers itself, in the same decoding pass (a logits processor forces the header tokens
when the model ends a line), and the model writes each step's content, one line each:
"Step 1: The user", "Step 2: Recommended categories or brands:", "Step 3: Recommended
items:". Turn it off for a local model that follows instructions.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Sequence
from typing import Any

from slimkit.teachers.base import TeacherJob
from slimkit.teachers.litellm_teacher import LiteLLMTeacher, import_litellm

PROVIDER = "local"
SCAFFOLD = (
    "Step 1: The user",
    "\nStep 2: Recommended categories or brands:",
    "\nStep 3: Recommended items:",
)

_SEQUENCE: contextvars.ContextVar[int | None] = contextvars.ContextVar("slimkit_local_seq", default=None)
"""The number the local teacher gave the request being sent, read by the handler (the
same asyncio task, under litellm) to batch requests in the order they were sent."""

_HANDLERS: dict[str, Any] = {}
_LOCK = threading.Lock()


class LocalGenerator:
    """A causal LM that turns chat messages into answers, in batches (thread-safe)."""

    def __init__(self, name: str, quantize: str = "auto"):
        self.name = name
        self.quantize = quantize
        self._generation_model = None
        self.model = None
        self.tokenizer = None
        self._newline_ids = None
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.RLock()  # shared by the decoding threads
        self.stop = threading.Event()  # set on Ctrl-C: the batch being decoded ends now
        self.generated_tokens = 0
        self._busy_seconds = 0.0  # wall time with at least one batch decoding
        self._busy_since = 0.0
        self._active = 0  # batches decoding now (one per worker)
        self._count_lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self.model is not None:
                return
            from slimkit.models import load_causal_lm

            self.model, self.tokenizer = load_causal_lm(self.name)
            self.tokenizer.padding_side = "left"

    def resolved_quantize(self) -> str:
        """``bf16``, ``int8`` or ``none``; see :func:`slimkit.models.resolve_precision`."""
        from slimkit.models import resolve_precision

        device = str(getattr(self.model, "device", "cpu")) if self.model is not None else "cpu"
        return resolve_precision(self.quantize, device.split(":")[0], "teacher.quantize")

    def generation_model(self):
        """The model decoding runs on: a bf16 copy with a float32 output head or an int8
        copy on CPU when asked (or by ``auto``), else the loaded model."""
        if self._generation_model is None:
            from slimkit.models import generation_copy

            self._generation_model = generation_copy(self.model, self.resolved_quantize())
        return self._generation_model

    @property
    def generate_seconds(self) -> float:
        """Wall-clock seconds during which at least one batch was decoding."""
        with self._count_lock:
            running = time.perf_counter() - self._busy_since if self._active else 0.0
            return self._busy_seconds + running

    def _prompt(self, messages: Sequence[dict[str, str]]) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def _newline_mask(self):
        """``(V,)`` bool: tokens whose text contains a line break (built once)."""
        torch = __import__("torch")
        if self._newline_ids is None:
            vocab = self.tokenizer.get_vocab()
            mask = torch.zeros(max(max(vocab.values()) + 1, self.model.config.vocab_size), dtype=torch.bool)
            for token, index in vocab.items():
                if "\n" in self.tokenizer.convert_tokens_to_string([token]):
                    mask[index] = True
            self._newline_ids = mask
        return self._newline_ids

    def _scaffold(self, batch: int, start: int, per_step: int):
        """A logits processor writing steps 2 and 3's headers itself (one decoding pass).

        Per sequence: the model writes step k's content on one line; when it ends the line
        (or spends ``per_step`` tokens) the header of step k + 1 is forced token by token;
        after step 3's line, end of sequence. Line breaks and EOS are banned until a step
        has content. The prompt already ends with step 1's header.
        """
        from collections import deque

        from transformers import LogitsProcessor

        tok = self.tokenizer
        newline = self._newline_mask()
        newline_id = tok.encode("\n", add_special_tokens=False)[-1]
        headers = [tok.encode(h.lstrip("\n"), add_special_tokens=False) for h in SCAFFOLD[1:]]
        eos = tok.eos_token_id

        class Scaffold(LogitsProcessor):
            def __init__(self):
                self.step = [0] * batch  # 0, 1, 2: the step being written
                self.count = [0] * batch  # free tokens written in this step
                self.queue = [deque() for _ in range(batch)]
                self.forced = [False] * batch  # the last token was forced
                self.done = [False] * batch

            def __call__(self, input_ids, scores):  # (B, T), (B, V)
                generated = input_ids.shape[1] > start
                vocab = scores.shape[1]
                for b in range(batch):
                    if generated and not self.done[b] and not self.forced[b]:
                        last = int(input_ids[b, -1])
                        self.count[b] += 1
                        ended = last < newline.shape[0] and bool(newline[last])
                        if ended or self.count[b] >= per_step:
                            if not ended:
                                self.queue[b].append(newline_id)
                            if self.step[b] < 2:
                                self.queue[b].extend(headers[self.step[b]])
                                self.step[b] += 1
                                self.count[b] = 0
                            else:
                                self.queue[b].append(eos)
                                self.done[b] = True
                    if self.queue[b]:
                        token = self.queue[b].popleft()
                        scores[b, :] = float("-inf")
                        scores[b, token] = 0.0
                        self.forced[b] = True
                    else:
                        self.forced[b] = False
                        if self.count[b] == 0 or self.step[b] < 2:
                            scores[b, eos] = float("-inf")
                        if self.count[b] == 0:
                            scores[b, newline[:vocab].nonzero().squeeze(1)] = float("-inf")
                return scores

        return Scaffold()

    def _generate(self, texts: list[str], max_new_tokens: int, temperature: float, seed: int | None,
                  scaffold: bool) -> tuple[list[str], list[int], list[int], list[str]]:
        """Decode a batch; returns texts, prompt tokens, new tokens, finish reasons."""
        torch = __import__("torch")
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        stop = self.stop

        class Interrupted(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        tok = self.tokenizer
        # A fast tokenizer sets its padding on the shared Rust object at every call, so
        # decoding threads take turns with it (tokenizing is a sliver of a batch's time).
        with self._tokenizer_lock:
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        start = enc["input_ids"].shape[1]
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id,
                                  "repetition_penalty": 1.2}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            kwargs.update(do_sample=False)
        limit = max_new_tokens
        if scaffold:
            per_step = max(8, max_new_tokens // len(SCAFFOLD))
            with self._tokenizer_lock:
                processor = self._scaffold(len(texts), start, per_step)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
            limit = max_new_tokens + 24  # room for the forced headers
        kwargs["max_new_tokens"] = limit
        kwargs["stopping_criteria"] = StoppingCriteriaList([Interrupted()])
        with torch.inference_mode():
            out = self.generation_model().generate(**enc, **kwargs)
        new = out[:, start:]  # (B, T)
        eos = {tok.eos_token_id, tok.pad_token_id}
        outs, counts, reasons = [], [], []
        for row in new.tolist():
            ids = []
            for token in row:
                if token in eos:
                    break
                ids.append(token)
            with self._tokenizer_lock:
                outs.append(tok.decode(ids, skip_special_tokens=True))
            counts.append(len(ids))
            reasons.append("length" if len(ids) >= limit else "stop")
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        return outs, prompt_counts, counts, reasons

    def answer(self, batch: list[tuple[list[dict[str, str]], dict[str, Any]]], scaffold: bool) -> list[dict[str, Any]]:
        """Answers for (messages, params) pairs decoded together (params of the first used)."""
        self.load()
        params = batch[0][1]
        max_tokens = int(params.get("max_tokens") or 160)
        temperature = float(params.get("temperature") or 0.0)
        seed = params.get("seed")
        with self._tokenizer_lock:
            prompts = [self._prompt(messages) for messages, _ in batch]
        if scaffold:
            prompts = [p + SCAFFOLD[0] for p in prompts]
        with self._count_lock:
            if self._active == 0:
                self._busy_since = time.perf_counter()
            self._active += 1
        try:
            texts, prompt_tokens, new_tokens, reasons = self._generate(
                prompts, max_tokens, temperature, seed, scaffold
            )
        finally:
            with self._count_lock:
                self._active -= 1
                if self._active == 0:
                    self._busy_seconds += time.perf_counter() - self._busy_since
        with self._count_lock:
            self.generated_tokens += sum(new_tokens)
        if scaffold:
            texts = [SCAFFOLD[0] + t for t in texts]
        return [
            {"text": t, "prompt_tokens": int(p), "completion_tokens": int(n), "finish_reason": r}
            for t, p, n, r in zip(texts, prompt_tokens, new_tokens, reasons)
        ]


def _handler_class():
    litellm = import_litellm()
    from litellm import CustomLLM, ModelResponse

    class LocalHandler(CustomLLM):
        """Serves ``local/<name>`` from an in-process :class:`LocalGenerator`."""

        def __init__(self):
            super().__init__()
            self.generators: dict[str, LocalGenerator] = {}
            self.batch_size = 8
            self.scaffold = True
            self.quantize = "auto"
            self.workers = 1
            self._queues: dict[int, _Batcher] = {}

        def workers_for(self, params: dict[str, Any]) -> int:
            """Batches decoded at once: sampling reseeds torch's global generator per
            batch, so it stays on one worker (reproducible); greedy uses them all."""
            return 1 if float(params.get("temperature") or 0.0) > 0 else self.workers

        def generator(self, name: str) -> LocalGenerator:
            with _LOCK:
                key = f"{name}|{self.quantize}"
                if key not in self.generators:
                    self.generators[key] = LocalGenerator(name, self.quantize)
            return self.generators[key]

        def _response(self, model: str, answer: dict[str, Any]):
            return ModelResponse(
                model=f"{PROVIDER}/{model}",
                choices=[{"index": 0, "finish_reason": answer["finish_reason"],
                          "message": {"role": "assistant", "content": answer["text"]}}],
                usage={"prompt_tokens": answer["prompt_tokens"],
                       "completion_tokens": answer["completion_tokens"],
                       "total_tokens": answer["prompt_tokens"] + answer["completion_tokens"]},
            )

        def completion(self, model, messages, api_base, custom_prompt_dict, model_response,
                       print_verbose, encoding, api_key, logging_obj, optional_params, *args, **kwargs):
            answer = self.generator(model).answer([(messages, dict(optional_params))], self.scaffold)[0]
            return self._response(model, answer)

        async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                              print_verbose, encoding, api_key, logging_obj, optional_params, *args, **kwargs):
            loop = asyncio.get_running_loop()
            key = id(loop)
            batcher = self._queues.get(key)
            if batcher is None or batcher.loop is not loop:
                batcher = self._queues[key] = _Batcher(self, loop)
            answer = await batcher.submit(model, messages, dict(optional_params), _SEQUENCE.get())
            return self._response(model, answer)

    return litellm, LocalHandler


class _Batcher:
    """Gathers concurrent requests into batches decoded on worker threads.

    Batches must not depend on timing: they set the padding, hence the numerics, and a
    fresh run should reproduce the last one's answers. The local teacher numbers its
    requests as it sends them (``_SEQUENCE``); litellm may hand them over in another
    order, so a batch is the next ``batch_size`` numbers, and a worker waits until they
    are all here. Requests without a number go in arrival order. A partial batch goes
    when the next request has different parameters, or once nothing has arrived for
    ``linger`` seconds (the end of the run, or a number that will never come).
    """

    linger = 0.5

    def __init__(self, handler, loop):
        self.handler = handler
        self.loop = loop
        # (sequence or None, model, messages, params, future)
        self.pending: list[tuple[int | None, str, list, dict, asyncio.Future]] = []
        self.running = 0  # drain tasks alive: each decodes one batch at a time
        self.last_arrival = 0.0
        self.next_seq = 0  # the number the next batch starts at (LocalTeacher.prepare resets)

    async def submit(self, model: str, messages: list, params: dict, seq: int | None = None) -> dict[str, Any]:
        future = self.loop.create_future()
        self.pending.append((seq, model, messages, params, future))
        self.last_arrival = self.loop.time()
        if self.running < self.handler.workers_for(params):
            self.running += 1
            self.loop.create_task(self._drain())
        return await future

    def _run(self, *, skip_gaps: bool = False) -> tuple[list, bool]:
        """(the batch at the head of the queue, whether it is complete). ``skip_gaps``
        takes the numbers that are here even if one in between never came."""
        numbered = sorted((p for p in self.pending if p[0] is not None), key=lambda p: p[0])
        queue = numbered + [p for p in self.pending if p[0] is None]
        head = queue[0]
        start = head[0] if skip_gaps and head[0] is not None else self.next_seq
        run: list = []
        for item in queue:
            if len(run) == self.handler.batch_size:
                break
            if (item[1], item[3]) != (head[1], head[3]):
                return run, bool(run)  # the next request differs: this batch is done
            if item[0] is not None and item[0] != start + len(run) and not skip_gaps:
                break  # a number in between has not arrived yet
            run.append(item)
        return run, len(run) == self.handler.batch_size

    async def _next_batch(self) -> list | None:
        """The next batch (taken out of ``pending``), or None when nothing is left."""
        while self.pending:
            run, complete = self._run()
            quiet = self.loop.time() - self.last_arrival
            if complete or quiet >= self.linger:
                if not run:  # the awaited number never came: go on from what is here
                    run, _ = self._run(skip_gaps=True)
                for item in run:
                    self.pending.remove(item)
                numbers = [item[0] for item in run if item[0] is not None]
                if numbers:
                    self.next_seq = max(numbers) + 1
                return run
            await asyncio.sleep(0.005)
        return None

    async def _drain(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                first = batch[0]
                live = [item for item in batch if not item[4].cancelled()]
                if not live:
                    continue
                generator = self.handler.generator(first[1])
                generator.stop.clear()
                try:
                    answers = await asyncio.to_thread(
                        generator.answer, [(m, p) for _, _, m, p, _ in live], self.handler.scaffold
                    )
                except asyncio.CancelledError:
                    generator.stop.set()  # Ctrl-C: cut the batch short, nothing of it is kept
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for *_, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), answer in zip(live, answers):
                    if not future.done():
                        future.set_result(answer)
                await asyncio.sleep(0)  # let callers enqueue follow-ups (malformed retries)
        finally:
            self.running -= 1


def register_local_provider(batch_size: int = 8, scaffold: bool = True, quantize: str = "auto",
                            workers: int = 1):
    """Register (once) the ``local/<name>`` provider with litellm; returns its handler."""
    with _LOCK:
        handler = _HANDLERS.get(PROVIDER)
    if handler is None:
        litellm, handler_class = _handler_class()
        handler = handler_class()
        with _LOCK:
            _HANDLERS[PROVIDER] = handler
        providers = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != PROVIDER]
        litellm.custom_provider_map = providers + [{"provider": PROVIDER, "custom_handler": handler}]
        # litellm reads the map into its provider list when it is set through this helper.
        setup = getattr(getattr(litellm, "utils", None), "custom_llm_setup", None)
        if setup is not None:
            setup()
    handler.batch_size = batch_size
    handler.scaffold = scaffold
    handler.quantize = quantize
    handler.workers = max(1, workers)
    return handler


class LocalTeacher(LiteLLMTeacher):
    """A local causal LM served through litellm as ``local/<name>``; offline, free."""

    def __init__(
        self,
        *,
        model: str = "smollm2-135m-instruct",
        max_new_tokens: int = 96,
        batch_size: int = 8,
        temperature: float = 0.0,
        scaffold_steps: bool = True,
        quantize: str = "auto",
        workers: int | None = None,
        max_malformed_retries: int = 1,
        num_users: int | None = None,
        seed: int | None = None,
    ):
        if workers is None:
            from slimkit.runtime import decoding_workers

            workers = decoding_workers()
        super().__init__(
            model=f"{PROVIDER}/{model}",
            temperature=temperature,
            max_tokens=max_new_tokens,
            timeout=24 * 3600.0,
            concurrency=(workers + 1) * batch_size,  # a batch per worker, the next one queued
            max_retries=0,
            max_malformed_retries=max_malformed_retries,
            num_users=num_users,
            seed=seed,
        )
        self.local_name = model
        self.batch_size = batch_size
        self.scaffold_steps = scaffold_steps
        self.quantize = quantize
        self.workers = workers
        self._sent = 0  # requests numbered so far (see _complete)
        self.handler = None

    def sampling(self, attempt: int) -> dict[str, Any]:
        params = super().sampling(attempt)
        # Both change the answer, so both are part of the cache key.
        params["scaffold"] = self.scaffold_steps
        # auto is resolved: the same setting decodes differently on different CPUs.
        from slimkit.models import resolve_precision

        params["quantize"] = resolve_precision(self.quantize, "cpu", "teacher.quantize")
        return params

    async def _complete(self, litellm, messages, api_params):
        # Number the request as it is sent (before any await: the order is the jobs'
        # order), so the handler batches in that order whatever litellm's timing.
        token = _SEQUENCE.set(self._sent)
        self._sent += 1
        try:
            return await super()._complete(litellm, messages, api_params)
        finally:
            _SEQUENCE.reset(token)

    def prepare(self) -> None:
        self._sent = 0
        self.handler = register_local_provider(self.batch_size, self.scaffold_steps, self.quantize,
                                               self.workers)

    def preflight(self, jobs: Sequence[TeacherJob]) -> None:
        """Load the model now: a missing or unloadable model is reported before any work."""
        self.handler.generator(self.local_name).load()

    def cost_of(self, litellm, response) -> float | None:
        return 0.0  # in-process

    def tokens_per_second(self) -> float | None:
        """Generated tokens per second of decoding so far (None before any decoding)."""
        if self.handler is None:
            return None
        generator = self.handler.generator(self.local_name)
        if not generator.generate_seconds:
            return None
        return generator.generated_tokens / generator.generate_seconds
