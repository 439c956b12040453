"""What the two chat-model teachers (``litellm`` and ``local``) share.

A chat teacher asks a model once per user and caches every answer on its own in the
record cache (``ctx.records``) under :func:`~slimkit.teachers.base.record_key` of (label,
messages, sampling parameters): a job whose answers are cached costs nothing, and an
interrupted run resumes without asking twice. An answer without the three steps is
asked again, up to ``max_malformed_retries`` times, at ``retry_temperature`` when the
first ask was greedy (a greedy model repeats itself) and with a new seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimkit.rationale import parse_steps
from slimkit.teachers.base import TeachContext, TeacherJob, make_row, record_key


class ChatTeacher:
    """Base of the chat-model teachers: sampling per attempt, cache look-ups, rows.

    Subclasses set :attr:`label` and implement :meth:`answer` (the jobs not fully cached);
    :meth:`prepare` and :meth:`preflight` run before the first of those.
    """

    uses_records = True

    def __init__(self, *, temperature: float = 0.0, max_tokens: int = 512,
                 retry_temperature: float = 0.7, max_malformed_retries: int = 2):
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.retry_temperature = retry_temperature
        self.max_malformed_retries = max_malformed_retries

    @property
    def label(self) -> str:
        """The model name written into every row (and part of every record key)."""
        raise NotImplementedError

    @property
    def identity(self) -> str:
        """What names the model in a record key: :attr:`label`, plus anything else that
        changes its answers (the server of a hosted model); never a credential."""
        return self.label

    def request_key(self, job: TeacherJob, attempt: int) -> str:
        """Record key of a job's ``attempt``-th ask: model identity, messages, sampling."""
        return record_key(self.identity, job.messages, self.sampling(attempt))

    def sampling(self, attempt: int) -> dict[str, Any]:
        """Sampling parameters of the ``attempt``-th ask (0: first); part of the cache key."""
        temperature = self.temperature
        if attempt > 0 and temperature == 0:
            temperature = self.retry_temperature
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": self.max_tokens}
        if attempt > 0:
            params["seed"] = attempt  # a new sample, not the cached malformed one
        return params

    # -- the run ------------------------------------------------------------------------
    def teach(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """One row per job, in job order. Cached answers first; then pre-flight; then the model."""
        rows: dict[int, dict[str, Any]] = {}
        pending: list[TeacherJob] = []
        for job in jobs:
            row = self._from_cache(job, ctx)
            if row is None:
                pending.append(job)
            else:
                rows[job.user_index] = row
                ctx.progress.update(status=row["status"], cached=True, cost=None)
        if pending:
            self.prepare()
            self.preflight(pending)
            for row in self.answer(pending, ctx):
                rows[row["user_index"]] = row
        return [rows[job.user_index] for job in jobs]

    def prepare(self) -> None:
        """Hook run before pre-flight."""

    def preflight(self, jobs: Sequence[TeacherJob]) -> None:
        """Checks that must pass before the first request; SlimkitError if not."""

    def answer(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """Rows for jobs not fully cached (any order); updates ``ctx.progress`` per row."""
        raise NotImplementedError

    # -- shared steps ---------------------------------------------------------------------
    def lookup(self, job: TeacherJob, attempt: int, ctx: TeachContext) -> tuple[str, dict | None]:
        """(record key, cached answer or None) of a job's ``attempt``-th ask."""
        key = self.request_key(job, attempt)
        record = ctx.records.get(key) if ctx.records is not None else None
        if record is not None:
            ctx.stats.responses_cached += 1
        return key, record

    def ask_again(self, record: dict[str, Any], attempt: int, ctx: TeachContext) -> bool:
        """Whether a job whose ``attempt``-th answer is ``record`` is asked again."""
        if parse_steps(record["text"]) is not None or attempt >= self.max_malformed_retries:
            return False
        ctx.stats.malformed_retries += 1
        return True

    def _from_cache(self, job: TeacherJob, ctx: TeachContext) -> dict[str, Any] | None:
        """The row of a job whose every needed answer is cached, else None."""
        if ctx.records is None:
            return None
        answers = []
        for attempt in range(1 + self.max_malformed_retries):
            record = ctx.records.get(self.request_key(job, attempt))
            if record is None:
                return None
            answers.append(record)
            if parse_steps(record["text"]) is not None:
                break
        ctx.stats.responses_cached += len(answers)
        return self.row(job, answers, cached=len(answers))

    def row(self, job: TeacherJob, answers: list[dict[str, Any]], cached: int) -> dict[str, Any]:
        """The row of a job from its answers (the last one counts; tokens and cost add up)."""
        last = answers[-1]
        costs = [a.get("cost_usd") for a in answers]
        well_formed = parse_steps(last["text"]) is not None
        return make_row(
            job,
            model=self.label,
            text=last["text"],
            status="done",
            error=None if well_formed else f"no three steps after {len(answers)} answer(s)",
            prompt_tokens=sum(a.get("prompt_tokens", 0) for a in answers),
            completion_tokens=sum(a.get("completion_tokens", 0) for a in answers),
            cost_usd=None if any(c is None for c in costs) else sum(costs),
            latency_s=sum(a.get("latency_s", 0.0) for a in answers),
            cached=cached == len(answers),
            attempts=len(answers),
        )
