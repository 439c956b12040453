"""The ``local`` teacher: an in-process causal LM (default SmolLM2-135M-Instruct), offline.

Why it calls the model directly instead of going through litellm: litellm serves an
in-process model only through a ``CustomLLM`` handler that answers one request at a
time, while a CPU is fast enough only when prompts are decoded in batches. Pushing
batches through it took a handler, a batcher that regrouped concurrent requests, and a
request-numbering context variable so that batches (hence bf16 numerics) did not depend
on asyncio timing: three moving parts for what one call does here. The teacher hands
every uncached prompt to :func:`slimkit.llm.generate.generate` (the student's generation
path too) in the jobs' order, and shares with the ``litellm`` teacher what is the same
(:class:`~slimkit.teachers.chat.ChatTeacher`): the record cache (one answer per request:
an interrupted run resumes and never decodes a cached answer again), malformed-answer
retries, rows and progress.

Prompts are decoded ``batch_size`` at a time, left padded, greedy unless
``temperature`` > 0, with one decoding thread per free core (``workers``).
``precision: auto`` decodes in bfloat16 with a float32 output head on CPUs that
multiply bf16 natively (2x float32, same format share); ``int8`` (dynamic int8 linear
layers) is ~1.7x but SmolLM2-135M's answers drift off topic with it.

``scaffold_steps`` (default on): tiny models do not follow a three-step format on their
own, so the teacher writes the step headers itself in the same decoding pass
(:mod:`slimkit.llm.scaffold`) and the model fills each step, one line each. Turn it off
for a local model that follows instructions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from slimkit.teachers.base import TeachContext, TeacherJob, make_row
from slimkit.teachers.chat import ChatTeacher

PROVIDER = "local"
REPETITION_PENALTY = 1.2
"""Tiny models loop without it."""
TOP_P = 0.95
"""Nucleus sampling when ``temperature`` > 0 (malformed-answer retries)."""


class LocalTeacher(ChatTeacher):
    """An in-process causal LM as teacher; offline, free (see the module docstring)."""

    def __init__(
        self,
        *,
        model: str = "smollm2-135m-instruct",
        max_new_tokens: int = 96,
        batch_size: int = 8,
        temperature: float = 0.0,
        scaffold_steps: bool = True,
        precision: str = "auto",
        workers: int | None = None,
        max_malformed_retries: int = 1,
        num_users: int | None = None,  # used by the stage (sampling), not here
        seed: int | None = None,
        repetition_penalty: float = REPETITION_PENALTY,
        no_repeat_ngram_size: int | None = None,
        constrain_items: bool = False,
        constrain_max_items: int = 3,
        constrain_candidates: int | None = None,
    ):
        super().__init__(temperature=temperature, max_tokens=max_new_tokens,
                         max_malformed_retries=max_malformed_retries)
        if workers is None:
            from slimkit.runtime import decoding_workers

            workers = decoding_workers()
        self.local_name = model
        self.batch_size = batch_size
        self.scaffold_steps = scaffold_steps
        self.precision = precision
        self.workers = max(1, workers)
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.constrain_items = constrain_items
        self.constrain_max_items = constrain_max_items
        self.constrain_candidates = constrain_candidates
        self._title_trie = None  # built on the first constrained round
        self.model = None  # the loaded model, its tokenizer and the decoding copy
        self.tokenizer = None
        self._decoding_model = None
        self._scaffold = None

    @property
    def label(self) -> str:
        return f"{PROVIDER}/{self.local_name}"

    @property
    def device(self) -> str:
        """CPU, or the GPU for a 4-bit model (bitsandbytes)."""
        return "cuda" if self.precision == "4bit" else "cpu"

    def resolved_precision(self) -> str:
        """``bf16``, ``int8``, ``4bit`` or ``none``; see :func:`slimkit.llm.precision.resolve_precision`."""
        from slimkit.llm.precision import resolve_precision

        return resolve_precision(self.precision, self.device, "teacher.precision")

    def sampling(self, attempt: int) -> dict[str, Any]:
        params = super().sampling(attempt)
        # Both change the answer, so both are part of the cache key. The precision is
        # resolved (auto decodes differently on different CPUs) and keyed "quantize", its
        # name when earlier versions cached these answers.
        params["scaffold"] = self.scaffold_steps
        params["quantize"] = self.resolved_precision()
        # Only when not the default, so answers cached before these settings stay valid.
        if self.repetition_penalty != REPETITION_PENALTY:
            params["repetition_penalty"] = self.repetition_penalty
        from slimkit.llm.constraints import answer_rule_params

        params.update(answer_rule_params(
            no_repeat_ngram_size=self.no_repeat_ngram_size, constrain_items=self.constrain_items,
            constrain_max_items=self.constrain_max_items,
            constrain_candidates=self.constrain_candidates))
        return params

    # -- the model ------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model, its decoding copy in the resolved precision and the scaffold (once)."""
        if self.model is not None:
            return
        from slimkit.llm.loading import load_causal_lm
        from slimkit.llm.precision import generation_copy, load_options

        precision = self.resolved_precision()
        self.model, self.tokenizer = load_causal_lm(self.local_name, device=self.device,
                                                    **load_options(precision))
        self._decoding_model = generation_copy(self.model, precision)
        if self.scaffold_steps:
            from slimkit.llm.scaffold import StepScaffold

            self._scaffold = StepScaffold(self.tokenizer, self.model.config.vocab_size)

    def preflight(self, jobs: Sequence[TeacherJob]) -> None:
        """Load the model now: a missing or unloadable model is reported before any work."""
        self.load()

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of the prompt: the chat template (or the contents), then step 1's
        header when the scaffold is on."""
        from slimkit.llm.generate import chat_prompt

        text = chat_prompt(self.tokenizer, messages)
        if self._scaffold is not None:
            from slimkit.llm.scaffold import SCAFFOLD

            text += SCAFFOLD[0]
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- the run --------------------------------------------------------------------------
    def answer(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """Rounds of asks: every job's first ask, then the malformed answers' retries.

        Each round decodes the jobs' uncached prompts in the jobs' order, so a fresh run
        batches exactly like the last one. A row is finished (and counted on the progress
        bar) as soon as its answer is well formed or its last retry is in.
        """
        answers: dict[int, list[dict[str, Any]]] = {job.user_index: [] for job in jobs}
        cached = dict.fromkeys(answers, 0)
        rows: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()  # rows finish on the decoding threads

        def settle(job: TeacherJob, record: dict[str, Any], attempt: int, retry: list) -> None:
            answers[job.user_index].append(record)
            if self.ask_again(record, attempt, ctx):
                retry.append(job)
                return
            row = self.row(job, answers[job.user_index], cached[job.user_index])
            with lock:
                rows[job.user_index] = row
            ctx.progress.update(status=row["status"], cached=row["cached"], cost=row["cost_usd"])

        todo = list(jobs)
        for attempt in range(1 + self.max_malformed_retries):
            if not todo:
                break
            retry: list[TeacherJob] = []
            asks: list[tuple[TeacherJob, str]] = []
            for job in todo:
                key, record = self.lookup(job, attempt, ctx)
                if record is None:
                    asks.append((job, key))
                else:
                    cached[job.user_index] += 1
                    settle(job, record, attempt, retry)
            if asks:
                try:
                    self._decode(asks, attempt, ctx, settle, retry)
                except Exception as exc:  # noqa: BLE001 - reported in the rows and stats
                    ctx.stats.count_error(type(exc).__name__)
                    ctx.stats.stopped = f"stopped after {type(exc).__name__}: {exc}"
                    break
            retry_ids = {job.user_index for job in retry}
            todo = [job for job in jobs if job.user_index in retry_ids]  # the jobs' order
        for job in jobs:
            if job.user_index in rows:
                continue
            if answers[job.user_index]:  # keep the malformed answer there is
                rows[job.user_index] = self.row(job, answers[job.user_index], cached[job.user_index])
            else:
                rows[job.user_index] = make_row(job, model=self.label, text=None, status="failed",
                                                error=f"not sent: {ctx.stats.stopped}")
            ctx.progress.update(status=rows[job.user_index]["status"])
        return list(rows.values())

    def _decode(self, asks, attempt: int, ctx: TeachContext, settle, retry: list) -> None:
        """Decode one round's prompts; every answer is cached and settled as it finishes."""
        from slimkit.llm.generate import generate, step_marker_tokens

        sampling = self.sampling(attempt)
        prompts = [self.prompt_ids(job.messages) for job, _ in asks]
        limit = self.max_tokens
        processor = None
        header = ""
        marker = "Step 3:"
        if self._scaffold is not None:
            from slimkit.llm.scaffold import HEADER_ROOM, SCAFFOLD

            per_step = self._scaffold.per_step(self.max_tokens)
            limit = self.max_tokens + HEADER_ROOM
            # a constrained step 3 is ended by the constraint, never cut mid-title
            last_step = limit if self.constrain_items else None

            def processor(rows: int, width: int):
                return self._scaffold.processor(rows, width, per_step, last_step)

            header = SCAFFOLD[0]
            marker = SCAFFOLD[2].strip()
        constraint = None
        if self.constrain_items:
            from slimkit.llm.constraints import ItemConstraint, TitleTrie, constraint_factory
            from slimkit.prompts.history import catalogue_facts

            if self._title_trie is None:
                self._title_trie = TitleTrie(self.tokenizer, ctx.dataset.item_titles)
            facts = catalogue_facts(ctx.dataset)
            constraint = constraint_factory(self._title_trie, ItemConstraint(
                titles=ctx.dataset.item_titles,
                banned=[facts.banned_items(job.user_index, self.constrain_candidates) for job, _ in asks],
                max_items=self.constrain_max_items, marker=marker, max_new_tokens=limit))
        started = time.perf_counter()

        def on_done(done) -> None:
            job, key = asks[done.index]
            record = {
                "text": header + done.text,
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.content_tokens,
                "cost_usd": 0.0,  # in-process
                "latency_s": time.perf_counter() - started,  # as if sent when the round began
                "finish_reason": "stop" if done.stopped else "length",
                "response_model": self.label,
                "created": time.time(),
            }
            if ctx.records is not None:
                ctx.records.set(key, record)
            settle(job, record, attempt, retry)

        ctx.stats.requests_sent += len(asks)
        summary = generate(
            self._decoding_model,
            self.tokenizer,
            prompts,
            max_new_tokens=limit,
            batch_size=self.batch_size,
            workers=self.workers,
            order="given",
            temperature=sampling["temperature"],
            top_p=TOP_P,
            seed=sampling.get("seed"),
            repetition_penalty=self.repetition_penalty,
            answer_no_repeat_ngram_size=self.no_repeat_ngram_size,
            repetition_exempt=step_marker_tokens(self.tokenizer) if self.no_repeat_ngram_size else (),
            logits_processor=processor,
            constraint=constraint,
            on_done=on_done,
            progress=False,  # the stage's bar counts users
        )
        ctx.stats.generated_tokens += summary["new_tokens"]
        ctx.stats.generation_seconds += summary["seconds"]
