"""The ``litellm`` teacher: any chat model litellm can call, concurrent, cached, budgeted.

How a run goes:

1. Every job's requests are looked up in the record cache first. A job whose answers are
   all cached costs nothing, and when every job is cached litellm is not even imported.
2. Before the first request: pre-flight checks (the provider is known, the API key is in
   the environment, the model has a price when a budget is set, ``api_base`` accepts
   connections). Any failure is a :class:`SlimkitError` and nothing is sent.
3. Requests run on an asyncio loop, at most ``concurrency`` at once, at most
   ``requests_per_minute`` started per minute. Rate limits (429), server errors (5xx),
   timeouts, dropped connections and unreadable responses are retried with exponential
   backoff and jitter (``Retry-After`` honoured); authentication errors and unknown
   models stop the run. Every answer is written to the record cache the moment it
   arrives, so Ctrl-C loses nothing that finished.
4. An answer without the three steps is asked again (up to ``max_malformed_retries``),
   at ``retry_temperature`` when the first ask was greedy (a greedy model repeats itself).
5. ``max_cost_usd``: no new request starts once the money spent plus the expected cost of
   the requests in flight reaches the budget; the users not sent are reported as failed
   ("not sent: budget reached") and the next run resumes them.

API keys are read from the environment when a request is made, passed to litellm, and
scrubbed from every error message; they are never part of a cache key, record or output.
Without ``api_key_env`` the provider's usual variable is used (``OPENAI_API_KEY`` for an
OpenAI-compatible ``api_base``); a self-hosted server with no key set gets a dummy one. A
401/403 answer stops the run at once with an error naming the variable.

Several runs may share one cache: before asking, a job takes a cross-process lock on its
request key (:class:`slimkit.cache.RequestLock`); a run that finds the lock held waits
for the other run's answer and reads it from the cache, so no request is paid twice.
A killed holder's lock is released by the operating system; a holder that hangs past
``lock_wait_s`` is overtaken.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from slimkit.cache import RequestLock
from slimkit.errors import SlimkitError
from slimkit.teachers.base import TeachContext, TeacherJob, make_row
from slimkit.teachers.chat import ChatTeacher

DUMMY_API_KEY = "sk-slimkit-no-key-needed"
"""Sent to self-hosted OpenAI-compatible servers; litellm refuses to call without a key."""

LOCAL_PROVIDERS = {
    "ollama",
    "ollama_chat",
    "hosted_vllm",
    "vllm",
    "lm_studio",
    "llamafile",
    "openai_like",
    "custom_openai",
    "xinference",
    "oobabooga",
}
"""Providers that run on the user's own machines: no API key, no price list."""

API_PARAMS = ("temperature", "max_tokens", "seed")
"""Sampling keys sent to the model; other keys of :meth:`LiteLLMTeacher.sampling` only key the cache."""

DEFAULT_API_BASES = {"ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434"}

PROVIDER_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "text-completion-openai": "OPENAI_API_KEY",
    "openai_like": "OPENAI_API_KEY",
    "custom_openai": "OPENAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "hosted_vllm": "HOSTED_VLLM_API_KEY",
}
"""The usual API-key variable of a provider (others: ``<PROVIDER>_API_KEY``)."""

AUTH_ERRORS = ("authentication", "permission_denied")


def import_litellm():
    """Import litellm quietly, offline (no cost-map download), with slimkit's settings."""
    from slimkit.runtime import configure_environment

    configure_environment()
    import litellm

    litellm.suppress_debug_info = True  # it prints provider lists on stdout otherwise
    litellm.drop_params = True  # e.g. temperature for models that reject it
    litellm.telemetry = False
    return litellm


class _NotSent(Exception):
    """The request was not sent because the run stopped (budget or fatal error)."""


class _GaveUp(Exception):
    """The request failed for good (after retries, or not retryable)."""


class _Busy(Exception):
    """Another run holds this request's lock: it is asking the same question now."""


class _RateLimiter:
    """Spaces request starts at least ``60 / rpm`` seconds apart."""

    def __init__(self, rpm: int | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _classify(litellm, exc: BaseException) -> tuple[str, bool, bool]:
    """(kind, retryable, fatal for the whole run) of an exception raised by litellm."""
    checks = [
        ("ContextWindowExceededError", "context_window", False, False),
        ("AuthenticationError", "authentication", False, True),
        ("PermissionDeniedError", "permission_denied", False, True),
        ("NotFoundError", "model_not_found", False, True),
        ("RateLimitError", "rate_limit", True, False),
        ("Timeout", "timeout", True, False),
        ("ServiceUnavailableError", "server_error", True, False),
        ("InternalServerError", "server_error", True, False),
        ("BadGatewayError", "server_error", True, False),
        ("APIConnectionError", "connection", True, False),
        ("ContentPolicyViolationError", "content_policy", False, False),
        ("BadRequestError", "bad_request", False, False),
    ]
    for name, kind, retryable, fatal in checks:
        cls = getattr(litellm, name, None)
        if cls is not None and isinstance(exc, cls):
            return kind, retryable, fatal
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
        return f"http_{status}", False, False
    # Unreadable bodies (truncated JSON), APIError without status, 5xx: transient.
    return "api_error", True, False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class LiteLLMTeacher(ChatTeacher):
    """Writes rationales with any chat model litellm can call (see the module docstring)."""

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None = None,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout: float = 60.0,
        concurrency: int = 8,
        requests_per_minute: int | None = None,
        max_retries: int = 5,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        max_cost_usd: float | None = None,
        input_cost_per_million_tokens: float | None = None,
        output_cost_per_million_tokens: float | None = None,
        allow_unknown_model: bool = False,
        retry_temperature: float = 0.7,
        max_malformed_retries: int = 2,
        num_users: int | None = None,  # used by the stage (sampling), not here
        seed: int | None = None,
    ):
        super().__init__(temperature=temperature, max_tokens=max_tokens,
                         retry_temperature=retry_temperature,
                         max_malformed_retries=max_malformed_retries)
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.max_cost_usd = max_cost_usd
        self.input_cost = input_cost_per_million_tokens
        self.output_cost = output_cost_per_million_tokens
        self.allow_unknown_model = allow_unknown_model
        self._litellm = None
        self._inflight = 0
        self._paid_requests = 0

    # -- identity ---------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The model name written into every row."""
        return self.model

    @property
    def identity(self) -> str:
        """The model and, when set, the server: the same model name on another server
        gives other answers, so it must not reuse these."""
        if not self.api_base:
            return self.model
        return f"{self.model}@{self.api_base.rstrip('/')}"

    # -- credentials ------------------------------------------------------------------
    def _provider(self) -> str:
        try:
            return self._lib().get_llm_provider(self.model, api_base=self.api_base)[1]
        except Exception as exc:
            raise SlimkitError(
                f"teacher.model: litellm does not know which provider serves '{self.model}'; "
                "nothing was sent.",
                hint="Prefix the provider, e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-"
                "20241022, ollama/llama3.1, or hosted_vllm/<name> with teacher.api_base.",
            ) from exc

    def key_variable(self) -> str | None:
        """The environment variable the API key is read from: ``api_key_env``, else the
        provider's usual one (None when the provider cannot be told)."""
        if self.api_key_env:
            return self.api_key_env
        try:
            provider = self._provider()
        except SlimkitError:
            return None
        return PROVIDER_KEY_VARIABLES.get(provider, f"{provider.upper()}_API_KEY")

    def _api_key(self) -> str | None:
        variable = self.key_variable()
        return (os.environ.get(variable) or None) if variable else None

    def _secrets(self) -> list[str]:
        names = [self.api_key_env] if self.api_key_env else []
        names += [n for n in os.environ if n.endswith(("_API_KEY", "_TOKEN", "_SECRET"))]
        return [os.environ[n] for n in names if n and len(os.environ.get(n, "")) >= 6]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _lib(self):
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    # -- pre-flight ---------------------------------------------------------------------
    def price_known(self) -> bool:
        """Whether a cost can be computed for this model (custom prices or litellm's map)."""
        if self.input_cost is not None and self.output_cost is not None:
            return True
        litellm = self._lib()
        try:
            info = litellm.get_model_info(self.model)
        except Exception:  # noqa: BLE001 - litellm raises several kinds for unmapped models
            return False
        if (info.get("input_cost_per_token") or 0) > 0 or (info.get("output_cost_per_token") or 0) > 0:
            return True
        return info.get("key") in litellm.model_cost

    def preflight(self, jobs: Sequence[TeacherJob]) -> None:
        """Checks that must pass before the first (possibly paid) request; SlimkitError if not."""
        provider = self._provider()
        problems: list[str] = []
        local = provider in LOCAL_PROVIDERS
        if self.api_key_env:
            if not os.environ.get(self.api_key_env):
                problems.append(
                    f"teacher.api_key_env: the environment variable {self.api_key_env} is not "
                    "set (or empty). Export it before running; the key never goes in the spec."
                )
        elif not self.api_base and not local:
            env = self._lib().validate_environment(self.model)
            missing = [k for k in env.get("missing_keys", []) if not k.endswith("API_BASE")]
            if missing:
                problems.append(
                    f"teacher.model '{self.model}' needs the environment variable(s) "
                    f"{', '.join(missing)} (the API key of {provider}); it is not set. Export "
                    "it, or name another variable with teacher.api_key_env."
                )
        if not self.api_base and not local and not self.allow_unknown_model and not self.price_known():
            problems.append(
                f"teacher.model: litellm's model list has no model '{self.model}' for {provider}. "
                "Check the spelling; for a model newer than litellm's list, set "
                "teacher.allow_unknown_model: true."
            )
        if self.max_cost_usd is not None and not self.price_known():
            problems.append(
                f"teacher.max_cost_usd is set, but litellm has no price for '{self.model}', so "
                "the budget cannot be enforced. Set teacher.input_cost_per_million_tokens and "
                "teacher.output_cost_per_million_tokens, or remove the budget."
            )
        base = self.api_base or DEFAULT_API_BASES.get(provider)
        if base:
            problem = _unreachable(base, min(5.0, self.timeout))
            if problem:
                problems.append(
                    f"teacher.api_base: cannot connect to {base} ({problem}). Start the server "
                    "or fix the URL."
                )
        if problems:
            raise SlimkitError(
                f"The teacher '{self.model}' cannot start; nothing was sent.", problems=problems
            )

    # -- the run ------------------------------------------------------------------------
    def answer(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """Ask the model for every job, concurrently (see the module docstring). A refused
        key (401/403) stops the run: SlimkitError naming the variable, after every answer
        that did arrive was cached."""
        rows = _run_async(self._run(jobs, ctx))
        refused = [kind for kind in AUTH_ERRORS if ctx.stats.errors.get(kind)]
        if refused:
            ctx.progress.close()
            raise SlimkitError(self._refused_message(refused[0], ctx), hint=(
                "Export the right key, or name the variable that holds it with "
                "teacher.api_key_env. Answers that arrived are cached; nothing is asked twice."))
        return rows

    def _refused_message(self, kind: str, ctx: TeachContext) -> str:
        variable = self.key_variable()
        server = self.api_base or self.model
        code = "401 Unauthorized" if kind == "authentication" else "403 Forbidden"
        if self._api_key():
            sent = f"the key in {variable}"
        elif variable:
            sent = f"no key ({variable} is not set{', a dummy key was sent' if self.api_base else ''})"
        else:
            sent = "no key"
        return (f"The teacher's server ({server}) refused {sent}: {code}. The run stopped at "
                f"once ({ctx.stats.requests_sent} request(s) sent).")

    async def _run(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        semaphore = asyncio.Semaphore(self.concurrency)
        limiter = _RateLimiter(self.requests_per_minute)
        tasks = [asyncio.ensure_future(self._job(job, ctx, semaphore, limiter)) for job in jobs]
        rows = []
        try:
            for finished in asyncio.as_completed(tasks):
                row = await finished
                ctx.progress.update(status=row["status"], cached=row["cached"], cost=row["cost_usd"])
                rows.append(row)
        finally:
            for task in tasks:
                task.cancel()
        return rows

    async def _job(self, job, ctx, semaphore, limiter) -> dict[str, Any]:
        answers: list[dict[str, Any]] = []
        cached = 0
        for attempt in range(1 + self.max_malformed_retries):
            key, record = self.lookup(job, attempt, ctx)
            if record is not None:
                cached += 1
            else:
                lock = RequestLock(ctx.records, key) if ctx.records is not None else None
                try:
                    record, elsewhere = await self._ask(key, job.messages, self.sampling(attempt),
                                                        ctx, semaphore, limiter, lock)
                except (_NotSent, _GaveUp) as exc:
                    if answers:  # keep the malformed answer we have
                        break
                    return make_row(job, model=self.label, text=None, status="failed",
                                    error=str(exc), attempts=attempt + 1)
                cached += int(elsewhere)
            answers.append(record)
            if not self.ask_again(record, attempt, ctx):
                break
        return self.row(job, answers, cached)

    @property
    def lock_wait_s(self) -> float:
        """How long to wait on another run's request before asking anyway: its longest
        possible life (every try timing out, every backoff at its longest)."""
        return self.timeout * (self.max_retries + 1) + self.retry_max_delay * self.max_retries + 5

    async def _ask(self, key, messages, sampling, ctx, semaphore, limiter,
                   lock: RequestLock | None) -> tuple[dict[str, Any], bool]:
        """(answer, whether another run bought it). The request key's lock is taken in a
        free concurrency slot, so a run holds locks only for requests it is sending; while
        another run holds it, this one waits outside the slots and reads that run's answer
        from the cache. The answer is stored before the lock is released."""
        waited = 0.0
        while True:
            try:
                record = await self._request(messages, sampling, ctx, semaphore, limiter,
                                             lock=lock if waited < self.lock_wait_s else None,
                                             key=key)
            except _Busy:
                record, waited = await self._wait_elsewhere(key, lock, ctx, waited)
                if record is not None:
                    return record, True
                continue
            except BaseException:
                if lock is not None and lock.held:
                    lock.release(answered=False)
                raise
            if record.pop("_from_cache", False):
                if lock is not None and lock.held:
                    lock.release(answered=True)
                return record, True
            if ctx.records is not None:
                ctx.records.set(key, record)
            if lock is not None and lock.held:
                lock.release(answered=True)
            return record, False

    async def _wait_elsewhere(self, key, lock, ctx, waited: float) -> tuple[dict | None, float]:
        """Wait while another run holds ``key``: (its answer, time waited) once stored, or
        (None, time waited) once the lock is free (that run failed or died) or the wait is
        over (:attr:`lock_wait_s`)."""
        pause = 0.05
        while waited < self.lock_wait_s:
            record = ctx.records.get(key)
            if record is not None:
                ctx.stats.responses_cached += 1
                ctx.stats.answered_elsewhere += 1
                return record, waited
            if lock.try_acquire():
                lock.release(answered=False)
                return None, waited
            await asyncio.sleep(pause)
            waited += pause
            pause = min(0.5, pause * 2)
        return None, waited

    def _call_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"timeout": self.timeout, "max_retries": 0, "num_retries": 0}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        key = self._api_key()
        if key:
            kwargs["api_key"] = key
        elif self.api_base:
            kwargs["api_key"] = DUMMY_API_KEY  # a self-hosted server that checks no key
        return kwargs

    def _budget_reached(self, ctx: TeachContext) -> bool:
        if self.max_cost_usd is None:
            return False
        stats = ctx.stats
        average = stats.spent_usd / self._paid_requests if self._paid_requests else 0.0
        return stats.spent_usd + self._inflight * average >= self.max_cost_usd

    async def _request(self, messages, sampling, ctx: TeachContext, semaphore, limiter, *,
                       lock: RequestLock | None = None, key: str | None = None) -> dict[str, Any]:
        litellm = self._lib()
        stats = ctx.stats
        api_params = {k: v for k, v in sampling.items() if k in API_PARAMS}
        last_error = "no attempt"
        for retry in range(self.max_retries + 1):
            async with semaphore:
                if stats.stopped is None and self._budget_reached(ctx):
                    stats.stopped = f"budget reached (max_cost_usd={self.max_cost_usd})"
                if stats.stopped:
                    raise _NotSent(f"not sent: {stats.stopped}")
                if lock is not None and not lock.held:
                    if not lock.try_acquire():
                        raise _Busy
                    record = ctx.records.get(key)  # stored by another run just before?
                    if record is not None:
                        ctx.stats.responses_cached += 1
                        ctx.stats.answered_elsewhere += 1
                        return {**record, "_from_cache": True}
                await limiter.wait()
                stats.requests_sent += 1
                self._inflight += 1
                start = time.perf_counter()
                try:
                    response = await self._complete(litellm, messages, api_params)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - sorted by _classify
                    kind, retryable, fatal = _classify(litellm, exc)
                    stats.count_error(kind)
                    last_error = f"{kind}: {self._scrub(str(exc)).strip()[:300]}"
                    if fatal:
                        stats.stopped = f"stopped after {last_error}"
                        raise _GaveUp(last_error) from None
                    if not retryable:
                        raise _GaveUp(last_error) from None
                    wait = self._backoff(retry, _retry_after(exc) if kind == "rate_limit" else None)
                else:
                    latency = time.perf_counter() - start
                    record = self._record(litellm, response, latency)
                    if record["cost_usd"] is not None:
                        stats.spent_usd += record["cost_usd"]
                        self._paid_requests += 1
                    else:
                        stats.cost_unknown += 1
                    return record
                finally:
                    self._inflight -= 1
            if retry < self.max_retries:
                stats.retries += 1
                await asyncio.sleep(wait)
        raise _GaveUp(f"{last_error} (gave up after {self.max_retries + 1} tries)")

    async def _complete(self, litellm, messages, api_params):
        return await litellm.acompletion(
            model=self.model, messages=list(messages), **api_params, **self._call_kwargs()
        )

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        delay = min(self.retry_max_delay, self.retry_base_delay * (2**retry))
        delay = random.uniform(delay / 2, delay)  # jitter: retries of many users spread out
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_max_delay))
        return delay

    def cost_of(self, litellm, response) -> float | None:
        """Cost in USD of one response; None when the model's price is unknown."""
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        completion = getattr(usage, "completion_tokens", 0) or 0
        if self.input_cost is not None and self.output_cost is not None:
            return (prompt * self.input_cost + completion * self.output_cost) / 1e6
        if not self._price_known_cached():
            return None
        hidden = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if isinstance(hidden, (int, float)):
            return float(hidden)  # litellm's completion_cost, already computed for this response
        try:
            return float(litellm.completion_cost(completion_response=response, model=self.model))
        except Exception:  # noqa: BLE001 - no price: unknown, never a failed request
            return None

    def _price_known_cached(self) -> bool:
        if not hasattr(self, "_price_known"):
            self._price_known = self.price_known()
        return self._price_known

    def _record(self, litellm, response, latency: float) -> dict[str, Any]:
        """What is cached for one answer: text, tokens, cost, latency (never credentials)."""
        choice = response.choices[0] if getattr(response, "choices", None) else None
        text = (getattr(getattr(choice, "message", None), "content", None) or "") if choice else ""
        usage = getattr(response, "usage", None)
        return {
            "text": text,
            "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
            "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
            "cost_usd": self.cost_of(litellm, response),
            "latency_s": latency,
            "finish_reason": getattr(choice, "finish_reason", None),
            "response_model": str(getattr(response, "model", "") or ""),
            "created": time.time(),
        }


def _unreachable(url: str, timeout: float) -> str | None:
    """Why a TCP connection to the URL's host fails, or None when it succeeds."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host = parsed.hostname
    if not host:
        return "not a URL"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def _run_async(coro) -> Any:
    """Run a coroutine to completion, also from inside a running loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
