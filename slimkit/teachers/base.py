"""What every teacher shares: the job it gets, the row it writes, how progress is shown.

A teacher implementation is built from its spec parameters (plain keyword arguments) and
has one method that matters (the whole contract: :class:`slimkit.teachers.protocol.Teacher`)::

    teacher.teach(jobs, context) -> list[dict]   # one rationales.jsonl row per job

``jobs`` are :class:`TeacherJob` (a user and the prompt built from the items before the
user's validation and test targets); ``context`` is a :class:`TeachContext` (the prepared
dataset, the per-request record cache, the progress display). Teachers that call an LLM
cache every response on its own in ``context.records`` under :func:`record_key`, which
holds the model, the messages and the sampling parameters, never a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slimkit.cache import hash_key
from slimkit.rationale import parse_steps, steps_to_json

RECORD_NAMESPACE = "llm"
"""``cache.records(...)`` namespace holding one LLM response per request."""


@dataclass(frozen=True)
class TeacherJob:
    """One sampled user and the prompt the teacher gets for them."""

    user_index: int
    user: str  # raw user id
    messages: list[dict[str, str]]
    history: tuple[int, ...]  # item indices shown in the prompt, oldest first


@dataclass
class TeachStats:
    """Counters a teacher keeps while it runs (the summary table is built from them)."""

    requests_sent: int = 0
    answered_elsewhere: int = 0  # answers another run (sharing the cache) bought while we waited
    responses_cached: int = 0
    retries: int = 0
    malformed_retries: int = 0
    spent_usd: float = 0.0
    cost_unknown: int = 0
    stopped: str | None = None  # why the run stopped early (budget, fatal error): the teacher sets it
    errors: dict[str, int] = field(default_factory=dict)
    generated_tokens: int = 0  # in-process teachers: tokens decoded this run
    generation_seconds: float = 0.0  # and the seconds spent decoding them
    extra: dict[str, Any] = field(default_factory=dict)  # teacher-specific summary fields (batch price, ids)

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding speed of an in-process teacher this run (None when nothing was decoded)."""
        if not self.generation_seconds:
            return None
        return self.generated_tokens / self.generation_seconds


class Progress:
    """A rich progress bar on stderr (or nothing): users finished, failed, cached, cost."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total = total
        self.done = self.failed = self.cached = 0
        self.cost = 0.0
        self._bar = None
        if enabled and total:
            from slimkit.console import progress_bar

            self._bar = progress_bar("{task.fields[status]}")
            self._task = self._bar.add_task(f"[bold]{label}", total=total, status="")
            self._bar.start()

    def update(self, *, status: str, cached: bool = False, cost: float | None = None) -> None:
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.cached += int(cached)
        self.cost += cost or 0.0
        if self._bar is not None:
            text = f"done {self.done} · failed {self.failed} · cached {self.cached}"
            if self.cost:
                text += f" · ${self.cost:.4f}"
            self._bar.update(self._task, advance=1, status=text)

    def note(self, text: str) -> None:
        """A line above the bar (a batch submitted, its state); nothing when disabled."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@dataclass
class TeachContext:
    """What a teacher gets besides its jobs."""

    dataset: Any  # slimkit.data.dataset.PreparedDataset
    records: Any  # diskcache.Cache for one response per request (or None: no caching)
    progress: Progress
    stats: TeachStats = field(default_factory=TeachStats)


def record_key(model: str, messages: Sequence[Mapping[str, str]], sampling: Mapping[str, Any]) -> str:
    """Cache key of one request: model, messages and sampling parameters (no credentials)."""
    return "chat:" + hash_key(
        model, [{"role": m["role"], "content": m["content"]} for m in messages], dict(sampling)
    )


def make_row(
    job: TeacherJob,
    *,
    model: str,
    text: str | None,
    status: str,
    error: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: float | None = None,
    latency_s: float = 0.0,
    cached: bool = False,
    attempts: int = 1,
) -> dict[str, Any]:
    """One ``rationales.jsonl`` row (the fields docs/architecture.md lists, plus bookkeeping)."""
    steps = parse_steps(text) if status == "done" else None
    return {
        "user": job.user,
        "user_index": int(job.user_index),
        "messages": job.messages,
        "rationale": text or "",
        "steps": steps_to_json(steps),
        "well_formed": steps is not None,
        "model": model,
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "cost_usd": None if cost_usd is None else float(cost_usd),
        "latency_s": round(float(latency_s), 4),
        "status": status,
        "error": error,
        "cached": bool(cached),
        "attempts": int(attempts),
    }
