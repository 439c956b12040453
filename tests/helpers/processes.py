"""Helpers for tests that start slimkit in a child process and signal it."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` for a child that a test interrupts with SIGINT (Ctrl-C).

    A shell starts background jobs (`pytest ... &`, nohup, CI runners) with SIGINT
    ignored; the child inherits that through exec, and a Python started with SIGINT
    ignored installs no KeyboardInterrupt handler, so the signal would do nothing.
    Restoring the default before exec lets Python install its handler as in a terminal.
    Safe beside the parent's threads (ruff's PLW1509): between fork and exec the child
    only calls sigaction, which takes no lock another thread could hold.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
