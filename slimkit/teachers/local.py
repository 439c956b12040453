"""The ``local`` teacher: an in-process LLM behind litellm's custom-provider mechanism.

The model (default SmolLM2-135M-Instruct, see :mod:`slimkit.models`) is registered with
litellm as ``local/<name>`` through ``CustomLLM`` + ``litellm.custom_provider_map``, so
the offline teacher runs through exactly the code path of hosted teachers: the same
record cache, retries of malformed answers, progress and summary.

Concurrent ``acompletion`` calls are gathered into batches of ``batch_size`` prompts and
decoded together on a worker thread (left padding, greedy unless ``temperature`` > 0);
batching is what makes a CPU fast enough here (about 3-4x the tokens/s of batch 1).

``scaffold_steps`` (default on): tiny models do not follow a three-step format on their
own (SmolLM2-135M copies the instructions back). The handler then writes the step
headers itself and lets the model write each step's content, one line each:
"Step 1: The user", "Step 2: Recommended categories or brands:", "Step 3: Recommended
items:". Turn it off for a local model that follows instructions.
"""

from __future__ import annotations

import asyncio
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

_HANDLERS: dict[str, Any] = {}
_LOCK = threading.Lock()


class LocalGenerator:
    """A causal LM that turns chat messages into answers, in batches (thread-safe)."""

    def __init__(self, name: str):
        self.name = name
        self.model = None
        self.tokenizer = None
        self._newline_ids = None
        self._lock = threading.Lock()
        self.generated_tokens = 0
        self.generate_seconds = 0.0

    def load(self) -> None:
        with self._lock:
            if self.model is not None:
                return
            from slimkit.models import load_causal_lm

            self.model, self.tokenizer = load_causal_lm(self.name)
            self.tokenizer.padding_side = "left"

    def _prompt(self, messages: Sequence[dict[str, str]]) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def _newline_stopper(self):
        """Per-sequence stop once a line is complete (cheap: one lookup per step)."""
        torch = __import__("torch")
        from transformers import StoppingCriteria

        if self._newline_ids is None:
            vocab = self.tokenizer.get_vocab()
            mask = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
            for token, index in vocab.items():
                text = self.tokenizer.convert_tokens_to_string([token])
                if "\n" in text:
                    mask[index] = True
            self._newline_ids = mask

        mask = self._newline_ids

        class StopAtNewline(StoppingCriteria):
            def __init__(self, start: int):
                self.start = start

            def __call__(self, input_ids, scores, **kwargs):
                if input_ids.shape[1] <= self.start:
                    return torch.zeros(input_ids.shape[0], dtype=torch.bool)
                last = input_ids[:, -1].clamp(max=mask.shape[0] - 1)  # (B,)
                return mask[last]

        return StopAtNewline

    def _generate(self, texts: list[str], max_new_tokens: int, temperature: float, seed: int | None,
                  stop_at_newline: bool) -> tuple[list[str], list[int], list[int], list[str]]:
        """Decode a batch; returns texts, prompt tokens, new tokens, finish reasons."""
        torch = __import__("torch")
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
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
        if stop_at_newline:
            kwargs["stopping_criteria"] = StoppingCriteriaList([self._newline_stopper()(start)])
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, start:]  # (B, T)
        eos = {tok.eos_token_id, tok.pad_token_id}
        outs, counts, reasons = [], [], []
        for row in new.tolist():
            ids = []
            for token in row:
                if token in eos:
                    break
                ids.append(token)
            outs.append(tok.decode(ids, skip_special_tokens=True))
            counts.append(len(ids))
            reasons.append("length" if len(ids) >= max_new_tokens else "stop")
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        return outs, prompt_counts, counts, reasons

    def answer(self, batch: list[tuple[list[dict[str, str]], dict[str, Any]]], scaffold: bool) -> list[dict[str, Any]]:
        """Answers for (messages, params) pairs decoded together (params of the first used)."""
        self.load()
        params = batch[0][1]
        max_tokens = int(params.get("max_tokens") or 160)
        temperature = float(params.get("temperature") or 0.0)
        seed = params.get("seed")
        prompts = [self._prompt(messages) for messages, _ in batch]
        start = time.perf_counter()
        if not scaffold:
            texts, prompt_tokens, new_tokens, reasons = self._generate(prompts, max_tokens, temperature, seed, False)
        else:
            answers = [""] * len(batch)
            prompt_tokens = None
            new_tokens = [0] * len(batch)
            per_step = max(8, max_tokens // len(SCAFFOLD))
            for header in SCAFFOLD:
                answers = [a + header for a in answers]
                parts, counted, added, reasons = self._generate(
                    [p + a for p, a in zip(prompts, answers)], per_step, temperature, seed, True
                )
                if prompt_tokens is None:
                    prompt_tokens = counted
                answers = [a + part.split("\n")[0].rstrip() for a, part in zip(answers, parts)]
                new_tokens = [n + k for n, k in zip(new_tokens, added)]
            texts = answers
        self.generate_seconds += time.perf_counter() - start
        self.generated_tokens += sum(new_tokens)
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
            self._queues: dict[int, _Batcher] = {}

        def generator(self, name: str) -> LocalGenerator:
            with _LOCK:
                if name not in self.generators:
                    self.generators[name] = LocalGenerator(name)
            return self.generators[name]

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
            answer = await batcher.submit(model, messages, dict(optional_params))
            return self._response(model, answer)

    return litellm, LocalHandler


class _Batcher:
    """Gathers concurrent requests into batches decoded on a worker thread."""

    def __init__(self, handler, loop):
        self.handler = handler
        self.loop = loop
        self.pending: list[tuple[str, list, dict, asyncio.Future]] = []
        self.running = False

    async def submit(self, model: str, messages: list, params: dict) -> dict[str, Any]:
        future = self.loop.create_future()
        self.pending.append((model, messages, params, future))
        if not self.running:
            self.running = True
            self.loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0.02)  # let the other concurrent requests arrive
            while self.pending:
                first = self.pending[0]
                same = [p for p in self.pending if p[0] == first[0] and p[2] == first[2]]
                batch = same[: self.handler.batch_size]
                for item in batch:
                    self.pending.remove(item)
                live = [item for item in batch if not item[3].cancelled()]
                if not live:
                    continue
                generator = self.handler.generator(first[0])
                try:
                    answers = await asyncio.to_thread(
                        generator.answer, [(m, p) for _, m, p, _ in live], self.handler.scaffold
                    )
                except Exception as exc:  # handed to every waiting request
                    for *_, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), answer in zip(live, answers):
                    if not future.done():
                        future.set_result(answer)
                await asyncio.sleep(0)  # let callers enqueue follow-ups (malformed retries)
        finally:
            self.running = False


def register_local_provider(batch_size: int = 8, scaffold: bool = True):
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
        max_malformed_retries: int = 1,
        num_users: int | None = None,
        seed: int | None = None,
    ):
        super().__init__(
            model=f"{PROVIDER}/{model}",
            temperature=temperature,
            max_tokens=max_new_tokens,
            timeout=24 * 3600.0,
            concurrency=2 * batch_size,  # one batch decoding, the next one queued
            max_retries=0,
            max_malformed_retries=max_malformed_retries,
            num_users=num_users,
            seed=seed,
        )
        self.local_name = model
        self.batch_size = batch_size
        self.scaffold_steps = scaffold_steps
        self.handler = None

    def sampling(self, attempt: int) -> dict[str, Any]:
        params = super().sampling(attempt)
        params["scaffold"] = self.scaffold_steps  # changes the answer, so part of the key
        return params

    def prepare(self) -> None:
        self.handler = register_local_provider(self.batch_size, self.scaffold_steps)

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
