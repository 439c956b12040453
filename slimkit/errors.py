"""Errors slimkit raises for user mistakes.

A :class:`SlimkitError` is something the user can fix (a bad config, a missing file,
an unknown user). The CLI prints it as one panel and exits with code 2; library users
catch it like any exception. Bugs stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class SlimkitError(Exception):
    """A problem the user can fix. ``hint`` says how, ``problems`` lists every issue."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, problems: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = list(problems)

    def __str__(self) -> str:
        parts = [self.message]
        parts += [f"  - {p}" for p in self.problems]
        if self.hint:
            parts.append(self.hint)
        return "\n".join(parts)


class ConfigError(SlimkitError):
    """The pipeline spec is invalid; ``problems`` holds one line per problem."""


class DataError(SlimkitError):
    """An input data file cannot be read as the spec says."""


class StageMissingError(SlimkitError):
    """A stage needs the output of an upstream stage that is not in the cache."""


class IncompleteStageError(SlimkitError):
    """An upstream stage finished with failed items (users the teacher did not answer) and
    continuing on the rest was not allowed. Not a user mistake: exit code 1."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def require_extra(extra: str, *modules: str) -> None:
    """A SlimkitError naming the extra to install when any of ``modules`` is missing
    (checked without importing them)."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SlimkitError(
            f"This needs the optional package{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (the '{extra}' extra), which {'are' if len(missing) > 1 else 'is'} "
            "not installed.",
            hint=f"pip install 'slimkit[{extra}]'",
        )
