"""The ``litellm`` teacher through a provider's batch API (``teacher.batch: true``).

A batch costs less (OpenAI and Anthropic bill batches at half price) and takes longer
(answers come within the provider's 24-hour window, often minutes). How a run goes:

1. Every job's requests are looked up in the record cache under the same keys the online
   teacher uses (:meth:`~slimkit.teachers.chat.ChatTeacher.lookup`): an answer bought
   online is reused here and the other way round. Pre-flight as online, plus: the
   provider has a batch API litellm speaks, and no ``max_cost_usd`` (a submitted batch
   is billed whole, so a budget cannot stop it half way).
2. The requests not cached go into one JSONL file in OpenAI's batch format (``custom_id``,
   ``method``, ``url``, ``body``), uploaded with ``litellm.create_file`` and submitted with
   ``litellm.create_batch``. The batch id and the record key of every request it covers
   are written to the record cache the moment the batch exists, before the first poll.
   Looking up pending batches and submitting happen under a cross-process file lock, so
   two runs sharing a cache submit each request once; a create whose answer was lost is
   found again by its input file (``litellm.list_batches``) rather than submitted twice.
3. ``litellm.retrieve_batch`` every ``batch_poll_s`` seconds until the batch is completed,
   failed, expired or cancelled. A run stopped meanwhile (Ctrl-C, a killed process,
   ``batch_max_wait_s`` reached) leaves the batch with the provider; the next run finds
   it through the cache and polls it again instead of submitting the requests again.
4. The output file (``litellm.file_content``) holds one answer per request: each is
   stored under its request's key exactly as the online teacher stores it (text, tokens,
   cost), plus ``price: "batch"`` and the batch id. Lines of the error file, requests the
   batch never answered and a batch that failed as a whole become per-user errors
   (status ``failed``); the next run submits those requests again.
5. An answer without the three steps is asked again in a further batch, with the next
   attempt's sampling (as online: ``retry_temperature``, a new seed), up to
   ``max_malformed_retries`` batches more. Retrying in a batch keeps every answer at the
   batch price; the price is time (one more batch window per retry round).

Cost: litellm's batch price when its model list has one (``input_cost_per_token_batches``,
via ``litellm.cost_calculator.batch_cost_calculator``); else the list price (yours, from
``input/output_cost_per_million_tokens``, or litellm's) times ``batch_discount``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from slimkit.errors import SlimkitError
from slimkit.teachers.base import TeachContext, TeacherJob, make_row
from slimkit.teachers.litellm_teacher import API_PARAMS, LiteLLMTeacher, _classify

BATCH_PROVIDERS = ("openai", "azure")
"""Providers whose batch input is OpenAI's JSONL of chat-completion requests (through litellm)."""

ENDPOINT = "/v1/chat/completions"
FINISHED = ("completed", "failed", "expired", "cancelled")
"""Batch states after which nothing changes."""

BATCH_PREFIX = "batch:"
"""Record key of a submitted batch: its id, input file and the request keys it covers."""

POINTER_PREFIX = "batch-of:"
"""Record key, per request key, of the batch that will answer it."""


def litellm_teacher(*, batch: bool = False, batch_poll_s: float = 30.0, batch_discount: float = 0.5,
                    batch_max_wait_s: float | None = None, **params: Any) -> LiteLLMTeacher:
    """The ``litellm`` teacher of a spec section: online, or through the batch API."""
    if not batch:
        return LiteLLMTeacher(**params)
    return LiteLLMBatchTeacher(poll_s=batch_poll_s, discount=batch_discount,
                               max_wait_s=batch_max_wait_s, **params)


@dataclass
class _Pending:
    """A job still being answered: its answers so far and the attempt asked next."""

    job: TeacherJob
    answers: list[dict[str, Any]] = field(default_factory=list)
    cached: int = 0
    attempt: int = 0


class _SubmitLock:
    """A cross-process lock (an OS file lock: a killed holder releases it) held while a run
    looks up which requests are pending and submits the others, so two runs sharing a
    cache submit each request once; the second finds the first's batch and polls it."""

    def __init__(self, store: Any, wait_s: float):
        self._lock = None
        if store is not None and getattr(store, "directory", None):
            from pathlib import Path

            from filelock import FileLock

            folder = Path(store.directory) / "locks"
            folder.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(folder / "batch-submit.lock"), timeout=wait_s)

    def __enter__(self) -> Self:
        if self._lock is not None:
            from filelock import Timeout

            try:
                self._lock.acquire()
            except Timeout:  # the holder hangs: submitting anyway beats waiting forever
                self._lock = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()


class _BatchLost(Exception):
    """The provider no longer knows a batch the cache remembers (another account, deleted)."""


class LiteLLMBatchTeacher(LiteLLMTeacher):
    """Writes rationales through a provider's batch API (see the module docstring)."""

    def __init__(self, *, poll_s: float = 30.0, discount: float = 0.5,
                 max_wait_s: float | None = None, **params: Any):
        super().__init__(**params)
        self.poll_s = poll_s
        self.discount = discount
        self.max_wait_s = max_wait_s
        self._requests: dict[str, dict[str, str]] = {}  # batch id -> custom_id -> request key

    # -- pre-flight -----------------------------------------------------------------------
    def preflight(self, jobs: Sequence[TeacherJob]) -> None:
        """The online checks, plus: a provider with a batch API, no budget."""
        provider = self._provider()
        problems = []
        if provider not in BATCH_PROVIDERS:
            problems.append(
                f"teacher.batch: slimkit sends batches to {', '.join(BATCH_PROVIDERS)} (OpenAI's "
                f"batch format, through litellm); '{self.model}' is served by {provider}. Set "
                "teacher.batch: false to ask it online."
            )
        if self.max_cost_usd is not None:
            problems.append(
                "teacher.max_cost_usd cannot be enforced with teacher.batch: true (a submitted "
                "batch is billed whole). Remove the budget, or ask online."
            )
        if problems:
            raise SlimkitError(f"The teacher '{self.model}' cannot start; nothing was sent.",
                               problems=problems)
        super().preflight(jobs)

    # -- the run --------------------------------------------------------------------------
    def answer(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """Rounds of batches: the first asks every job's next uncached request, each later
        round asks again for the malformed answers of the one before."""
        ctx.stats.extra.update(price="batch", batches_submitted=[], batches_resumed=[])
        pending = [_Pending(job) for job in jobs]
        rows: list[dict[str, Any]] = []
        while pending:
            asks: dict[str, list[_Pending]] = {}
            for state in pending:
                key = self._advance(state, ctx)
                if key is None:
                    rows.append(self._finish(state, ctx))
                else:
                    asks.setdefault(key, []).append(state)
            if not asks:
                break
            results = self._ask(asks, ctx)
            pending = []
            for key, states in asks.items():
                outcome = results.get(key, "no answer")
                for state in states:
                    if isinstance(outcome, str):  # an error: keep a malformed answer we have
                        rows.append(self._finish(state, ctx, error=outcome))
                        continue
                    state.answers.append(outcome)
                    if self.ask_again(outcome, state.attempt, ctx):
                        state.attempt += 1
                        pending.append(state)
                    else:
                        rows.append(self._finish(state, ctx))
        return rows

    def _advance(self, state: _Pending, ctx: TeachContext) -> str | None:
        """Walk a job through its cached answers; the key of its next request to ask, or
        None when it needs none (well formed, or out of retries)."""
        while True:
            key, record = self.lookup(state.job, state.attempt, ctx)
            if record is None:
                return key
            state.answers.append(record)
            state.cached += 1
            if not self.ask_again(record, state.attempt, ctx):
                return None
            state.attempt += 1

    def _finish(self, state: _Pending, ctx: TeachContext, error: str | None = None) -> dict[str, Any]:
        if state.answers:
            row = self.row(state.job, state.answers, state.cached)
        else:
            row = make_row(state.job, model=self.label, text=None, status="failed", error=error,
                           attempts=state.attempt + 1)
        ctx.progress.update(status=row["status"], cached=row["cached"], cost=row["cost_usd"])
        return row

    # -- one round ------------------------------------------------------------------------
    def _ask(self, asks: dict[str, list[_Pending]], ctx: TeachContext) -> dict[str, Any]:
        """Answer (a record) or error (a string) per request key: batches the cache says are
        pending are polled; the other requests go into one new batch."""
        litellm = self._lib()
        results: dict[str, Any] = {}
        by_batch: dict[str, list[str]] = {}
        fresh: list[str] = []
        with _SubmitLock(ctx.records, self._submit_wait_s):  # two runs on one cache: one batch
            for key in asks:
                answered = ctx.records.get(key) if ctx.records is not None else None
                batch_id = None if answered is not None else self._pending_batch(key, ctx)
                if answered is not None:  # another run's batch answered it meanwhile
                    results[key] = answered
                elif batch_id is None:
                    fresh.append(key)
                else:
                    by_batch.setdefault(batch_id, []).append(key)
            for batch_id, keys in by_batch.items():
                ctx.stats.extra["batches_resumed"].append(batch_id)
                ctx.progress.note(f"teach: resuming batch {batch_id} ({len(keys)} "
                                  "request(s) submitted by an earlier run)")
            if fresh:
                bodies = {key: self._body(asks[key][0]) for key in fresh}
                submitted, error = self._submit(litellm, bodies, ctx)
                if submitted is None:
                    results.update(dict.fromkeys(fresh, error))
                else:
                    by_batch[submitted] = fresh
        lost = self._wait(litellm, by_batch, ctx, results)
        if lost:  # the provider forgot them: ask those requests again, once
            bodies = {key: self._body(asks[key][0]) for key in lost}
            submitted, error = self._submit(litellm, bodies, ctx)
            if submitted is None:
                results.update(dict.fromkeys(lost, error))
            else:
                self._wait(litellm, {submitted: lost}, ctx, results)
        return results

    @property
    def _submit_wait_s(self) -> float:
        """How long a run waits for another run's submission: upload, create and a look
        for a lost create, each through every try at its longest."""
        return 3 * (self.timeout * (self.max_retries + 1) + self.retry_max_delay * self.max_retries) + 5

    def _body(self, state: _Pending) -> dict[str, Any]:
        """The chat-completion request body of a job's next attempt, as the provider sees it."""
        sampling = self.sampling(state.attempt)
        return {"model": self._provider_model(), "messages": list(state.job.messages),
                **{k: v for k, v in sampling.items() if k in API_PARAMS}}

    def _provider_model(self) -> str:
        return self._lib().get_llm_provider(self.model, api_base=self.api_base)[0]

    def _kwargs(self) -> dict[str, Any]:
        kwargs = self._call_kwargs()
        kwargs.pop("num_retries", None)
        kwargs["custom_llm_provider"] = self._provider()
        return kwargs

    # -- bookkeeping in the record cache -----------------------------------------------------
    def _pending_batch(self, key: str, ctx: TeachContext) -> str | None:
        if ctx.records is None:
            return None
        batch_id = ctx.records.get(POINTER_PREFIX + key)
        entry = ctx.records.get(BATCH_PREFIX + batch_id) if batch_id is not None else None
        if entry is None:
            return None
        self._requests[batch_id] = dict(entry.get("requests") or {})
        return batch_id

    def _remember(self, batch_id: str, file_id: str, requests: dict[str, str], ctx: TeachContext) -> None:
        self._requests[batch_id] = dict(requests)
        if ctx.records is None:
            return
        ctx.records.set(BATCH_PREFIX + batch_id, {
            "batch_id": batch_id, "input_file_id": file_id, "requests": requests,
            "model": self.model, "api_base": self.api_base, "submitted": time.time(),
        })
        for key in requests.values():
            ctx.records.set(POINTER_PREFIX + key, batch_id)

    def _forget(self, batch_id: str, ctx: TeachContext) -> None:
        if ctx.records is None:
            return
        entry = ctx.records.get(BATCH_PREFIX + batch_id) or {}
        for key in (entry.get("requests") or {}).values():
            if ctx.records.get(POINTER_PREFIX + key) == batch_id:
                ctx.records.delete(POINTER_PREFIX + key)
        ctx.records.delete(BATCH_PREFIX + batch_id)

    def _requests_of(self, batch_id: str, ctx: TeachContext) -> dict[str, str]:
        """custom_id -> request key of a batch: as read when this run submitted or found it
        (another run sharing the cache may have collected and forgotten it since)."""
        if batch_id in self._requests:
            return self._requests[batch_id]
        entry = ctx.records.get(BATCH_PREFIX + batch_id) if ctx.records is not None else None
        return dict((entry or {}).get("requests") or {})

    # -- provider calls -------------------------------------------------------------------
    def _call(self, what: str, function, ctx: TeachContext, *, settled=None, **arguments: Any) -> Any:
        """One litellm files/batches call, retried like an online request (backoff on rate
        limits, server errors and dropped connections); a refused key stops the run. After
        a failure, ``settled()`` (when given) may show the call took effect anyway (its
        answer was lost): its result is returned instead of calling again."""
        litellm = self._lib()
        for retry in range(self.max_retries + 1):
            try:
                return function(**arguments, **self._kwargs())
            except Exception as exc:  # noqa: BLE001 - sorted by _classify
                kind, retryable, fatal = _classify(litellm, exc)
                status = getattr(exc, "status_code", None)
                if status in (401, 403):  # litellm passes the openai SDK's errors through unwrapped
                    kind, retryable, fatal = ("authentication" if status == 401 else "permission_denied"), False, True
                ctx.stats.count_error(kind)
                message = f"{kind}: {self._scrub(str(exc)).strip()[:300]}"
                if what == "poll" and (kind == "model_not_found" or status == 404):
                    raise _BatchLost(message) from None
                found = settled() if settled is not None and not fatal else None
                if found is not None:
                    return found
                if fatal:
                    ctx.stats.stopped = f"stopped after {message}"
                    raise SlimkitError(
                        f"The batch API of the teacher '{self.model}' refused to {what}: {message}",
                        hint="Answers that arrived are cached, and a submitted batch is resumed "
                        "by the next run.",
                    ) from None
                if not retryable or retry == self.max_retries:
                    return message
                ctx.stats.retries += 1
                time.sleep(self._backoff(retry, None))
        return f"{what}: gave up"

    def _submit(self, litellm, bodies: dict[str, dict[str, Any]],
                ctx: TeachContext) -> tuple[str | None, str | None]:
        """Upload and submit one batch: (its id, remembered in the cache, None) or (None, error)."""
        requests = {_custom_id(n): key for n, key in enumerate(bodies)}
        lines = [{"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": bodies[key]}
                 for custom_id, key in requests.items()]
        payload = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        uploaded = self._call("upload the requests", litellm.create_file, ctx,
                              file=("slimkit-teach-requests.jsonl", payload), purpose="batch")
        if isinstance(uploaded, str):
            return None, f"batch not submitted: {uploaded}"
        batch = self._call("create a batch", litellm.create_batch, ctx, completion_window="24h",
                           endpoint=ENDPOINT, input_file_id=uploaded.id,
                           metadata={"description": "slimkit teach"},
                           settled=lambda: self._batch_of_file(litellm, uploaded.id))
        if isinstance(batch, str):
            return None, f"batch not submitted: {batch}"
        self._remember(batch.id, uploaded.id, requests, ctx)  # before anything else can fail
        ctx.stats.requests_sent += len(lines)
        ctx.stats.extra["batches_submitted"].append(batch.id)
        ctx.progress.note(f"teach: batch {batch.id} submitted ({len(lines)} requests); polling every "
                          f"{self.poll_s:g} s. Stopping is safe: the next run resumes this batch.")
        return batch.id, None

    def _batch_of_file(self, litellm, file_id: str) -> Any:
        """The batch made from our upload ``file_id``, if one exists: a create whose answer
        was lost (timeout, dropped connection) must not be paid for twice."""
        try:
            listed = litellm.list_batches(limit=100, **self._kwargs())
        except Exception:  # noqa: BLE001 - cannot tell: the caller retries the create
            return None
        for batch in getattr(listed, "data", None) or []:
            if getattr(batch, "input_file_id", None) == file_id:
                return batch
        return None

    def _wait(self, litellm, by_batch: dict[str, list[str]], ctx: TeachContext,
              results: dict[str, Any]) -> list[str]:
        """Poll until every batch is finished (or ``max_wait_s``); fill ``results`` from each.
        Returns the keys of batches the provider no longer knows."""
        start = time.monotonic()
        waiting = dict(by_batch)
        lost: list[str] = []
        last_status: dict[str, str] = {}
        while waiting:
            for batch_id in list(waiting):
                try:
                    batch = self._call("poll", litellm.retrieve_batch, ctx, batch_id=batch_id)
                except _BatchLost as exc:
                    ctx.progress.note(f"teach: batch {batch_id} is unknown to the provider "
                                      f"({exc}); its requests are submitted again.")
                    self._forget(batch_id, ctx)
                    lost += waiting.pop(batch_id)
                    continue
                if isinstance(batch, str):
                    continue  # a poll that failed for good this time: poll again later
                if batch.status != last_status.get(batch_id):
                    last_status[batch_id] = batch.status
                    counts = batch.request_counts
                    done = f" ({counts.completed}/{counts.total} answered)" if counts else ""
                    ctx.progress.note(f"teach: batch {batch_id} {batch.status}{done}")
                if batch.status in FINISHED:
                    keys = waiting.pop(batch_id)
                    self._collect(litellm, batch, keys, ctx, results)
            if not waiting:
                break
            if self.max_wait_s is not None and time.monotonic() - start >= self.max_wait_s:
                for batch_id, keys in waiting.items():
                    message = (f"batch {batch_id} still {last_status.get(batch_id, 'pending')} after "
                               f"{self.max_wait_s:g} s (batch_max_wait_s); run again to collect it")
                    results.update(dict.fromkeys(keys, message))
                ctx.stats.stopped = "batch pending: run again to collect its answers"
                break
            time.sleep(self.poll_s)
        return lost

    def _collect(self, litellm, batch, keys: list[str], ctx: TeachContext,
                 results: dict[str, Any]) -> None:
        """Store every answer of a finished batch; errors per request in ``results``."""
        requests = self._requests_of(batch.id, ctx)
        seen: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = self._call("download the results", litellm.file_content, ctx, file_id=file_id)
            if isinstance(content, str):
                for key in requests.values():
                    results.setdefault(key, f"batch {batch.id}: {content}")
                continue
            for line in content.content.decode("utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                key = requests.get(str(item.get("custom_id")))
                if key is None:
                    continue
                seen.add(key)
                outcome = self._line_outcome(litellm, item, batch.id)
                if isinstance(outcome, str):
                    kind = outcome.split(":")[0]
                    ctx.stats.count_error(kind)
                    results[key] = outcome
                    continue
                stored = ctx.records.get(key) if ctx.records is not None else None
                if stored is not None:  # another run sharing the cache collected it first
                    ctx.stats.responses_cached += 1
                    results[key] = stored
                    continue
                if ctx.records is not None:
                    ctx.records.set(key, outcome)
                if outcome["cost_usd"] is not None:
                    ctx.stats.spent_usd += outcome["cost_usd"]
                else:
                    ctx.stats.cost_unknown += 1
                results[key] = outcome
        problem = _batch_problem(batch)
        for key in [*requests.values(), *keys]:
            stored = ctx.records.get(key) if ctx.records is not None and key not in seen else None
            if stored is not None:
                results.setdefault(key, stored)
            elif key not in seen:
                results.setdefault(key, f"batch_{batch.status}: batch {batch.id} gave no answer"
                                   + (f" ({problem})" if problem else ""))
        self._forget(batch.id, ctx)  # answers are stored; failed requests are asked anew next time

    def _line_outcome(self, litellm, item: dict[str, Any], batch_id: str) -> dict[str, Any] | str:
        """The record of one output line, or the error string of an error line."""
        response = item.get("response") or {}
        status = response.get("status_code")
        body = response.get("body") or {}
        if item.get("error") or status != 200 or not isinstance(body, dict) or not body.get("choices"):
            error = item.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            code = error.get("code") if isinstance(error, dict) else None
            kind = f"http_{status}" if isinstance(status, int) and status != 200 else "batch_error"
            detail = code or (error.get("type") if isinstance(error, dict) else None)
            return f"{kind}: {self._scrub(str(message or detail or 'no answer'))[:300]}"
        choice = body["choices"][0] or {}
        usage = body.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return {
            "text": ((choice.get("message") or {}).get("content") or ""),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": self.batch_cost(litellm, prompt, completion),
            "latency_s": 0.0,  # a batch answers all at once; the run's wall time is in the summary
            "finish_reason": choice.get("finish_reason"),
            "response_model": str(body.get("model") or ""),
            "created": time.time(),
            "price": "batch",
            "batch_id": batch_id,
        }

    # -- price ----------------------------------------------------------------------------
    def batch_cost(self, litellm, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD of one answer at the batch price (module docstring); None when unknown."""
        if self.input_cost is not None and self.output_cost is not None:
            listed = (prompt_tokens * self.input_cost + completion_tokens * self.output_cost) / 1e6
            return listed * self.discount
        if not self._price_known_cached():
            return None
        try:
            info = litellm.get_model_info(self.model)
        except Exception:  # noqa: BLE001 - litellm raises several kinds for unmapped models
            info = {}
        try:
            if info.get("input_cost_per_token_batches") is not None or info.get("output_cost_per_token_batches") is not None:
                from litellm.cost_calculator import batch_cost_calculator

                usage = litellm.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                      total_tokens=prompt_tokens + completion_tokens)
                return float(sum(batch_cost_calculator(usage=usage, model=self.model)))
            prompt_usd, completion_usd = litellm.cost_per_token(
                model=self.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            return float(prompt_usd + completion_usd) * self.discount
        except Exception:  # noqa: BLE001 - no price: unknown, never a failed request
            return None


def _custom_id(n: int) -> str:
    return f"request-{n}"


def _batch_problem(batch) -> str | None:
    """The first error a failed batch reports (validation errors), if any."""
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    if not data:
        return None
    first = data[0]
    message = getattr(first, "message", None) or str(first)
    return f"{len(data)} error(s), first: {message}"
