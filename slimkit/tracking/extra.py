"""The error for a tracking backend whose library is not installed."""

from __future__ import annotations

from slimkit.errors import SlimkitError

EXTRA_HINT = 'Install it with: pip install "slimkit[track]"'


def missing_extra(library: str, backend: str, exc: BaseException) -> SlimkitError:
    """A SlimkitError (exit 2) naming the extra that brings ``library``."""
    return SlimkitError(
        f"tracking.backends lists '{backend}', but {library} is not installed ({exc}).",
        hint=f"{EXTRA_HINT}, or remove '{backend}' from tracking.backends.",
    )
